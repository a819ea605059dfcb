"""`xgen reproduce` (`xgen.reproduce`; the module is not named after it, so that importing it never hides the
function): run the grids of registered claims into one resumable JSON-lines log, decide each claim's
verdicts by its stated rule, and write the report (Markdown, JSON and a self-contained HTML page)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xgen.claims import RUNS_DIR, SCALES, UNTESTABLE, Claim, Finding, Run, RunContext
from xgen.errors import XgenError, did_you_mean
from xgen.files import ensure_writable_dir
from xgen.machine import as_described, describe, process_alive, torch_threads
from xgen.plugins import get_registry, lookup
from xgen.progress import progress_bar

LOG = "runs.jsonl"
LOCKS_DIR = "locks"


@dataclass
class Reproduction:
    """What `reproduce` did: the claims, their findings, the runs executed now and those taken from the log, the
    runs refused (with the reason), those another process was running (with who), and where the reports went."""

    claims: list[Claim]
    findings: list[Finding]
    executed: int
    reused: int
    refused: list[tuple[str, str]] = field(default_factory=list)
    elsewhere: list[tuple[str, str]] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    command: str = ""
    finished: dict[str, tuple[int, int]] = field(default_factory=dict)
    """claim name -> (runs of its grid in the log, runs in its grid): a verdict on part of a grid says so."""
    run_seconds: dict[str, float] = field(default_factory=dict)
    """claim name -> seconds its logged runs took, summed (what its grid has cost so far, on the machines named)."""
    run_machines: dict[str, int] = field(default_factory=dict)
    """machine line -> how many of the runs behind the verdicts were measured there (the log may span machines)."""


def registered_claims() -> list[type[Claim]]:
    """Every registered claim class, by paper then name."""
    registry = get_registry()
    classes = [lookup("claim", name) for name in registry.names("claim")]
    return sorted(classes, key=lambda c: (c.paper, c.name))


def select(names: Sequence[str] = (), paper: str | None = None, everything: bool = False) -> list[type[Claim]]:
    """The claims named, those of one paper (its number in ../shared/seeds, e.g. "003"), or all; refuses an
    unknown name or paper with the known ones."""
    known = registered_claims()
    if not names and paper is None and not everything:
        raise XgenError("name claims, or give --paper NNN or --all; `xgen reproduce --list` shows them.")
    if everything:
        return known
    by_name = {c.name: c for c in known}
    chosen = []
    for name in names:
        if name not in by_name:
            raise XgenError(f"unknown claim '{name}'.{did_you_mean(name, by_name)} `xgen reproduce --list` shows them.")
        chosen.append(by_name[name])
    if paper is not None:
        papers = sorted({c.paper for c in known})
        of_paper = [c for c in known if c.paper == paper.zfill(3)]
        if not of_paper:
            having = f"papers with claims: {', '.join(papers)}" if papers else "no claims are registered"
            raise XgenError(f"no claim is registered for paper '{paper}'; {having}.")
        chosen += [c for c in of_paper if c not in chosen]
    return chosen


def load_log(path: Path) -> dict[str, dict[str, Any]]:
    """The log's records by run key; a line cut short by an interruption is skipped, a later record of a key wins."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            records[record["key"]] = record
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line in one write (O_APPEND: lines of processes sharing the log never interleave),
    on disk before the next run starts."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(folder: Path, run: Run) -> Iterator[str | None]:
    """Claim `run` for this process while the block runs, so several `xgen reproduce` processes can share one grid:
    yields None when claimed (the lock file `folder/<run>.lock` is removed afterwards, also on error), or who holds
    it ("host pid") when another live process does. A lock left by a dead process of this host is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.folder_name}.lock"
    host = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder_host, pid = path.read_text().split()
                stale = holder_host == host and not process_alive(int(pid))
            except (OSError, ValueError):
                holder_host, pid, stale = "?", "?", False
            if stale:
                path.unlink(missing_ok=True)
                continue
            yield f"{holder_host} {pid}"
            return
        try:
            os.write(fd, f"{host} {os.getpid()}".encode())
        finally:
            os.close(fd)
        try:
            yield None
        finally:
            path.unlink(missing_ok=True)
        return
    yield "another process"


def _execute(
    claim: Claim,
    run: Run,
    out: Path,
    scale: str,
    device: str,
    machine: str,
    refused: list[tuple[str, str]],
    command: str | None = None,
) -> dict[str, Any] | None:
    """Run one cell and return its log record; None (and the reason added to `refused`) when it refuses."""
    folder = out / RUNS_DIR / run.folder_name
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        result = claim.run(run, RunContext(device=device, folder=folder, scale=scale))
    except XgenError as exc:
        refused.append((run.label(), str(exc)))
        return None
    seconds = round(time.perf_counter() - started, 2)
    finished = datetime.datetime.now().isoformat(timespec="seconds")
    return run.log_record(claim.name, scale, device, result, seconds, machine, finished, command)


def command_line(
    names: Sequence[str],
    paper: str | None,
    everything: bool,
    scale: str,
    data: str | None,
    device: str,
    threads: int | None,
    out: Path,
) -> str:
    """The `xgen reproduce` command that makes this report."""
    parts = ["xgen", "reproduce", *names]
    if paper is not None:
        parts += ["--paper", paper]
    if everything:
        parts.append("--all")
    if scale != "default":
        parts += ["--scale", scale]
    if data is not None:
        parts += ["--data", data]
    if device != "cpu":
        parts += ["--device", device]
    if threads is not None:
        parts += ["--threads", str(threads)]
    parts += ["--out", str(out)]
    return shlex.join(parts)


def reproduce(
    names: Sequence[str] = (),
    *,
    paper: str | None = None,
    everything: bool = False,
    scale: str = "default",
    data: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    out: str | os.PathLike[str] = "repro",
    progress: bool = False,
    report_only: bool = False,
    report: str | os.PathLike[str] | None = None,
) -> Reproduction:
    """Run every run of the chosen claims that the log in `out` lacks, then decide and report their verdicts.

    Runs are shared between claims by key and appended to `out/runs.jsonl` as each finishes, so an interrupted or
    repeated invocation recomputes nothing that is done. Several processes may work on one `out` at once (start the
    command again for a second worker): each run is claimed with a lock file, runs another live process holds are
    left to it, and the verdicts use what the log holds when this process finishes. A run the data or options
    refuse (`XgenError`) is reported with its reason and left out of the verdicts. `data` replaces the claims' own
    data where a claim accepts it. `threads` sets torch's CPU threads for the runs (recorded in each record's
    machine line). `report_only` runs nothing: the verdicts and reports come from the runs the log already holds
    (how to see a grid that other processes or sessions are still running). `report` is the folder the three
    reports go to (default: `out`), e.g. a docs folder, with the runs' figures linked from there."""
    if scale not in SCALES:
        raise XgenError(f"--scale must be one of {', '.join(SCALES)}, got '{scale}'.")
    classes = select(names, paper, everything)
    if data is not None:
        from xgen.data import parse_spec

        lookup("dataset", parse_spec(data)[0])
    out = ensure_writable_dir(out)
    to = ensure_writable_dir(report, "--report") if report is not None else out
    with torch_threads(threads):
        return _reproduce(
            classes, names, paper, everything, scale, data, device, threads, out, progress, report_only, to
        )


def _reproduce(
    classes: list[type[Claim]],
    names: Sequence[str],
    paper: str | None,
    everything: bool,
    scale: str,
    data: str | None,
    device: str,
    threads: int | None,
    out: Path,
    progress: bool,
    report_only: bool,
    to: Path,
) -> Reproduction:
    """`reproduce` once the request is checked and torch's threads are set."""
    command = command_line(names, paper, everything, scale, data, device, threads, out)
    claims = [cls() for cls in classes]
    grids = {
        claim.name: claim.runs(scale, [data] if data is not None and claim.accepts_data else list(claim.data))
        for claim in claims
    }
    owners: dict[str, tuple[Claim, Run]] = {}
    for claim in claims:
        for run in grids[claim.name]:
            owners.setdefault(run.key, (claim, run))
    log_path = out / LOG
    done = load_log(log_path)
    in_log = sum(key in done for key in owners)
    todo = [] if report_only else [(claim, run) for key, (claim, run) in owners.items() if key not in done]
    refused: list[tuple[str, str]] = []
    elsewhere: list[tuple[str, str]] = []
    executed = 0
    machine = describe()
    with progress_bar(progress) as bar:
        task = bar.add_task("reproduce", total=len(todo), status="")
        for claim, run in todo:
            bar.update(task, status=run.label())
            with run_lock(out / LOCKS_DIR, run) as holder:
                if holder is not None:
                    elsewhere.append((run.label(), holder))
                elif run.key in (logged := load_log(log_path)):
                    done[run.key] = logged[run.key]
                else:
                    record = _execute(claim, run, out, scale, device, machine, refused, command)
                    if record is not None:
                        append_record(log_path, record)
                        done[run.key] = record
                        executed += 1
            bar.advance(task)
    findings = []
    used = {run.key: done[run.key] for claim in claims for run in grids[claim.name] if run.key in done}
    run_machines = Counter(as_described(record.get("machine", "not recorded")) for record in used.values())
    for claim in claims:
        records = [done[run.key] for run in grids[claim.name] if run.key in done]
        if records:
            findings += claim.findings(records)
        else:
            labels = {run.label() for run in grids[claim.name]}
            own = [why for label, why in refused if label in labels]
            busy = [holder for label, holder in elsewhere if label in labels]
            reason = "no run of it is in the log yet" + (
                f" ({own[0]})" if own else f" (other processes are running them: {busy[0]})" if busy else ""
            )
            findings.append(Finding(claim.name, "all", "no runs", UNTESTABLE, reason))
    reproduction = Reproduction(
        claims,
        findings,
        executed=executed,
        reused=in_log,
        refused=refused,
        elsewhere=elsewhere,
        command=command,
        finished={c.name: (sum(run.key in done for run in grids[c.name]), len(grids[c.name])) for c in claims},
        run_seconds={
            c.name: sum(float(done[run.key].get("seconds", 0.0)) for run in grids[c.name] if run.key in done)
            for c in claims
        },
        run_machines=dict(run_machines.most_common()),
    )
    from xgen.claim_report import write_reports

    reproduction.reports = write_reports(reproduction, out, scale, machine, to)
    return reproduction
