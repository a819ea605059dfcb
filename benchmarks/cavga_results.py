"""The tables of CAVGA's Table 8 ablation (paper 003) on xgen's offline data, from a run log; this runs nothing.

The runs are made by `xgen reproduce`: the three claims of `xgen_plugins/cavga/ablation_claims.py` share one grid
(experiment "cavga-ablation"), the grid of the removed benchmarks/cavga_ablation.py with the same calls of
`xgen.train` and `xgen.evaluate` (`git show d37fb22^:benchmarks/cavga_ablation.py`):

    xgen reproduce cavga-l-ae-improves-iou cavga-conv-z-beats-flat-z cavga-weak-beats-unsupervised --threads 1 \\
        --out benchmarks/runs/reproduce             # the grid (resumable; start it again for a second worker)
    python benchmarks/cavga_results.py report --out docs/results/cavga-log.md
    python benchmarks/cavga_results.py compare --old benchmarks/runs/cavga-ablation.jsonl

`report` writes the removed script's tables, the controls each reproduce run records and the claims' verdicts from
the log alone (`--log`: the reproduce log, or the removed script's). `compare` prints in Markdown every cell of the
removed script's log (and of its control log) beside the same cell of the reproduce log: how far they differ, what
is missing on either side, and which of the page's claim differences and verdicts change sign.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path
from typing import Any

from result_runs import cell, flat_runs, shown_path, write_report

from xgen_plugins.cavga.ablation_claims import ABLATION_CLAIMS, ABLATION_GRID, DATASETS, EXPERIMENT, MAP_METRICS
from xgen_plugins.cavga.ablation_claims import VARIANTS as CLAIM_VARIANTS

RUNS = Path(__file__).parent / "runs"
LOG = RUNS / "reproduce" / "runs.jsonl"
SETTINGS = ABLATION_GRID["default"][2]
#: variant -> its label; weak+balance is a side run of the removed script, in no claim's grid
LABELS = {**{v: label for v, (label, _) in CLAIM_VARIANTS.items()}, "weak+balance": "weak, classes balanced in L_bce"}
COMPARISONS = [
    ("L_ae improves IoU (flat: c2 − c1)", "flat+ae", "flat"),
    ("L_ae improves IoU (conv: c4 − c3)", "conv+ae", "conv"),
    ("conv z beats flat z (c3 − c1)", "conv", "flat"),
    ("conv z beats flat z, both + L_ae (c4 − c2)", "conv+ae", "flat+ae"),
    ("weak beats unsupervised (c8 − c4)", "weak", "conv+ae"),
]
CONTROL = "fixed-map pixel-auroc"
COMMAND = (
    "xgen reproduce cavga-l-ae-improves-iou cavga-conv-z-beats-flat-z cavga-weak-beats-unsupervised --threads 1 "
    "--out benchmarks/runs/reproduce"
)
ABS = "\\|Δ\\|"  # |Δ| inside a Markdown table cell
Key = tuple[str, str, int]

# ---- reading a log ---------------------------------------------------------------------------------------------------


def records(log: Path) -> list[dict[str, Any]]:
    """The default-scale ablation runs in `log` as flat records (`result_runs.flat_runs`)."""
    return flat_runs(
        log,
        EXPERIMENT,
        SETTINGS,
        lambda r: r.get("extra") == {} and r.get("epochs_asked") is None and r.get("normalize") == "per-image",
    )


def key(record: dict[str, Any]) -> Key:
    return (record["data"], record["variant"], record["seed"])


def chosen(runs: list[dict[str, Any]], data: str, variant: str) -> list[dict[str, Any]]:
    return sorted((r for r in runs if r["data"] == data and r["variant"] == variant), key=lambda r: r["seed"])


def values(runs: list[dict[str, Any]], metric: str) -> list[float]:
    """The metric of each run that has it (a control's name reads the run's controls)."""
    where = "controls" if metric == CONTROL else "metrics"
    return [r[where][metric] for r in runs if metric in r.get(where, {})]


def cells_of(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(data, variant) pairs present in `runs`, in the table's order."""
    present = {(r["data"], r["variant"]) for r in runs}
    datasets = DATASETS + sorted({d for d, _ in present} - set(DATASETS))
    return [(d, v) for d in datasets for v in LABELS if (d, v) in present]


def short(data: str) -> str:
    return data.removeprefix("textures:")


def threads(machine: str) -> str:
    found = re.search(r"with (\d+) thread", machine)
    return found.group(1) if found else "?"


# ---- the tables the removed script wrote -----------------------------------------------------------------------------


def table(runs: list[dict[str, Any]]) -> list[str]:
    """One row per (data, variant): mean ± sample std over the seeds of each metric, and the mean training time."""
    lines = [
        "| data | variant | seeds | " + " | ".join(MAP_METRICS) + " | train s (mean) |",
        "| --- | --- | --- | " + " | ".join("---" for _ in MAP_METRICS) + " | --- |",
    ]
    for data, variant in cells_of(runs):
        rows = chosen(runs, data, variant)
        seconds = statistics.mean(r["train_seconds"] for r in rows)
        seeds = ",".join(str(r["seed"]) for r in rows)
        metrics = " | ".join(cell(values(rows, m)) for m in MAP_METRICS)
        lines.append(f"| {data} | {LABELS[variant]} | {seeds} | {metrics} | {seconds:.0f} |")
    return lines


def claim_deltas(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(claim, data, metric) -> (difference of seed means, first minus second; the larger of the two sample stds)."""
    out = {}
    for claim, first, second in COMPARISONS:
        for data in dict.fromkeys(r["data"] for r in runs):
            a, b = chosen(runs, data, first), chosen(runs, data, second)
            for m in MAP_METRICS:
                va, vb = values(a, m), values(b, m)
                if va and vb:
                    spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (va, vb))
                    out[claim, data, m] = (statistics.mean(va) - statistics.mean(vb), spread)
    return out


def comparisons(runs: list[dict[str, Any]]) -> list[str]:
    """One row per claim and data set: the difference of seed means of each metric with the larger seed std."""
    deltas = claim_deltas(runs)
    lines = [
        "| claim | data | " + " | ".join(f"Δ {m}" for m in MAP_METRICS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in MAP_METRICS) + " |",
    ]
    for claim, _, _ in COMPARISONS:
        for data in [d for d in DATASETS if any((claim, d, m) in deltas for m in MAP_METRICS)]:
            shown = [deltas.get((claim, data, m)) for m in MAP_METRICS]
            text = [f"{d:+.3f} (std {s:.3f})" if d is not None else "–" for d, s in (x or (None, 0) for x in shown)]
            lines.append(f"| {claim} | {short(data)} | " + " | ".join(text) + " |")
    return lines


def control_table(runs: list[dict[str, Any]]) -> list[str]:
    """The pixel AUROC of each configuration's maps beside that of each run's mean map given to every image."""
    lines = []
    for data, variant in cells_of(runs):
        rows = [r for r in chosen(runs, data, variant) if CONTROL in r.get("controls", {})]
        if rows:
            seeds = ",".join(str(r["seed"]) for r in rows)
            own, fixed = cell(values(rows, "pixel-auroc")), cell(values(rows, CONTROL))
            lines.append(f"| {short(data)} | {LABELS[variant]} | {seeds} | {own} | {fixed} |")
    if not lines:
        return []
    return [
        "Position control: the pixel AUROC of each run's maps beside that of their mean map given to every image:",
        "",
        "| data | variant | seeds | pixel-auroc | fixed-map pixel-auroc |",
        "| --- | --- | --- | --- | --- |",
        *lines,
        "",
    ]


def references(runs: list[dict[str, Any]]) -> list[str]:
    """The levels that maps knowing nothing of the image reach, per data set (the same in every run of it)."""
    names = ["flag-all iou", "mean-mask pixel-auroc", "mean-mask best-iou"]
    lines = []
    for data in dict.fromkeys(r["data"] for r in runs):
        controls = [r["controls"] for r in runs if r["data"] == data and "flag-all iou" in r.get("controls", {})]
        if controls:
            lines.append(f"| {short(data)} | " + " | ".join(cell([c[k] for c in controls]) for k in names) + " |")
    if not lines:
        return []
    return [
        "Reference levels (every run of a data set records them; mean ± std over its runs):",
        "",
        "| data | IoU of a map flagging every pixel | pixel AUROC of the mean test mask given to every image "
        "| best IoU of that mean mask |",
        "| --- | --- | --- | --- |",
        *lines,
        "",
    ]


def per_run(runs: list[dict[str, Any]]) -> list[str]:
    """Every run: its metrics, its mean map's pixel AUROC and whether `xgen evaluate` found the IoU map empty."""
    lines = [
        "| data | variant | seed | " + " | ".join(MAP_METRICS) + f" | {CONTROL} | IoU map empty | train s |",
        "| --- | --- | --- | " + " | ".join("---" for _ in MAP_METRICS) + " | --- | --- | --- |",
    ]
    for data, variant in cells_of(runs):
        for r in chosen(runs, data, variant):
            shown = [f"{r['metrics'][m]:.3f}" if m in r["metrics"] else "–" for m in MAP_METRICS]
            control = r.get("controls", {}).get(CONTROL)
            empty = "yes" if any("flags none of the pixels" in w for w in r.get("warnings", [])) else ""
            lines.append(
                f"| {short(data)} | {LABELS[variant]} | {r['seed']} | " + " | ".join(shown) + " | "
                f"{'–' if control is None else f'{control:.3f}'} | {empty} | {r['train_seconds']:.0f} |"
            )
    return lines


def verdicts(runs: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(claim, subject) -> (verdict, measured): each claim's own `findings` (the rule of `xgen reproduce`) on `runs`."""
    as_logged = []
    for r in runs:
        controls = r.get("controls", {}) if "flag-all iou" in r.get("controls", {}) else {}
        run = {"experiment": EXPERIMENT, "data": r["data"], "variant": r["variant"], "seed": r["seed"]}
        as_logged.append({"run": run, "result": {"metrics": r["metrics"], "controls": controls}})
    out = {}
    for claim in ABLATION_CLAIMS:
        for f in claim().findings(as_logged):
            out[f.claim, f.subject] = (f.verdict, f.measured)
    return out


def verdict_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["| claim | on | measured | verdict |", "| --- | --- | --- | --- |"]
    for (claim, subject), (verdict, measured) in verdicts(runs).items():
        lines.append(f"| `{claim}` | {subject} | {measured} | **{verdict}** |")
    return lines


def report(args: argparse.Namespace) -> None:
    runs = records(args.log)
    machines = sorted({r["machine"] for r in runs})
    finished = sorted(r["finished"] for r in runs)
    dates = f"{finished[0]} to {finished[-1]}" if finished else "–"
    script = any("epochs_asked" in r for r in runs)
    made_by = "the removed benchmarks/cavga_ablation.py (git history)" if script else f"`{COMMAND}`"
    lines = [
        "# CAVGA ablation (Table 8) on xgen's offline data: the run log (generated)",
        "",
        f"Made by `python benchmarks/cavga_results.py report --out {args.out}` from {len(runs)} records of experiment "
        f"`{EXPERIMENT}` (default scale) in `{shown_path(args.log)}`. The runs were made by {made_by}.",
        "",
        f"Machines of the runs: {'; '.join(machines) or '–'}. Finished {dates}.",
        "",
        "Maps and scores normalised by xgen evaluate's `per-image`; `iou` thresholds the maps at 0.5; scores: the "
        "cavga explainer's (mean absolute reconstruction difference, or the classifier's P(anomalous) for the weak "
        "variant). Mean ± sample std over the seeds. Training times were measured with the cores shared.",
        "",
        *table(runs),
        "",
        "The paper's claims, as differences of seed means (first variant minus second) with the larger of the two "
        "seed stds; a positive value supports the claim:",
        "",
        *comparisons(runs),
        "",
        "The verdicts by the claims' own rule (`xgen reproduce`'s: the difference of seed means counts when it exceeds "
        "the larger seed std and 0.0005; decided on IoU, on image AUROC for digits):",
        "",
        *verdict_table(runs),
        "",
        *references(runs),
        *control_table(runs),
        "Every run:",
        "",
        *per_run(runs),
        "",
    ]
    write_report(args.out, lines)


# ---- the removed script's log beside the reproduce log ---------------------------------------------------------------


def largest(pairs: list[tuple[str, float]]) -> str:
    where, delta = max(pairs, key=lambda p: abs(p[1]))
    return f"{delta:+.3f} ({where})"


def run_summary(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Per metric, over the runs in both logs: the largest |Δ| (new minus old) and the mean |Δ|, overall and by the
    old run's thread count."""
    by_key = {key(r): r for r in new}
    both = [(o, by_key[key(o)]) for o in old if key(o) in by_key]
    groups = sorted({threads(o["machine"]) for o, _ in both})
    lines = [
        f"| metric | runs in both | largest {ABS} (run) | mean {ABS} | "
        + " | ".join(f"mean {ABS}, old run at {t} thread(s)" for t in groups)
        + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in groups) + " |",
    ]
    for m in [*MAP_METRICS, CONTROL]:
        pairs = [(o, n) for o, n in both if values([o], m) and values([n], m)]
        if not pairs:
            continue
        deltas = [
            (f"{short(o['data'])} {o['variant']} s{o['seed']}", values([n], m)[0] - values([o], m)[0]) for o, n in pairs
        ]
        by_group = []
        for t in groups:
            group = [abs(d) for (o, _), (_, d) in zip(pairs, deltas, strict=True) if threads(o["machine"]) == t]
            by_group.append(f"{statistics.mean(group):.3f} ({len(group)})" if group else "–")
        mean = statistics.mean(abs(d) for _, d in deltas)
        lines.append(f"| {m} | {len(pairs)} | {largest(deltas)} | {mean:.3f} | " + " | ".join(by_group) + " |")
    return lines


def cell_table(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Every (data, variant) cell of the old table beside the new one (mean ± std over seeds, old → new), and per
    metric the largest and mean |Δ| of the seed means."""
    lines = [
        "| data | variant | " + " | ".join(f"{m}: old → new" for m in MAP_METRICS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in MAP_METRICS) + " |",
    ]
    deltas: dict[str, list[tuple[str, float]]] = {m: [] for m in MAP_METRICS}
    for data, variant in cells_of(old):
        a, b = chosen(old, data, variant), chosen(new, data, variant)
        shown = []
        for m in MAP_METRICS:
            va, vb = values(a, m), values(b, m)
            if not va:
                shown.append("–")
                continue
            if vb:
                deltas[m].append((f"{short(data)} {variant}", statistics.mean(vb) - statistics.mean(va)))
            shown.append(f"{cell(va)} → {cell(vb)}")
        lines.append(f"| {short(data)} | {LABELS[variant]} | " + " | ".join(shown) + " |")
    summary = [f"| metric | cells in both | largest {ABS} of the seed mean (cell) | mean {ABS} |"]
    summary.append("| --- | --- | --- | --- |")
    for m, pairs in deltas.items():
        if pairs:
            mean = statistics.mean(abs(d) for _, d in pairs)
            summary.append(f"| {m} | {len(pairs)} | {largest(pairs)} | {mean:.3f} |")
    return lines, summary


def missing(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """The runs in one log and not the other, grouped by (data, variant)."""
    lines = []
    for name, these, other in (("reproduce", old, new), ("old", new, old)):
        gone = {key(r) for r in these} - {key(r) for r in other}
        groups: dict[tuple[str, str], list[int]] = {}
        for data, variant, seed in sorted(gone):
            groups.setdefault((data, variant), []).append(seed)
        for (data, variant), seeds in groups.items():
            lines.append(f"- not in the {name} log: {data} {variant}, seeds {', '.join(map(str, seeds))}")
    return lines or ["- none: every run is in both logs"]


def sign_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """The claim differences (first variant minus second) whose sign at three decimals differs between the logs."""
    before, after = claim_deltas(old), claim_deltas(new)
    lines = []
    for k, (d_old, s_old) in before.items():
        if k not in after:
            continue
        d_new, s_new = after[k]
        a, b = round(d_old, 3), round(d_new, 3)
        if a * b < 0:
            claim, data, m = k
            lines.append(
                f"| {claim} | {short(data)} | {m} | {d_old:+.3f} (std {s_old:.3f}) | {d_new:+.3f} (std {s_new:.3f}) |"
            )
    head = ["| claim | data | metric | old Δ | new Δ |", "| --- | --- | --- | --- | --- |"]
    return head + lines if lines else ["No claim difference changes sign."]


def verdict_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Every finding's verdict under the claims' rule on the old log and on the new one; changes in bold."""
    before, after = verdicts(old), verdicts(new)
    lines = ["| claim | on | old log | reproduce log |", "| --- | --- | --- | --- |"]
    for k in dict.fromkeys([*before, *after]):
        a, b = before.get(k, ("–", ""))[0], after.get(k, ("–", ""))[0]
        mark = "**" if a != b else ""
        lines.append(f"| `{k[0]}` | {k[1]} | {mark}{a}{mark} | {mark}{b}{mark} |")
    return lines


def control_runs(control: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """The control log's runs beside the same cells of the reproduce log, every metric and the mean map's."""
    by_key = {key(r): r for r in new}
    shown_metrics = [*MAP_METRICS, CONTROL]
    lines = [
        "| data | variant | seed | old machine | " + " | ".join(f"{m}: old → new" for m in shown_metrics) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in shown_metrics) + " |",
    ]
    for o in sorted(control, key=key):
        n = by_key.get(key(o))
        shown = []
        for m in shown_metrics:
            va, vb = values([o], m), values([n], m) if n else []
            shown.append(f"{va[0]:.3f} → {vb[0]:.3f}" if va and vb else "–")
        cpu = o["machine"].split(",")[0]
        lines.append(
            f"| {short(o['data'])} | {LABELS[o['variant']]} | {o['seed']} | {cpu}, {threads(o['machine'])} thread(s) | "
            + " | ".join(shown)
            + " |"
        )
    return lines


def compare(args: argparse.Namespace) -> None:
    old, new = records(args.old), records(args.log)
    control = records(Path(args.control)) if args.control else []
    cells, summary = cell_table(old, new)
    machines_old, machines_new = ("; ".join(sorted({r["machine"] for r in rs})) for rs in (old, new))
    lines = [
        f"Old log: `{shown_path(args.old)}` ({len(old)} runs; {machines_old}). Reproduce log: "
        f"`{shown_path(args.log)}` ({len(new)} runs of `{EXPERIMENT}`; {machines_new}). Δ = reproduce minus old.",
        "",
        "Per run (the same data, variant and seed):",
        "",
        *run_summary(old, new),
        "",
        "Per table cell (the mean over seeds):",
        "",
        *summary,
        "",
        "Missing on either side:",
        "",
        *missing(old, new),
        "",
        "Claim differences (seed means, first variant minus second) whose sign changes:",
        "",
        *sign_changes(old, new),
        "",
        "Verdicts by the claims' rule on each log:",
        "",
        *verdict_changes(old, new),
        "",
    ]
    if control:
        head = f"The control log `{shown_path(Path(args.control))}` beside the reproduce log:"
        lines += [head, "", *control_runs(control, new), ""]
    lines += ["Every cell of the old table beside the reproduce log's (mean ± std over seeds):", "", *cells, ""]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="write the tables from a log")
    p.add_argument("--log", type=Path, default=LOG, help="the reproduce log, or the removed script's")
    p.add_argument("--out", type=Path, default=Path("docs/results/cavga-log.md"))
    p = sub.add_parser("compare", help="print the old script's log beside the reproduce log")
    p.add_argument("--old", type=Path, default=RUNS / "cavga-ablation.jsonl", help="the removed script's log")
    p.add_argument("--control", default=str(RUNS / "cavga-control.jsonl"), help="its control log ('' for none)")
    p.add_argument("--log", type=Path, default=LOG, help="the reproduce log")
    args = parser.parse_args()
    if args.command == "compare":
        compare(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
