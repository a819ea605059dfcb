"""The typer application every command module adds itself to, and helpers they share."""

import hashlib
from pathlib import Path

import typer

from xgen.errors import XgenError

app = typer.Typer(
    name="xgen",
    help=(
        "Explain generative models: train, explain, evaluate, look at data, list plugins, re-measure the papers' "
        "claims, run the demo."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_sets(sets: list[str] | None) -> dict[str, str]:
    """["k=v", ...] from repeated --set options -> {"k": "v"}; the plugin converts and validates the values."""
    options: dict[str, str] = {}
    for item in sets or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise XgenError(f"--set expects key=value, got '{item}'.")
        options[key.strip()] = value.strip()
    return options


def file_digest(path: Path) -> str:
    """sha256 of a file, to tell whether an output folder was made by the same checkpoint."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
