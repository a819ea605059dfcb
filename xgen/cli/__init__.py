"""The `xgen` command line. Each command lives in its own module and adds itself to `app`."""

import sys
import warnings

from xgen.cli import (  # noqa: F401  (each registers its command)
    data,
    demo,
    evaluate,
    explain,
    fit_scorer,
    plugins,
    reproduce,
    train,
    traverse,
)
from xgen.cli.app import app
from xgen.errors import XgenError


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Entry point of the console script: bad usage or input exits 2 with one sentence on stderr."""
    warnings.formatwarning = _one_line_warning
    try:
        app()
    except XgenError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "Interrupted; completed files are kept, and rerunning the same command finishes the rest.", file=sys.stderr
        )
        sys.exit(130)
