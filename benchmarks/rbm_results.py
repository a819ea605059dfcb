"""The stacked-RBM tables of docs/results/rbm.md (paper 000, section 4.2.2 and supplement D, Figure 12): how much the
rbm-gumbel maps of distinct digits correlate, and on textures the pixel AUROC and best IoU of rbm-gumbel,
rbm-recon-error, vae-gradcam and recon-error beside the fixed-map controls.

This script runs nothing. The runs come from `xgen reproduce` (the claims `rbm-gumbel-mnist-figure-12` and
`vae-gradcam-beats-rbm-gumbel` of `xgen_plugins/rbm/claims.py`, which hold the run code of this script's former
version, removed in d37fb22):

    xgen reproduce rbm-gumbel-mnist-figure-12 vae-gradcam-beats-rbm-gumbel --threads 1 --out benchmarks/runs/reproduce
    python benchmarks/rbm_results.py report --out docs/results/rbm-log.md
    python benchmarks/rbm_results.py compare --old benchmarks/runs/rbm-results/runs.jsonl

`report` writes the tables from the reproduce log alone. `compare` prints, as Markdown, every cell of the former
script's log (its runs.jsonl, and the fixed-map and correlation cells of the results.md beside it, which that log did
not record) beside the same cell of the reproduce log, and the page's differences whose sign changed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from result_runs import cell, load_runs, shown_path, write_report

from xgen_plugins.rbm.claims import (
    CATEGORIES,
    GALLERY_GRID,
    MEAN_MASK,
    METRICS,
    TEXTURE_GRID,
    StackedRBMFigure12,
    VAEGradCAMBeatsRBMGumbel,
)

RUNS = Path(__file__).parent / "runs"
GALLERY, TEXTURES = "rbm-gallery", "rbm-textures"
COMMAND = (
    "xgen reproduce rbm-gumbel-mnist-figure-12 vae-gradcam-beats-rbm-gumbel --threads 1 --out benchmarks/runs/reproduce"
)
VIEWS = ("pixel view", "hidden grid")
#: the former script's labels -> the claims' labels of the same maps
RENAMED = {
    "layer 1, straight-thr., tau 0.5": "layer 1, straight-through, tau 0.5",
    "layer 1, one-hot (flawed)": "layer 1, one-hot (report code)",
    "fixed map: the mean conv-vae: vae-gradcam map, the same for every image": (
        "fixed map: the mean vae-gradcam map, the same for every image"
    ),
    "fixed map: the mean conv-vae: recon-error map, the same for every image": (
        "fixed map: the mean recon-error map, the same for every image"
    ),
}
#: a cell: (where: a texture or "digits", row: a map or a model, metric, training seed)
Cell = tuple[str, str, str, int]
Cells = dict[Cell, float]

# ---- reading the logs -----------------------------------------------------------------------------------------------


def category(data: str) -> str:
    """'textures:brick,size=32,...' -> 'brick'; a digits spec -> 'digits'."""
    name, _, rest = data.partition(":")
    return rest.split(",")[0] if name == "textures" else "digits"


def reproduce_records(log: Path, scale: str = "default") -> list[dict[str, Any]]:
    """The log's records of the two RBM claims at `scale`'s settings, the last one per run key."""
    gallery_data, options, taus, probe = GALLERY_GRID[scale]
    specs, _, texture_settings = TEXTURE_GRID[scale]
    wanted = {
        GALLERY: lambda run: (
            run["data"] == gallery_data and run["settings"] == {"options": options, "taus": taus, "similarity_n": probe}
        ),
        TEXTURES: lambda run: run["data"] in specs and run["settings"] == texture_settings.get(run["variant"]),
    }
    chosen: dict[str, dict[str, Any]] = {}
    for r in load_runs(log):
        experiment = r.get("run", {}).get("experiment")
        if experiment in wanted and wanted[experiment](r["run"]):
            chosen[r["key"]] = r
    return list(chosen.values())


def training_cells(where: str, architecture: str, seed: int, record: dict[str, Any], seconds: float) -> Cells:
    """Last-epoch losses and training time of one trained model."""
    cells: Cells = {(where, architecture, "training seconds", seed): seconds}
    for phase, row in (record.get("last_epoch_per_layer") or {}).items():
        for name in ("recon", "pseudo-ll"):
            cells[(where, f"{architecture} {phase}", f"last-epoch {name}", seed)] = row[name]
    if "loss" in record["last_epoch"]:
        cells[(where, architecture, "last-epoch loss", seed)] = record["last_epoch"]["loss"]
    return cells


def new_cells(records: Iterable[dict[str, Any]]) -> Cells:
    """Every number of the reproduce records as cells; the mean test mask, the same for every run of a texture, as
    seed 0."""
    cells: Cells = {}
    for r in records:
        run, result = r["run"], r["result"]
        where, seed = category(run["data"]), run["seed"]
        cells.update(training_cells(where, run["variant"], seed, result, result["train_seconds"]))
        if run["experiment"] == GALLERY:
            for caption, views in result["similarity"].items():
                for view in VIEWS:
                    if views[view] is not None:
                        cells[(where, caption, view, seed)] = views[view]
            continue
        for label, values in result["maps"].items():
            for metric in METRICS:
                cells[(where, label, metric, 0 if label == MEAN_MASK else seed)] = values[metric]
    return cells


def old_seed(record: dict[str, Any]) -> tuple[str, int]:
    """The architecture and training seed of a former evaluate record, from its model's run key."""
    model = json.loads(json.loads(record["key"])["model"])
    return model["architecture"], model["seed"]


def old_cells(log: Path) -> Cells:
    """The per-run cells of the former script's runs.jsonl: training and the evaluated maps."""
    cells: Cells = {}
    for r in load_runs(log):
        where = category(r["data"])
        if r["kind"] == "train":
            record = {**r, "last_epoch_per_layer": r.get("last_epoch_per_layer")}
            cells.update(training_cells(where, r["architecture"], r["seed"], record, r["seconds"]))
        else:
            _, seed = old_seed(r)
            for metric in METRICS:
                cells[(where, RENAMED.get(r["method"], r["method"]), metric, seed)] = r[metric]
    return cells


def table_rows(text: str, first: str) -> list[list[str]]:
    """The body rows, split into cells, of the Markdown table whose header starts with `first`."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith(f"| {first}"):
            inside = True
        elif inside and line.startswith("|") and not line.startswith("| ---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif inside and not line.startswith("|"):
            inside = False
    return rows


def old_table_cells(results: Path) -> tuple[Cells, Cells]:
    """From the former results.md, the cells its runs.jsonl did not record: the gallery correlations (seed 0) and
    the fixed-map rows (printed as mean ± std over the seeds, kept here as the mean, rounded to 3 decimals)."""
    text = results.read_text()
    gallery: Cells = {}
    for caption, *values in table_rows(text, "map |"):
        for view, value in zip(VIEWS, values, strict=True):
            if value != "nan":
                gallery[("digits", RENAMED.get(caption, caption), view, 0)] = float(value)
    means: Cells = {}
    for label, *values in table_rows(text, "method |"):
        if not label.startswith("fixed map"):
            continue
        label = RENAMED.get(label, label)
        for i, value in enumerate(values):
            means[(CATEGORIES[i // 2], label, METRICS[i % 2], 0)] = float(value.split(" ± ")[0])
    return gallery, means


def seed_means(cells: Cells) -> Cells:
    """(where, row, metric, seed) -> value  to  (where, row, metric, 0) -> the mean over the seeds."""
    grouped: dict[Cell, list[float]] = {}
    for (where, row, metric, _), value in cells.items():
        grouped.setdefault((where, row, metric, 0), []).append(value)
    return {key: statistics.mean(values) for key, values in grouped.items()}


# ---- the report -----------------------------------------------------------------------------------------------------


def values_of(cells: Cells, where: str, row: str, metric: str) -> list[float]:
    return [v for (w, r, m, _), v in sorted(cells.items()) if (w, r, m) == (where, row, metric)]


def gallery_section(record: dict[str, Any], out: Path, log: Path) -> list[str]:
    """The gallery figure, linked from `out`, and the table of cross-input correlations."""
    result, settings = record["result"], record["run"]["settings"]
    figure = os.path.relpath(log.parent / record["folder"] / result["figures"][0], out.parent)
    return [
        f"## Digits gallery (`{record['folder']}/{result['figures'][0]}`)",
        "",
        f"A stacked RBM ({settings['options']['units']} units, epochs per layer "
        f"{settings['options']['epochs_per_layer']}, seed {record['run']['seed']}) trained on {record['run']['data']}; "
        "rbm-gumbel maps of the first held-out " + ", ".join(map(str, result["digits"])) + ". Each cell: input | map "
        "over the input (pixel view) | the map on the hidden layer's square grid.",
        "",
        f"![rbm-gumbel gallery]({figure})",
        "",
        f"Does the map depend on the input? The mean Pearson correlation between the maps of distinct inputs, over the "
        f"first {result['probe_digits']} held-out digits other than 1 (1: the same map for every input; 0: unrelated "
        "maps), for the map in pixel space and on the hidden layer's grid:",
        "",
        "| map | pixel view | hidden grid |",
        "| --- | --- | --- |",
        *[
            f"| {caption} | {v['pixel view']:.3f} | "
            + ("–" if v["hidden grid"] is None else f"{v['hidden grid']:.3f}")
            + " |"
            for caption, v in result["similarity"].items()
        ],
        "",
    ]


def texture_section(records: list[dict[str, Any]], cells: Cells) -> list[str]:
    """The textures table: mean ± std over the seeds of every map and control, per texture and metric."""
    specs = list(dict.fromkeys(r["run"]["data"] for r in records))
    wheres = [category(s) for s in specs]
    seeds = sorted({r["run"]["seed"] for r in records})
    settings = {r["run"]["variant"]: r["run"]["settings"] for r in records}
    rows = list(dict.fromkeys(label for r in records for label in r["result"]["maps"]))
    rows = sorted(rows, key=lambda row: (row == MEAN_MASK, row.startswith("fixed map")))
    rbm = settings.get("stacked-rbm", {}).get("options", {})
    lines = [
        "## Textures: pixel AUROC and best IoU",
        "",
        f"Data: {', '.join(f'`{s}`' for s in specs)}; stacked-rbm ({rbm.get('units')} units, epochs per layer "
        f"{rbm.get('epochs_per_layer')}), conv-vae (default epochs), trained on the same data with the same seed. "
        f"Mean ± sample standard deviation over seeds {', '.join(map(str, seeds))}; maps min-max normalised per image.",
        "",
        "| method | " + " | ".join(f"{w} pixel AUROC | {w} best IoU" for w in wheres) + " |",
        "|" + " --- |" * (1 + 2 * len(wheres)),
    ]
    for row in rows:
        shown = [cell(values_of(cells, w, row, m)) for w in wheres for m in METRICS]
        lines.append(f"| {row} | " + " | ".join(shown) + " |")
    fractions = [
        statistics.mean(r["result"]["anomalous_pixel_fraction"] for r in records if r["run"]["data"] == s)
        for s in specs
    ]
    lines.append(
        "| chance (AUROC); a map flagging every pixel (IoU) | "
        + " | ".join(f"0.500 | {f:.3f}" for f in fractions)
        + " |"
    )
    return [*lines, ""]


def verdict_section(records: list[dict[str, Any]]) -> list[str]:
    """The claims' own verdicts on these records (what `xgen reproduce --report-only` prints)."""
    findings = StackedRBMFigure12().findings([r for r in records if r["run"]["experiment"] == GALLERY])
    findings += VAEGradCAMBeatsRBMGumbel().findings([r for r in records if r["run"]["experiment"] == TEXTURES])
    return [
        "## The claims' verdicts",
        "",
        "The rule of `xgen reproduce`: a difference of seed means counts only when it exceeds the larger sample "
        "standard deviation over seeds (and half a unit of the last digit shown).",
        "",
        "| claim | on | measured | verdict |",
        "| --- | --- | --- | --- |",
        *[f"| `{f.claim}` | {f.subject} | {f.measured} | {f.verdict} |" for f in findings],
        "",
    ]


def training_section(records: list[dict[str, Any]]) -> list[str]:
    lines = ["## Training", ""]
    for r in sorted(records, key=lambda r: (r["run"]["experiment"], r["run"]["data"], r["run"]["seed"])):
        result = r["result"]
        rows = result.get("last_epoch_per_layer") or {"": result["last_epoch"]}
        last = "; ".join(
            json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}) for row in rows.values()
        )
        lines.append(
            f"- {r['run']['variant']} on {r['run']['data']}, seed {r['run']['seed']}: {result['train_seconds']} s, "
            f"epochs {result['epochs']}, batch {result['batch_size']}; last epoch {last}"
        )
    warned = sorted({w for r in records for w in r["result"].get("warnings", [])})
    if warned:
        lines += ["", "Warnings from xgen.evaluate:", "", *[f"- {w}" for w in warned]]
    return [*lines, ""]


def report(args: argparse.Namespace) -> None:
    records = reproduce_records(args.log, args.scale)
    cells = new_cells(records)
    machines = sorted({r["machine"] for r in records})
    finished = sorted(r["finished"] for r in records)
    lines = [
        "# Stacked-RBM results: the run log (generated)",
        "",
        f"Made by `python benchmarks/rbm_results.py report --out {args.out}` from {len(records)} records in "
        f"`{shown_path(args.log)}` (scale `{args.scale}`), which `{COMMAND}` wrote. Training seeds as below; the "
        "rbm-gumbel noise seed and the evaluation seed are 0.",
        "",
        f"Machines: {'; '.join(machines) or '–'}. Runs finished "
        + (f"{finished[0]} to {finished[-1]}." if finished else "–."),
        "",
    ]
    gallery = [r for r in records if r["run"]["experiment"] == GALLERY]
    textures = [r for r in records if r["run"]["experiment"] == TEXTURES]
    if gallery:
        lines += gallery_section(gallery[-1], args.out, args.log)
    if textures:
        lines += texture_section(textures, cells)
    lines += verdict_section(records) + training_section(records)
    write_report(args.out, lines)


# ---- the comparison with the former script's log --------------------------------------------------------------------


def page_differences(means: Cells) -> dict[str, float]:
    """The differences docs/results/rbm.md draws conclusions from, by name, from seed means."""
    fixed = "fixed map: the mean {} map, the same for every image"
    recon, vae, gradcam = "rbm-recon-error (whole stack, k=1)", "conv-vae: recon-error", "conv-vae: vae-gradcam"
    pairs: list[tuple[str, str, str, str]] = []
    for where in CATEGORIES:
        for metric in METRICS:
            pairs += [(where, metric, gradcam, f"rbm-gumbel layer {k}") for k in (1, 2, 3)]
            pairs += [
                (where, metric, "rbm-gumbel layer 3", fixed.format("rbm-gumbel layer 3")),
                (where, metric, gradcam, fixed.format("vae-gradcam")),
                (where, metric, recon, fixed.format("rbm-recon-error")),
                (where, metric, vae, fixed.format("recon-error")),
                (where, metric, recon, vae),
                (where, metric, "rbm-recon-error (bottom RBM, k=1)", recon),
                (where, metric, recon, MEAN_MASK),
            ]
    taus = ("0.1", "0.5", "1")
    captions = [f"layer {k}, tau {t}" for k in (1, 2, 3) for t in taus]
    captions += ["layer 1, straight-through, tau 0.5", "layer 1, probability", "layer 1, one-hot (report code)"]
    pairs += [("digits", "pixel view", f"layer {k + 1}, tau {t}", f"layer {k}, tau {t}") for t in taus for k in (1, 2)]
    pairs += [("digits", "pixel view", c, "rbm-recon-error") for c in captions]
    pairs += [("digits", "pixel view", "layer 1, straight-through, tau 0.5", "layer 1, tau 0.5")]
    pairs += [("digits", "pixel view − hidden grid", c, c) for c in captions]
    differences = {}
    for where, metric, a, b in pairs:
        if metric == "pixel view − hidden grid":
            va, vb = means.get((where, a, "pixel view", 0)), means.get((where, b, "hidden grid", 0))
            name = f"{where}, {a}: pixel view − hidden grid"
        else:
            va, vb = means.get((where, a, metric, 0)), means.get((where, b, metric, 0))
            name = f"{where}, {metric}: {a} − {b}"
        if va is not None and vb is not None:
            differences[name] = va - vb
    return differences


def sign(value: float) -> int:
    return (value > 0) - (value < 0)


def old_verdicts(log: Path) -> dict[str, str]:
    """The texture claim's verdicts under `xgen reproduce`'s rule, from the former log's per-seed map scores."""
    records: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in load_runs(log):
        if r["kind"] != "evaluate":
            continue
        architecture, seed = old_seed(r)
        record = records.setdefault(
            (r["data"], architecture, seed),
            {"run": {"data": r["data"], "variant": architecture, "seed": seed}, "result": {"maps": {}}},
        )
        record["result"]["maps"][r["method"]] = {metric: r[metric] for metric in METRICS}
    return {f.subject: f.verdict for f in VAEGradCAMBeatsRBMGumbel().findings(list(records.values()))}


def cell_differences(old: Cells, new: Cells, label: str) -> tuple[dict[str, list[tuple[float, Cell]]], list[str]]:
    """Per metric, (new − old, cell) of every cell on both sides; and a line per metric with cells on one side."""
    diffs: dict[str, list[tuple[float, Cell]]] = {}
    missing: dict[str, list[Cell]] = {}
    for key in sorted(set(old) | set(new), key=lambda k: (METRIC_ORDER.get(k[2], 9), k)):
        metric = METRIC_NAMES.get(key[2], key[2]) + label
        if key in old and key in new:
            diffs.setdefault(metric, []).append((new[key] - old[key], key))
        else:
            side = "reproduce" if key in old else "former"
            missing.setdefault(f"{metric}: missing in the {side} log", []).append(key)
    lines = [
        f"- {what}: {len(keys)} ({', '.join(f'{k[0]}/{k[1]}' for k in keys[:4])}{', ...' if len(keys) > 4 else ''})"
        for what, keys in missing.items()
    ]
    return diffs, lines


METRIC_NAMES = {"pixel view": "correlation, pixel view", "hidden grid": "correlation, hidden grid"}
METRIC_ORDER = {
    "pixel-auroc": 0,
    "best-iou": 1,
    "pixel view": 2,
    "hidden grid": 3,
    "last-epoch recon": 4,
    "last-epoch pseudo-ll": 5,
    "last-epoch loss": 6,
    "training seconds": 7,
}


def compare(args: argparse.Namespace) -> None:
    records = reproduce_records(args.log, args.scale)
    new = new_cells(records)
    old = old_cells(args.old)
    gallery, fixed_old = old_table_cells(args.old.parent / "results.md")
    old.update(gallery)
    fixed_rows = {key[:3] for key in fixed_old}
    fixed_new = {k: v for k, v in seed_means(new).items() if k[:3] in fixed_rows}
    per_run, missing = cell_differences(old, {k: v for k, v in new.items() if k[:3] not in fixed_rows}, "")
    fixed, missing_fixed = cell_differences(fixed_old, fixed_new, " (fixed maps, seed means)")
    lines = [
        f"### Every cell of `{shown_path(args.old)}` (and its results.md) beside `{shown_path(args.log)}`",
        "",
        "Δ = reproduce − former. Per-run cells where the former runs.jsonl recorded them (the correlations: its "
        "results.md, 3 decimals); the fixed-map rows, which it did not record, as the seed means its results.md "
        "printed (3 decimals, so a Δ under 0.0005 there is rounding).",
        "",
        "| metric | cells | largest abs(Δ) | where (texture, row, seed) | mean abs(Δ) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for metric, pairs in {**per_run, **fixed}.items():
        worst, key = max(pairs, key=lambda p: abs(p[0]))
        mean = statistics.mean(abs(d) for d, _ in pairs)
        lines.append(f"| {metric} | {len(pairs)} | {worst:+.4g} | {key[0]}, {key[1]}, seed {key[3]} | {mean:.4g} |")
    one_side = missing + missing_fixed
    lines += ["", "Cells on one side only:" if one_side else "Cells on one side only: none.", *one_side]
    if args.cells:
        lines += ["", "| texture | row | metric | seed | Δ |", "| --- | --- | --- | --- | --- |"]
        every = [(m, d, k) for m, ps in {**per_run, **fixed}.items() for d, k in ps]
        lines += [f"| {k[0]} | {k[1]} | {m} | {k[3]} | {d:+.4g} |" for m, d, k in every]
    before = page_differences({**seed_means(old), **fixed_old})
    after = page_differences(seed_means(new))
    both = [name for name in before if name in after]
    changed = [(name, before[name], after[name]) for name in both if sign(before[name]) != sign(after[name])]
    lines += [
        "",
        f"### The page's differences whose sign changed ({len(changed)} of {len(both)}; seed means)",
        "",
        "| difference | former | reproduce |",
        "| --- | --- | --- |",
        *[f"| {name} | {b:+.4f} | {a:+.4f} |" for name, b, a in changed],
    ]
    verdicts_old = old_verdicts(args.old)
    findings = VAEGradCAMBeatsRBMGumbel().findings([r for r in records if r["run"]["experiment"] == TEXTURES])
    moved = [(f.subject, verdicts_old.get(f.subject, "–"), f.verdict) for f in findings]
    moved = [m for m in moved if m[1] != m[2]]
    lines += [
        "",
        f"### `vae-gradcam-beats-rbm-gumbel` verdicts under the claim's rule that moved ({len(moved)} of "
        f"{len(findings)})",
        "",
        "| on | former log | reproduce log |",
        "| --- | --- | --- |",
        *[f"| {s} | {a} | {b} |" for s, a, b in moved],
        "",
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("report", "compare"):
        p = sub.add_parser(name)
        p.add_argument("--log", type=Path, default=RUNS / "reproduce" / "runs.jsonl", help="the reproduce log")
        p.add_argument("--scale", choices=sorted(GALLERY_GRID), default="default", help="the runs of this scale")
    sub.choices["report"].add_argument("--out", type=Path, default=Path("docs/results/rbm-log.md"))
    sub.choices["compare"].add_argument(
        "--old", type=Path, default=RUNS / "rbm-results" / "runs.jsonl", help="the former script's runs.jsonl"
    )
    sub.choices["compare"].add_argument("--cells", action="store_true", help="also list every cell's difference")
    args = parser.parse_args()
    report(args) if args.command == "report" else compare(args)


if __name__ == "__main__":
    main()
