"""Start-up: help and plugin declarations must not pay for importing torch; the lazy `xgen` namespace still works."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "numpy", "scipy", "sklearn", "PIL")

PROBE = """
import json, sys
sys.argv = {argv!r}
try:
{code}
except SystemExit:
    pass
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))
print(json.dumps(heavy), file=sys.stderr)
"""


def heavy_imports(code: str, argv: list[str] | None = None) -> tuple[list[str], str]:
    """The heavy packages a fresh interpreter has imported after running `code`, and what it printed."""
    script = PROBE.format(argv=argv or ["python"], code=textwrap.indent(code, "    "), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    *_, last = done.stderr.strip().splitlines()
    return json.loads(last), done.stdout


@pytest.mark.parametrize(
    "command", [[], ["explain"], ["evaluate"], ["train"], ["plugins"], ["data", "show"], ["traverse"]]
)
def test_help_imports_no_torch(command):
    heavy, shown = heavy_imports("from xgen.cli import main; main()", ["xgen", *command, "--help"])
    assert "Usage" in shown
    assert heavy == [], f"xgen {' '.join(command)} --help imported {heavy}"


def test_plugin_declarations_import_no_torch():
    heavy, _ = heavy_imports("import xgen\nfrom xgen import hookimpl, XgenError\nxgen.__version__")
    assert heavy == []


def test_every_public_name_resolves_on_first_use():
    heavy, shown = heavy_imports(
        "import xgen\nprint(xgen.Explainer.__name__, xgen.dataset.__name__, xgen.images.__name__)",
    )
    assert shown.split() == ["Explainer", "open_dataset", "xgen.images"] and "torch" in heavy
    import xgen

    for name in xgen.__all__:
        assert getattr(xgen, name) is not None
    namespace: dict[str, object] = {}
    exec("from xgen import *", namespace)
    assert set(xgen.__all__) <= set(namespace) and set(xgen.__all__) <= set(dir(xgen))
    from xgen.methods import Explainer

    assert xgen.Explainer is Explainer
    with pytest.raises(AttributeError, match="no attribute 'Explainr'"):
        xgen.Explainr  # noqa: B018
