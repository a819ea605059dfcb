"""The documentation stays true: the hook reference is regenerated from the hook specs, the README's commands
are the ones CI runs, and every option of the built-in explainer is documented."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import xgen

ROOT = Path(__file__).parent.parent


def test_hook_reference_is_generated_from_hookspecs():
    spec = importlib.util.spec_from_file_location("render_hooks", ROOT / "docs" / "render_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "hooks.md").read_text() == module.render(), (
        "run: python docs/render_hooks.py > docs/hooks.md"
    )


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- ci: test command -->", 1)[1].strip().splitlines()[0].strip()
    assert "pytest" in block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ci: test command" in ci and "eval" in ci
    extracted = subprocess.run(
        [
            "bash",
            "-c",
            "grep -A2 '<!-- ci: test command -->' README.md | grep -m1 -E '^    python3 ' | sed 's/^    //'",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert extracted == block


def test_every_vae_gradcam_option_is_documented():
    page = (ROOT / "docs" / "methods" / "vae-gradcam.md").read_text()
    explainer = xgen.plugins.lookup("explainer", "vae-gradcam")
    for name in explainer.options():
        assert re.search(rf"`{name}", page), f"option {name} missing from docs/methods/vae-gradcam.md"


def test_cli_help_texts_survive_rich_markup():
    """typer renders help with rich, which swallows "[...]" as markup: "[default: x]" would vanish from --help."""
    import typer.main

    import xgen.cli  # noqa: F401  (registers the commands)
    from xgen.cli.app import app

    group = typer.main.get_command(app)
    assert {"train", "explain", "plugins", "demo"} <= set(group.commands)
    for name, command in group.commands.items():
        assert "[" not in (command.help or ""), name
        for param in command.params:
            assert "[" not in (getattr(param, "help", None) or ""), f"xgen {name} {param.name}"
