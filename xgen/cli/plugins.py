"""`xgen plugins [--json]`: what is installed, who provides it, and what failed to load."""

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xgen.cli.app import app


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List every registered explainer, scorer, metric, architecture and dataset, and plugins that failed."""
    from xgen.api import list_plugins

    infos = list_plugins()
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    console = Console(width=max(Console().width, 120))
    table = Table("name", "kind", "package", "version", "description", box=None, pad_edge=False)
    for info in infos:
        if info.error is None:
            package = info.package or "(in-process)"
            table.add_row(info.name, info.kind, package, info.version or "", info.description)
    console.print(table)
    failed = [info for info in infos if info.error is not None]
    if failed:
        console.print("\n[bold red]Failed to load:[/]")
        for info in failed:
            console.print(f"  {info.plugin} ({info.package or 'in-process'} {info.version or ''}): {info.error}")
