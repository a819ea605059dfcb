"""The ablation of CAVGA's Table 8 on xgen's offline data: flat z, flat z + L_ae, conv z, conv z + L_ae and the weakly
supervised conv z + L_cga, each trained and evaluated over several seeds; writes a markdown table of mean ± std.

    python benchmarks/cavga_ablation.py                                   # the full grid (see docs/methods/cavga.md)
    python benchmarks/cavga_ablation.py --size 32 --epochs 1 --seeds 0 --datasets textures:brick   # a smoke run

Every run (dataset, variant, seed) appends one JSON line to `--runs` as soon as it finishes, and a rerun with the
same settings skips the runs already there, so an interrupted grid resumes where it stopped. The markdown
(`--out`) is rewritten from all matching runs at the end. Seeds: `xgen.train(seed=s)`, and for the weakly
supervised variant also `anomalous_seed=s`, so each seed borrows its own 2% of the test anomalies (which
`xgen.evaluate` leaves out). Data without masks (digits) gets image AUROC only. Always exits 0 unless the
arguments are wrong.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from result_runs import cell, fixed_map_metrics, machine, run_grid, with_size, write_report

import xgen
from xgen.plugins import lookup

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "flat": ("flat z (CAVGA-R*u, c1)", {"latent": "flat", "attention_loss": False}),
    "flat+ae": ("flat z + L_ae (c2)", {"latent": "flat", "attention_loss": True}),
    "conv": ("conv z (c3)", {"latent": "conv", "attention_loss": False}),
    "conv+ae": ("conv z + L_ae (CAVGA_u, c4)", {"latent": "conv", "attention_loss": True}),
    "weak": ("weak: conv z + L_cga (CAVGA_w, c8)", {"latent": "conv", "attention_loss": True, "weak": True}),
    "weak+balance": (
        "weak, classes balanced in L_bce",
        {"latent": "conv", "attention_loss": True, "weak": True, "balance_classes": True},
    ),
}
DEFAULT_VARIANTS = ["flat", "flat+ae", "conv", "conv+ae", "weak"]
MAP_METRICS = ["iou", "best-iou", "pixel-auroc", "image-auroc"]
IMAGE_METRICS = ["image-auroc"]
DATASETS = ["textures:brick", "textures:grass", "textures:gravel", "digits:normal=1,size=32"]
COMPARISONS = [
    ("L_ae improves IoU (flat)", "flat+ae", "flat"),
    ("L_ae improves IoU (conv)", "conv+ae", "conv"),
    ("conv z beats flat z", "conv", "flat"),
    ("conv z beats flat z (both + L_ae)", "conv+ae", "flat+ae"),
    ("weak supervision beats unsupervised", "weak", "conv+ae"),
]


def run_key(run: dict[str, Any]) -> tuple:
    """What identifies a run: two runs with the same key are the same experiment."""
    extra = json.dumps(run["extra"], sort_keys=True)
    return (run["data"], run["variant"], run["seed"], run["epochs_asked"], extra, run.get("normalize", "per-image"))


def one_run(
    data: str, variant: str, seed: int, epochs: int | None, extra: dict[str, Any], device: str, normalize: str
) -> dict[str, Any]:
    """Train one variant with one seed, evaluate it, and return the record."""
    options = {**VARIANTS[variant][1], **extra}
    if options.get("weak"):
        options["anomalous_seed"] = seed
    dataset = xgen.dataset(data)
    metrics = MAP_METRICS if dataset.test().masks is not None else IMAGE_METRICS
    started = time.perf_counter()
    model = xgen.train("cavga", dataset, epochs=epochs, seed=seed, device=device, options=options)
    trained = time.perf_counter() - started
    result = xgen.evaluate(model, dataset, metrics=metrics, seed=seed, normalize=normalize)
    training = model.metadata["training"]
    controls = {}
    if result.test.masks is not None:
        fixed = fixed_map_metrics(result.normalized.mean(dim=0), result.test.masks, ["pixel-auroc"])
        controls["fixed-map pixel-auroc"] = fixed["pixel-auroc"]
    return {
        "data": data,
        "variant": variant,
        "seed": seed,
        "epochs_asked": epochs,
        "extra": extra,
        "normalize": normalize,
        "options": options,
        "epochs": training["epochs"],
        "steps": training["epochs"] * -(-training["train_images"] // training["batch_size"]),
        "train_images": training["train_images"],
        "test_images": len(result.test),
        "borrowed": len(training["test_images_used"]),
        "metrics": {m.spec: m.value for m in result.metrics},
        "controls": controls,
        "warnings": result.warnings,
        "final_losses": training["history"][-1],
        "train_seconds": round(trained, 1),
        "evaluate_seconds": round(result.seconds, 1),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def control_table(runs: list[dict[str, Any]], datasets: list[str], variants: list[str]) -> list[str]:
    """Markdown rows for the runs that recorded the fixed-map control: the map's pixel AUROC beside its mean's."""
    lines = []
    for data in datasets:
        for variant in variants:
            chosen = [r for r in runs if r["data"] == data and r["variant"] == variant and r.get("controls")]
            if not chosen:
                continue
            own = cell([r["metrics"]["pixel-auroc"] for r in chosen])
            fixed = cell([r["controls"]["fixed-map pixel-auroc"] for r in chosen])
            seeds = ",".join(str(r["seed"]) for r in sorted(chosen, key=lambda r: r["seed"]))
            lines.append(f"| {data} | {VARIANTS[variant][0]} | {seeds} | {own} | {fixed} |")
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


def table(runs: list[dict[str, Any]], datasets: list[str], variants: list[str]) -> list[str]:
    """Markdown rows: one per (dataset, variant), mean ± sample std over the seeds of each metric."""
    lines = [
        "| data | variant | seeds | " + " | ".join(MAP_METRICS) + " | train s (mean) |",
        "| --- | --- | --- | " + " | ".join("---" for _ in MAP_METRICS) + " | --- |",
    ]
    for data in datasets:
        for variant in variants:
            chosen = [r for r in runs if r["data"] == data and r["variant"] == variant]
            if not chosen:
                continue
            cells = [cell([r["metrics"][m] for r in chosen if m in r["metrics"]]) for m in MAP_METRICS]
            seconds = statistics.mean(r["train_seconds"] for r in chosen)
            seeds = ",".join(str(r["seed"]) for r in sorted(chosen, key=lambda r: r["seed"]))
            lines.append(f"| {data} | {VARIANTS[variant][0]} | {seeds} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return lines


def comparisons(runs: list[dict[str, Any]], datasets: list[str]) -> list[str]:
    """Markdown rows: for each of the paper's claims and each dataset, the difference of the seed means of each
    metric (first variant minus second) and the larger of the two sample stds, so a difference can be read
    against the spread."""
    lines = [
        "| claim | data | " + " | ".join(f"Δ {m}" for m in MAP_METRICS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in MAP_METRICS) + " |",
    ]
    for claim, better, worse in COMPARISONS:
        for data in datasets:
            a = [r for r in runs if r["data"] == data and r["variant"] == better]
            b = [r for r in runs if r["data"] == data and r["variant"] == worse]
            if not a or not b:
                continue
            cells = []
            for m in MAP_METRICS:
                va = [r["metrics"][m] for r in a if m in r["metrics"]]
                vb = [r["metrics"][m] for r in b if m in r["metrics"]]
                if not va or not vb:
                    cells.append("–")
                    continue
                delta = statistics.mean(va) - statistics.mean(vb)
                spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (va, vb))
                cells.append(f"{delta:+.3f} (std {spread:.3f})")
            lines.append(f"| {claim} | {data} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--datasets", default=";".join(DATASETS), help="data specs, separated by ';' or ' '")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"some of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--size", type=int, default=None, help="set every dataset's size option (e.g. 32)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: cavga's defaults)")
    parser.add_argument(
        "--normalize", default="per-image", choices=["per-image", "normal-stats", "none"], help="xgen evaluate's"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra cavga options")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=Path, default=Path("cavga-ablation.jsonl"), help="per-run JSON lines")
    parser.add_argument("--out", type=Path, default=Path("cavga-ablation.md"), help="the markdown report")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = [with_size(s, args.size) for s in args.datasets.replace(";", " ").split() if s]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]}; choose from {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    extra = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            parser.error(f"--set {item}: write KEY=VALUE")
        extra[key] = value
    lookup("architecture", "cavga")(**extra)

    grid_started = time.perf_counter()
    runs = run_grid(
        [(d, v, s) for d in datasets for v in variants for s in seeds],
        {"epochs_asked": args.epochs, "extra": extra, "normalize": args.normalize},
        run_key,
        lambda data, variant, seed: one_run(data, variant, seed, args.epochs, extra, args.device, args.normalize),
        args.runs,
        lambda record: (
            " ".join(f"{k} {v:.3f}" for k, v in record["metrics"].items())
            + f" (train {record['train_seconds']:.0f} s, {record['steps']} steps; evaluate "
            f"{record['evaluate_seconds']:.0f} s)"
        ),
    )
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    report = [
        "# CAVGA ablation (Table 8) on xgen's offline data",
        "",
        f"Command: `{command}`",
        "",
        "Machines of the runs: " + ("; ".join(sorted({r["machine"] for r in runs})) if runs else machine()),
        "",
        f"Written {datetime.datetime.now().isoformat(timespec='seconds')} from {len(runs)} runs in `{args.runs}` "
        f"(this invocation: {time.perf_counter() - grid_started:.0f} s). Maps and scores normalised by xgen evaluate's "
        f"`{args.normalize}`; `iou` thresholds the maps at 0.5; scores: the cavga explainer's (mean absolute "
        "reconstruction difference, or the classifier's P(anomalous) for the weak variant). Mean ± sample std over "
        "the seeds.",
        "",
        *table(runs, datasets, variants),
        "",
        "The paper's claims, as differences of seed means (first variant minus second); a positive value supports the "
        "claim:",
        "",
        *comparisons(runs, datasets),
        "",
        *control_table(runs, datasets, variants),
    ]
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
