"""P-WAE's results (issue 6): the tables of docs/results/pwae.md from a run log, and the earlier log beside it.

`report` writes the tables (detection against conv-vae, the ablations, HSIC's feature diversity) from one log;
`compare` sets every cell of the earlier script's log beside the same cell of the `xgen reproduce` log (issue 15).

This script runs nothing. The runs come from `xgen reproduce`: the six claims of `xgen_plugins/pwae/claims.py`
share one grid (experiment "pwae-results": 13 data sets x 5 variants, seed 0, 65 runs at the default scale), and
each run is appended to the reproduce log as it finishes:

    xgen reproduce --paper 002 --threads 1 --out benchmarks/runs/reproduce    # the grid (resumable)
    python benchmarks/pwae_results.py report --log benchmarks/runs/reproduce/runs.jsonl \\
        --out docs/results/pwae-log.md
    python benchmarks/pwae_results.py compare --old benchmarks/runs/pwae-results.jsonl \\
        --log benchmarks/runs/reproduce/runs.jsonl

Both subcommands also read the former script's log (`benchmarks/runs/pwae-results.jsonl`, written 2026-11-22 by the
former version of this script, which ran the grid itself; removed in d37fb22, in git history before it), whose
records hold the same fields flat.
`compare` prints Markdown: per metric the largest and mean |Δ|, cells missing on either side, every claim difference
whose sign changed, and each finding's verdict under the claims' own rule on both logs.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

from result_runs import cell, flat_runs, shown_path, write_report

from xgen_plugins.pwae.claims import DATASETS, EXPERIMENT, PWAE_CLAIMS, PWAE_GRID, VARIANTS

RUNS = Path(__file__).parent / "runs"
REPRODUCE = "xgen reproduce --paper 002 --threads 1 --out benchmarks/runs/reproduce"
#: (claim, first variant, its rule, second variant, its rule, metric); a positive Δ supports the claim
COMPARISONS = [
    ("P-WAE beats conv-vae (image AUROC)", "pwae", "image+tiles", "conv-vae", "-", "image-auroc"),
    ("P-WAE beats conv-vae (pixel AUROC)", "pwae", "image+tiles", "conv-vae", "-", "pixel-auroc"),
    ("tile rule helps (image AUROC)", "pwae", "image+tiles", "pwae", "image", "image-auroc"),
    ("HSIC helps (image AUROC)", "pwae", "image+tiles", "no-hsic", "image+tiles", "image-auroc"),
    ("jigsaw helps (image AUROC)", "pwae", "image+tiles", "no-jigsaw", "image+tiles", "image-auroc"),
    (
        "Student-t SWD beats Gaussian KL (image AUROC)",
        "pwae",
        "image+tiles",
        "gaussian-kl",
        "image+tiles",
        "image-auroc",
    ),
    ("HSIC raises effective rank", "pwae", "-", "no-hsic", "-", "effective-rank"),
    ("HSIC lowers mean abs correlation", "no-hsic", "-", "pwae", "-", "mean-abs-correlation"),
]
#: (column header, rule, metric) of the main table, and the cells `compare` sets side by side
COLUMNS = [
    ("image AUROC", "image+tiles", "image-auroc"),
    ("image AUROC, image rule", "image", "image-auroc"),
    ("max bal. acc.", "image+tiles", "max-balanced-accuracy"),
    ("max bal. acc., image rule", "image", "max-balanced-accuracy"),
    ("pixel AUROC", "image+tiles", "pixel-auroc"),
    ("eff. rank", "-", "effective-rank"),
    ("mean abs corr", "-", "mean-abs-correlation"),
]
LOSSES = ["loss", "ae", "swd", "kl", "hsic", "jigsaw"]


# ---- the records ----------------------------------------------------------------------------------------------------


def records(log: Path) -> list[dict[str, Any]]:
    """The default-scale P-WAE runs in `log` as flat records (`result_runs.flat_runs`)."""

    def former(r: dict[str, Any]) -> bool:
        return "metrics" in r and r.get("epochs_asked") is None and not r.get("extra") and r.get("normalize") == "none"

    return flat_runs(log, EXPERIMENT, PWAE_GRID["default"][2], former)


def value(run: dict[str, Any], rule: str, metric: str) -> float | None:
    """One run's metric under `rule` (conv-vae has one score, "-"; the diversity measures have no rule)."""
    if metric in run["diversity"]:
        return run["diversity"][metric]
    return run["metrics"].get(rule if run["architecture"] == "pwae" else "-", {}).get(metric)


def values(runs: list[dict[str, Any]], variant: str, rule: str, metric: str) -> list[float]:
    """The metric over the runs of `variant` that have it."""
    found = [value(r, rule, metric) for r in runs if r["variant"] == variant]
    return [v for v in found if v is not None]


def groups(runs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, runs) per data set in the grid's order, then the digits mean over classes (each seed's classes
    pooled)."""
    present = [d for d in DATASETS if any(r["data"] == d for r in runs)]
    out = [(data, [r for r in runs if r["data"] == data]) for data in present]
    digits = [r for r in runs if r["data"].startswith("digits")]
    classes = len({r["data"] for r in digits})
    if classes > 1:
        out.append((f"digits, mean of {classes} classes", digits))
    return out


# ---- the report -----------------------------------------------------------------------------------------------------


def table(runs: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: one per (data, variant), mean ± sample std over seeds (over classes and seeds for the digits
    mean). For conv-vae the rule columns repeat its single recon-error score."""
    lines = [
        "| data | variant | runs | " + " | ".join(c[0] for c in COLUMNS) + " | train s (mean) |",
        "| --- | --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- |",
    ]
    for label, chosen in groups(runs):
        for variant, (name, _, _) in VARIANTS.items():
            mine = [r for r in chosen if r["variant"] == variant]
            if not mine:
                continue
            cells = [cell(values(mine, variant, rule, metric)) for _, rule, metric in COLUMNS]
            seconds = statistics.mean(r["train_seconds"] for r in mine)
            lines.append(f"| {label} | {name} | {len(mine)} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return lines


def claim_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, float, str, str]]:
    """(claim, data group, Δ of means first − second, the larger sample std or '– (one run each)', 'k of n' paired
    runs (same data and seed) with the first ahead) for each claim and data group; NaN values are left out."""
    rows = []
    for claim, a, rule_a, b, rule_b, metric in COMPARISONS:
        for label, chosen in groups(runs):
            va = [v for v in values(chosen, a, rule_a, metric) if math.isfinite(v)]
            vb = [v for v in values(chosen, b, rule_b, metric) if math.isfinite(v)]
            if not va or not vb:
                continue
            spreads = [statistics.stdev(v) for v in (va, vb) if len(v) > 1]
            spread = f"{max(spreads):.3f}" if spreads else "– (one run each)"
            pairs = []
            for key in sorted({(r["data"], r["seed"]) for r in chosen}):
                mine = [r for r in chosen if (r["data"], r["seed"]) == key]
                pa = [v for v in values(mine, a, rule_a, metric) if math.isfinite(v)]
                pb = [v for v in values(mine, b, rule_b, metric) if math.isfinite(v)]
                if pa and pb:
                    pairs.append(pa[0] > pb[0])
            delta = statistics.mean(va) - statistics.mean(vb)
            rows.append((claim, label, delta, spread, f"{sum(pairs)} of {len(pairs)}"))
    return rows


def comparisons(runs: list[dict[str, Any]]) -> list[str]:
    """The claim rows as a Markdown table, so a difference can be read against the spread."""
    lines = [
        "| claim | data | Δ (first − second) | spread (std) | first ahead in |",
        "| --- | --- | --- | --- | --- |",
    ]
    for claim, label, delta, spread, ahead in claim_rows(runs):
        lines.append(f"| {claim} | {label} | {delta:+.3f} | {spread} | {ahead} |")
    return lines


def losses(runs: list[dict[str, Any]]) -> list[str]:
    """The last epoch's training losses and the steps of every run (seed 0 first), so the jigsaw loss against its
    chance level ln 100 = 4.61 and the schedules can be read from the log."""
    lines = [
        "| data | variant | seed | steps | " + " | ".join(LOSSES) + " |",
        "|---|---|---|---|" + "---|" * len(LOSSES),
    ]
    order = {d: i for i, d in enumerate(DATASETS)}
    for r in sorted(runs, key=lambda r: (order.get(r["data"], len(order)), list(VARIANTS).index(r["variant"]))):
        shown = [f"{r['final_losses'][k]:.4g}" if k in r["final_losses"] else "–" for k in LOSSES]
        head = f"| {r['data']} | {VARIANTS[r['variant']][0]} | {r['seed']} | {r['steps']} | "
        lines.append(head + " | ".join(shown) + " |")
    return lines


def report(args: argparse.Namespace) -> None:
    """Write the tables of the runs in `--log` to `--out` (and print them)."""
    runs = records(args.log)
    finished = sorted(r["finished"] for r in runs)
    dates = f"{finished[0]} to {finished[-1]}" if finished else "–"
    made_by = f"`{REPRODUCE}`" if "reproduce" in str(args.log) else "the former `benchmarks/pwae_results.py` grid"
    lines = [
        "# P-WAE on xgen's offline data: the run log (generated)",
        "",
        f"Made by `python benchmarks/pwae_results.py report --log {shown_path(args.log)} --out {shown_path(args.out)}` "
        f"from {len(runs)} runs "
        f"of experiment `{EXPERIMENT}` at the default scale, run by {made_by} and finished {dates}.",
        "",
        f"Seeds: {', '.join(map(str, sorted({r['seed'] for r in runs})))}. Machines of the runs: " + machines(runs),
        "",
        "xgen evaluate's normalisation: `none`. P-WAE: explainer `pwae-patch-error`, score under `rule=image+tiles` "
        "(eq. 21-23) and `rule=image` (eq. 22 alone); conv-vae: explainer `recon-error` (squared). Diversity: the "
        "latent means of the test images (P-WAE: all tile codes flattened; conv-vae: its 32-d mean). Mean ± sample "
        'std over runs; "undefined": a measure with no value for that run (conv-vae\'s codes did not vary).',
        "",
        *table(runs),
        "",
        "Claims, as differences of means (first minus second); a positive value supports the claim:",
        "",
        *comparisons(runs),
        "",
        "Training losses of the last epoch and training steps, run by run:",
        "",
        *losses(runs),
        "",
    ]
    write_report(args.out, lines)


# ---- the comparison -------------------------------------------------------------------------------------------------


def cells(runs: list[dict[str, Any]]) -> dict[tuple[str, str, int, str], float]:
    """Every table cell of every run: (data, variant, seed, column) -> value, plus the final total loss; conv-vae's
    repeated image-rule columns are left out."""
    out = {}
    for r in runs:
        for header, rule, metric in COLUMNS:
            if rule == "image" and r["architecture"] != "pwae":
                continue
            v = value(r, rule, metric)
            if v is not None:
                out[r["data"], r["variant"], r["seed"], header] = v
        out[r["data"], r["variant"], r["seed"], "final loss"] = r["final_losses"]["loss"]
    return out


def delta_table(old: dict[tuple, float], new: dict[tuple, float]) -> list[str]:
    """Per column: cells on both sides, the largest |Δ| (new − old) and where, the mean |Δ|; a cell undefined on one
    side only is counted apart."""
    lines = [
        "| measure | cells | largest abs Δ (new − old), where | mean abs Δ | undefined on one side |",
        "| --- | --- | --- | --- | --- |",
    ]
    for header in [c[0] for c in COLUMNS] + ["final loss"]:
        shared = [k for k in old if k[3] == header and k in new]
        finite = [k for k in shared if math.isfinite(old[k]) and math.isfinite(new[k])]
        one_sided = [k for k in shared if math.isfinite(old[k]) != math.isfinite(new[k])]
        if not finite:
            continue
        worst = max(finite, key=lambda k: abs(new[k] - old[k]))
        mean = statistics.mean(abs(new[k] - old[k]) for k in finite)
        where = f"{worst[0]} {VARIANTS[worst[1]][0]} ({old[worst]:.4g} → {new[worst]:.4g})"
        shown = ", ".join(f"{k[0]} {k[1]}" for k in one_sided) or "none"
        lines.append(f"| {header} | {len(finite)} | {new[worst] - old[worst]:+.4g}, {where} | {mean:.4g} | {shown} |")
    return lines


def missing(old: dict[tuple, float], new: dict[tuple, float]) -> list[str]:
    """The runs (data, variant, seed) with cells on one side only."""
    lines = []
    for name, here, there in (("the earlier log", old, new), ("the reproduce log", new, old)):
        only = sorted({k[:3] for k in here if k not in there})
        lines.append(f"- Cells only in {name}: " + (", ".join(f"{d} {v} seed {s}" for d, v, s in only) or "none") + ".")
    return lines


def sign_changes(old_runs: list[dict[str, Any]], new_runs: list[dict[str, Any]]) -> list[str]:
    """Every claim difference (claim, data group) whose sign differs between the logs, and the digits-mean rows in
    full (the page's headline numbers)."""
    old = {(c, g): (d, s, a) for c, g, d, s, a in claim_rows(old_runs)}
    new = {(c, g): (d, s, a) for c, g, d, s, a in claim_rows(new_runs)}
    head = [
        "| claim | data | Δ earlier | Δ reproduce | first ahead in, earlier → reproduce |",
        "| --- | --- | --- | --- | --- |",
    ]

    def row(key: tuple[str, str]) -> str:
        (d0, _, a0), (d1, _, a1) = old[key], new[key]
        return f"| {key[0]} | {key[1]} | {d0:+.3f} | {d1:+.3f} | {a0} → {a1} |"

    shared = [k for k in old if k in new]
    flipped = [k for k in shared if (old[k][0] > 0) != (new[k][0] > 0) and old[k][0] != new[k][0]]
    digits = [k for k in shared if k[1].startswith("digits, mean")]
    return [
        f"Claim differences whose sign changed ({len(flipped)} of {len(shared)}):",
        "",
        *(head + [row(k) for k in flipped] if flipped else ["none"]),
        "",
        "The digits means (ten classes), every claim:",
        "",
        *head,
        *[row(k) for k in digits],
    ]


def as_reproduce(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat records back in the reproduce layout the claims' `findings` read."""
    return [
        {"run": {"experiment": EXPERIMENT, "data": r["data"], "variant": r["variant"], "seed": r["seed"]}, "result": r}
        for r in runs
    ]


def verdicts(old_runs: list[dict[str, Any]], new_runs: list[dict[str, Any]]) -> list[str]:
    """Each finding of the six claims under their own rule (`xgen.claims.compare`) on both logs."""
    lines = ["| claim | on | verdict, earlier log | verdict, reproduce log |", "| --- | --- | --- | --- |"]
    moved = 0
    for claim_type in PWAE_CLAIMS:
        claim = claim_type()
        before = {f.subject: f.verdict for f in claim.findings(as_reproduce(old_runs))}
        after = {f.subject: f.verdict for f in claim.findings(as_reproduce(new_runs))}
        for subject in dict.fromkeys([*before, *after]):
            a, b = before.get(subject, "–"), after.get(subject, "–")
            moved += a != b
            lines.append(f"| `{claim.name}` | {subject} | {a} | {b}{' (moved)' if a != b else ''} |")
    return [f"Verdicts under the claims' rule ({moved} moved):", "", *lines]


def machines(runs: list[dict[str, Any]]) -> str:
    """The machine lines of the runs, each once."""
    return "; ".join(sorted({r["machine"] for r in runs})) or "–"


def compare_logs(args: argparse.Namespace) -> None:
    """Print, as Markdown, how the reproduce log's cells differ from the earlier log's."""
    old_runs, new_runs = records(args.old), records(args.log)
    old, new = cells(old_runs), cells(new_runs)
    lines = [
        f"Earlier log `{shown_path(args.old)}`: {len(old_runs)} runs ({machines(old_runs)}). "
        f"Reproduce log `{shown_path(args.log)}`: "
        f"{len(new_runs)} runs ({machines(new_runs)}). Δ = reproduce − earlier, cell by cell (same run).",
        "",
        *delta_table(old, new),
        "",
        *missing(old, new),
        "",
        *sign_changes(old_runs, new_runs),
        "",
        *verdicts(old_runs, new_runs),
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="the tables of one log, as Markdown")
    p.add_argument("--log", type=Path, default=RUNS / "reproduce" / "runs.jsonl", help="reproduce or former log")
    p.add_argument("--out", type=Path, default=Path("docs/results/pwae-log.md"))
    p = sub.add_parser("compare", help="the earlier log's cells beside the reproduce log's")
    p.add_argument("--old", type=Path, default=RUNS / "pwae-results.jsonl", help="the former script's log")
    p.add_argument("--log", type=Path, default=RUNS / "reproduce" / "runs.jsonl", help="the reproduce log")
    args = parser.parse_args()
    if args.command == "report":
        report(args)
    else:
        compare_logs(args)


if __name__ == "__main__":
    main()
