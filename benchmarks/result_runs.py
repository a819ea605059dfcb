"""What the resumable result scripts share: data specs at another size, the machine line, the JSON-lines run log and
the grid loop that appends to it, and table cells of mean ± std over seeds."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import xgen
from xgen.data import parse_spec
from xgen.machine import as_described, describe
from xgen.machine import cpu_name as cpu_name  # re-exported for the scripts


def with_size(spec: str, size: int | None) -> str:
    """`spec` with its size option set to `size` (added or replaced); unchanged when size is None."""
    if size is None:
        return spec
    name, options, bare = parse_spec(spec)
    options["size"] = str(size)
    parts = ([bare] if bare is not None else []) + [f"{k}={v}" for k, v in options.items()]
    return f"{name}:{','.join(parts)}"


def machine() -> str:
    """CPU model, logical CPUs, torch and its threads, Python and OS: where the numbers were measured."""
    return describe()


def busy_cpu_s() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def shown_path(path: Path | str) -> str:
    """`path` relative to the working folder when it lies under it (the repository root, where the commands run), so
    reports name repository paths; else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def flat_runs(
    log: Path, experiment: str, settings: dict[str, Any], former: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The runs of `experiment` at `settings` in `log` as flat records (data, variant, seed, what the run measured,
    machine, finished): an `xgen reproduce` record's `run` and `result` merged, or a record of the removed script that
    `former` accepts, as it is; the last record of a (data, variant, seed) wins."""
    flat: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in load_runs(log):
        if "result" in r:
            run = r["run"]
            if run["experiment"] != experiment or run["settings"] != settings:
                continue
            flat[run["data"], run["variant"], run["seed"]] = {
                "data": run["data"],
                "variant": run["variant"],
                "seed": run["seed"],
                **r["result"],
                "machine": r["machine"],
                "finished": r["finished"],
            }
        elif former(r):
            flat[r["data"], r["variant"], r["seed"]] = r
    return list(flat.values())


def load_runs(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of a run log (a line cut short by an interruption is skipped), machine lines as
    `describe` writes them today."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record.get("machine"), str):
                record["machine"] = as_described(record["machine"])
            runs.append(record)
    return runs


def run_grid(
    cells: list[tuple[str, str, int]],
    settings: dict[str, Any],
    run_key: Callable[[dict[str, Any]], tuple],
    one_run: Callable[[str, str, int], dict[str, Any]],
    path: Path,
    shown: Callable[[dict[str, Any]], str],
) -> list[dict[str, Any]]:
    """Run every (data, variant, seed) cell whose key (with `settings`) is not yet in the run log at `path`, appending
    each record with its machine as soon as it finishes, so an interrupted grid resumes where it stopped; a cell the
    data or options refuse (XgenError) is skipped with the reason. Returns the log's records of `cells`."""

    def key(data: str, variant: str, seed: int) -> tuple:
        return run_key({"data": data, "variant": variant, "seed": seed, **settings})

    done = {run_key(r) for r in load_runs(path)}
    for count, (data, variant, seed) in enumerate(cells, 1):
        label = f"[{count}/{len(cells)}] {data} {variant} seed {seed}"
        if key(data, variant, seed) in done:
            print(f"{label}: already in {path}", flush=True)
            continue
        try:
            record = one_run(data, variant, seed)
        except xgen.XgenError as exc:
            print(f"{label}: skipped ({exc})", flush=True)
            continue
        record["machine"] = machine()
        with path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(f"{label}: {shown(record)}", flush=True)
    wanted = {key(*c) for c in cells}
    return [r for r in load_runs(path) if run_key(r) in wanted]


def fixed_map_metrics(amap: torch.Tensor, masks: torch.Tensor, names: list[str]) -> dict[str, float]:
    """amap: (H, W), min-max normalised and given to every test image alike; masks: (N, H, W) -> each metric of
    `names`: what the position of a map alone earns, with no information about the image."""
    amap = (amap - amap.min()) / (amap.max() - amap.min()).clamp_min(1e-12)
    maps = amap.expand(len(masks), -1, -1).contiguous()
    return {name: float(xgen.metric(name).compute(maps=maps, masks=masks)) for name in names}


def cell(values: list[float]) -> str:
    """'–' for no value, the value for one, mean ± sample std for more; NaN values (a measure undefined for that
    run) are left out and counted."""
    finite = [v for v in values if math.isfinite(v)]
    note = f" ({len(values) - len(finite)} undefined)" if len(finite) < len(values) else ""
    if not finite:
        return "undefined" if values else "–"
    if len(finite) == 1:
        return f"{finite[0]:.3f}{note}"
    return f"{statistics.mean(finite):.3f} ± {statistics.stdev(finite):.3f}{note}"


def write_report(path: Path, lines: list[str]) -> None:
    """Write the markdown report and print it, then where it went."""
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}", flush=True)
