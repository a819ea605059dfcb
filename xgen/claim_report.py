"""The report of `xgen reproduce`: each finding beside the paper's figure, the rule's reason and the command, as
Markdown (claims.md), JSON (claims.json) and one self-contained HTML page with the figures inlined (claims.html)."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgen.claims import SCALE_HELP
from xgen.files import write_text

if TYPE_CHECKING:
    from xgen.reproduction import Reproduction

RULE = (
    "a difference of seed means counts only when it exceeds the spread over seeds (the larger sample standard "
    "deviation) and half a unit of the last digit shown"
)
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_json(reproduction: Reproduction, scale: str, machine: str) -> dict[str, Any]:
    """Everything the report shows, as JSON values."""
    return {
        "command": reproduction.command,
        "scale": scale,
        "machine": machine,
        "run_machines": [{"machine": m, "runs": n} for m, n in reproduction.run_machines.items()],
        "executed": reproduction.executed,
        "reused": reproduction.reused,
        "refused": [{"run": run, "reason": reason} for run, reason in reproduction.refused],
        "elsewhere": [{"run": run, "held_by": holder} for run, holder in reproduction.elsewhere],
        "claims": [
            {
                "name": c.name,
                "description": c.description,
                "paper": c.paper,
                "citation": c.citation,
                "source": c.source,
                "paper_value": c.paper_value,
                "gallery": c.gallery,
                "data": list(c.data),
            }
            for c in reproduction.claims
        ],
        "findings": [f.as_dict() for f in reproduction.findings],
        "finished": {
            name: {"in_log": k, "grid": n, "run_seconds": reproduction.run_seconds.get(name, 0.0)}
            for name, (k, n) in reproduction.finished.items()
        },
    }


def markdown(reproduction: Reproduction, scale: str, machine: str, figures: str = ".") -> str:
    """The report as Markdown: one table row per finding, then each claim with its paper, figures and reasons; the
    figures (paths relative to the run log's folder) linked through `figures`, that folder seen from the report."""
    lines = [
        "# Claims of the papers, re-measured by xgen",
        "",
        f"    {reproduction.command}",
        "",
        f"Scale: `{scale}` ({SCALE_HELP[scale]}). Runs: {reproduction.executed} executed by this "
        f"invocation, {reproduction.reused} taken from the run log (`runs.jsonl`), "
        f"{len(reproduction.refused)} refused. {_machines(reproduction, machine)}",
        "",
        *_partial(reproduction),
        f"The rule: {RULE}; a claim holds when it counts in the claimed direction, does not hold when it counts "
        "against it, and is not testable here otherwise.",
        "",
        "| claim | paper, where | paper's figure | on | xgen measured | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    by_name = {c.name: c for c in reproduction.claims}
    for f in reproduction.findings:
        c = by_name[f.claim]
        lines.append(
            f"| `{f.claim}` | {_cell(c.paper)}, {_cell(c.source)} | {_cell(f.paper_value or c.paper_value or '–')} "
            f"| {_cell(f.subject)} "
            f"| {_cell(f.measured)} | **{f.verdict}** |"
        )
    if reproduction.refused:
        lines += ["", "## Runs refused", ""] + [f"- {run}: {reason}" for run, reason in reproduction.refused]
    if reproduction.elsewhere:
        lines += ["", "## Runs another process was running (not in these verdicts yet)", ""]
        lines += [f"- {run}: held by {holder}" for run, holder in reproduction.elsewhere]
    for c in reproduction.claims:
        lines += ["", f"## `{c.name}`: {c.description}", "", f"{c.citation} (paper {c.paper}), {c.source}."]
        if c.name in reproduction.finished:
            lines.append(_grid_line(reproduction, c.name))
        if c.paper_value:
            lines.append(f"The paper: {c.paper_value}.")
        lines.append("")
        for f in (f for f in reproduction.findings if f.claim == c.name):
            lines.append(f"- **{f.subject}: {f.verdict}.** {f.measured}; {f.reason}.")
            lines += [f"  ![{f.subject}]({Path(figures, figure).as_posix()})" for figure in f.figures]
    return "\n".join(lines) + "\n"


def _grid_line(reproduction: Reproduction, name: str) -> str:
    """How much of a claim's grid is in the log, and the run time those runs took."""
    k, n = reproduction.finished[name]
    seconds = reproduction.run_seconds.get(name, 0.0)
    took = f" ({seconds / 3600:.1f} h of run time)" if seconds >= 360 else f" ({seconds:.0f} s of run time)"
    return f"Runs of its grid in the log: {k} of {n}" + (took if k else "") + "."


def _machines(reproduction: Reproduction, machine: str) -> str:
    """Where the runs behind the verdicts were measured (a log may span machines and thread counts), and where this
    invocation ran, which is not the same thing when the runs come from the log."""
    ran = "; ".join(f"{m} ({n} run{'s' if n != 1 else ''})" for m, n in reproduction.run_machines.items())
    return (f"The runs were measured on: {ran}. " if ran else "") + f"This invocation ran on: {machine}."


def _partial(reproduction: Reproduction) -> list[str]:
    """A paragraph naming the claims whose verdicts rest on part of their grid, or nothing."""
    partial = [f"`{name}` ({k} of {n})" for name, (k, n) in reproduction.finished.items() if k < n]
    if not partial:
        return []
    return [
        "**Grids not finished: the verdicts of these claims use only the runs in the log so far** (runs of the "
        "grid in the log): " + ", ".join(partial) + ".",
        "",
    ]


def _inline(out: Path, figure: str) -> str:
    path = out / figure
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return f"<p>missing figure {html.escape(figure)}</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(figure)}"></figure>'


def html_page(reproduction: Reproduction, scale: str, machine: str, out: Path) -> str:
    """The report as one HTML page with every figure inlined, so it can be mailed or archived as one file."""
    colour = {"holds": "#1a7f37", "does not hold": "#cf222e", "not testable here": "#6e7781"}
    by_name = {c.name: c for c in reproduction.claims}
    rows = "".join(
        f"<tr><td><a href='#{f.claim}'><code>{html.escape(f.claim)}</code></a></td>"
        f"<td>{html.escape(by_name[f.claim].paper)}, {html.escape(by_name[f.claim].source)}</td>"
        f"<td>{html.escape(f.paper_value or by_name[f.claim].paper_value or '–')}</td>"
        f"<td>{html.escape(f.subject)}</td>"
        f"<td>{html.escape(f.measured)}</td>"
        f"<td style='color:{colour[f.verdict]}'><b>{html.escape(f.verdict)}</b></td></tr>"
        for f in reproduction.findings
    )
    sections = []
    for c in reproduction.claims:
        items = "".join(
            f"<li><b>{html.escape(f.subject)}: {html.escape(f.verdict)}.</b> {html.escape(f.measured)}; "
            f"{html.escape(f.reason)}.{''.join(_inline(out, g) for g in f.figures)}</li>"
            for f in reproduction.findings
            if f.claim == c.name
        )
        paper = f" The paper: {html.escape(c.paper_value)}." if c.paper_value else ""
        if c.name in reproduction.finished:
            paper += " " + html.escape(_grid_line(reproduction, c.name))
        sections.append(
            f"<section id='{c.name}'><h2><code>{html.escape(c.name)}</code>: {html.escape(c.description)}</h2>"
            f"<p>{html.escape(c.citation)} (paper {html.escape(c.paper)}), {html.escape(c.source)}.{paper}</p>"
            f"<ul>{items}</ul></section>"
        )
    refused = "".join(f"<li>{html.escape(r)}: {html.escape(why)}</li>" for r, why in reproduction.refused)
    elsewhere = "".join(f"<li>{html.escape(r)}: held by {html.escape(h)}</li>" for r, h in reproduction.elsewhere)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>xgen reproduce</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top}"
        "img{max-width:100%;image-rendering:pixelated}figure{margin:0.5em 0}</style></head><body>"
        "<h1>Claims of the papers, re-measured by xgen</h1>"
        f"<pre>{html.escape(reproduction.command)}</pre>"
        f"<p>Scale <code>{scale}</code> ({html.escape(SCALE_HELP[scale])}). "
        f"Runs: {reproduction.executed} executed now, {reproduction.reused} from the run log, "
        f"{len(reproduction.refused)} refused. {html.escape(_machines(reproduction, machine))}</p>"
        + "".join(f"<p>{html.escape(line)}</p>" for line in _partial(reproduction) if line)
        + f"<p>The rule: {html.escape(RULE)}.</p>"
        "<table><tr><th>claim</th><th>paper, where</th><th>paper's figure</th><th>on</th><th>xgen measured</th>"
        f"<th>verdict</th></tr>{rows}</table>"
        + (f"<h2>Runs refused</h2><ul>{refused}</ul>" if refused else "")
        + (f"<h2>Runs another process was running</h2><ul>{elsewhere}</ul>" if elsewhere else "")
        + "".join(sections)
        + "</body></html>\n"
    )


def write_reports(
    reproduction: Reproduction, out: Path, scale: str, machine: str, to: Path | None = None
) -> dict[str, Path]:
    """Write claims.md, claims.json and claims.html into `to` (default: `out`, the run log's folder), each
    atomically; returns their paths. The Markdown links the runs' figures in `out` relative to `to`."""
    to = out if to is None else to
    to.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": to / "claims.md", "json": to / "claims.json", "html": to / "claims.html"}
    figures = os.path.relpath(out.resolve(), to.resolve())
    write_text(paths["markdown"], markdown(reproduction, scale, machine, figures))
    write_text(paths["json"], json.dumps(as_json(reproduction, scale, machine), indent=2) + "\n")
    write_text(paths["html"], html_page(reproduction, scale, machine, out))
    return paths
