"""`xgen reproduce [CLAIM ... | --paper NNN | --all] [--scale S] [--data SPEC] --out DIR`: re-measure the papers'
claims and report each verdict beside the paper's figure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xgen.cli.app import app


def claim_list() -> str:
    """Every registered claim, a line each: name, paper and where, what it compares, its data, and how many runs its
    grid has at each scale (so the cost of a request can be judged before it starts)."""
    from xgen.claims import SCALES
    from xgen.reproduction import registered_claims

    claims = registered_claims()
    if not claims:
        return "No claims are registered."
    width = max(len(c.name) for c in claims)
    lines = []
    for c in claims:
        data = ", ".join(c.data) + ("" if c.accepts_data else " (fixed)")
        kind = "gallery" if c.gallery else "verdict"
        claim = c()
        runs = ", ".join(f"{scale} {len(claim.runs(scale, list(c.data)))}" for scale in SCALES)
        lines.append(
            f"{c.name:<{width}}  paper {c.paper}, {c.source} [{kind}]: {c.description} Data: {data}. Runs: {runs}."
        )
    return "\n".join(lines)


@app.command()
def reproduce(
    claims: Annotated[list[str] | None, typer.Argument(help="Claims to re-measure (see --list).")] = None,
    list_claims: Annotated[bool, typer.Option("--list", help="List every registered claim and exit.")] = False,
    paper: Annotated[str | None, typer.Option(help="Every claim of one paper, by its number (e.g. 003).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every registered claim.")] = False,
    scale: Annotated[str, typer.Option(help="quick (minutes, a smoke check), default (CPU) or paper (GPU).")] = (
        "default"
    ),
    data: Annotated[
        str | None, typer.Option(help="Data spec replacing the claims' own where a claim allows it, e.g. mvtec:PATH.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads (default: torch's); 1 is faster when other jobs share the CPU")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for runs.jsonl, the runs' figures and claims.md/.json/.html.")] = (
        Path("repro")
    ),
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Run nothing: report the runs already in --out's log.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Folder for claims.md/.json/.html (default: --out), figures linked from it.")
    ] = None,
) -> None:
    """Re-measure the papers' claims: run each claim's grid (resumable), decide each verdict by its stated rule, and
    write claims.md, claims.json and claims.html."""
    if list_claims:
        typer.echo(claim_list())
        return
    from xgen.reproduction import reproduce as run_claims

    result = run_claims(
        claims or [],
        paper=paper,
        everything=everything,
        scale=scale,
        data=data,
        device=device,
        threads=threads,
        out=out,
        progress=not report_only,
        report_only=report_only,
        report=report,
    )
    counts = {v: sum(f.verdict == v for f in result.findings) for v in ("holds", "does not hold", "not testable here")}
    shown = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    partial = sum(k < n for k, n in result.finished.values())
    typer.echo(
        f"{len(result.claims)} claims, {len(result.findings)} findings ({shown}); {result.executed} runs executed, "
        f"{result.reused} from the log, {len(result.refused)} refused"
        + (f", {len(result.elsewhere)} left to other processes" if result.elsewhere else "")
        + (
            f"; {partial} claim{' rests on part of its' if partial == 1 else 's rest on part of their'} grid"
            if partial
            else ""
        )
        + f". Report: {result.reports['markdown']}, "
        f"{result.reports['html']}, {result.reports['json']}."
    )
