"""Render docs/hooks.md from the docstrings in xgen/hookspecs.py: the hook spec is the documentation.

python docs/render_hooks.py > docs/hooks.md
"""

import inspect
import textwrap

from xgen import hookspecs
from xgen.methods import Metric


def render() -> str:
    parts = [
        "# Hook reference",
        "",
        "Generated from `xgen/hookspecs.py` by `python docs/render_hooks.py > docs/hooks.md`; do not edit by hand.",
        "",
        textwrap.dedent(hookspecs.__doc__ or "").strip(),
        "",
    ]
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("xgen_"):
            continue
        doc = inspect.getdoc(function) or ""
        text, _, example = doc.partition("Example::\n")
        signature = inspect.signature(function, eval_str=True)
        parts += [f"## `{name}{signature}`", "", text.strip(), "", "Example:", ""]
        parts += ["```python", textwrap.dedent(example).strip(), "```", ""]
    text, _, example = (inspect.getdoc(Metric.partial) or "").partition("Example::\n")
    parts += ["## Metrics from shards: `Metric.partial` and `Metric.finish`", "", text.strip(), "", "Example:", ""]
    parts += ["```python", textwrap.dedent(example).strip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
