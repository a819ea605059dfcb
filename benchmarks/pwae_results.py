"""P-WAE's results on xgen's offline data (issue #6, "What must be shown"): image AUROC and max balanced accuracy
on textures:* and digits (one-class, classes 0-9, and their mean), pixel AUROC of the map, against conv-vae's
reconstruction error; the ablations (image-only rule vs image + tile rule, without HSIC, without jigsaw, Gaussian
prior with KL), and the feature diversity of the latent codes over the test set (effective rank and mean absolute
correlation) with and without HSIC, the paper's Fig. 7 claim.

    python benchmarks/pwae_results.py                                          # the full grid, seed 0
    python benchmarks/pwae_results.py --datasets textures:brick --digits 1 --epochs 1 --size 32 --seeds 0  # smoke

Every run (data, variant, seed) appends one JSON line to `--runs` as soon as it finishes, and a rerun with the same
settings skips the runs already there, so an interrupted grid resumes where it stopped. The markdown (`--out`) is
rewritten from all matching runs at the end. Each P-WAE model is evaluated with both decision rules (the explainer's
`rule=image+tiles`, the paper's, and `rule=image`), so the rule ablation costs no training. Maps and scores are left
as the methods give them (`xgen evaluate --normalize none`) unless `--normalize` says otherwise: image AUROC and
max balanced accuracy do not depend on it, pooled pixel AUROC does. Always exits 0 unless the arguments are wrong.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from result_runs import cell, machine, run_grid, with_size, write_report

import xgen
from xgen.plugins import lookup

VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pwae": ("P-WAE (full)", "pwae", {}),
    "no-hsic": ("P-WAE without HSIC", "pwae", {"hsic": False}),
    "no-jigsaw": ("P-WAE without jigsaw", "pwae", {"jigsaw": False}),
    "gaussian-kl": ("P-WAE, Gaussian prior + KL", "pwae", {"prior": "gaussian-kl"}),
    "conv-vae": ("conv-vae recon-error", "conv-vae", {}),
}
TEXTURES = ["textures:brick", "textures:grass", "textures:gravel"]
IMAGE_METRICS = ["image-auroc", "max-balanced-accuracy"]
PIXEL_METRICS = ["pixel-auroc"]
RULES = ["image+tiles", "image"]
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


def diversity(codes: torch.Tensor) -> dict[str, float]:
    """codes: (N, D) latent codes of the test images -> `effective-rank`, exp of the entropy of the normalised
    singular values of the centred codes (1 = collapsed to a line, D = spread evenly over all D directions), and
    `mean-abs-correlation`, the mean |Pearson correlation| between distinct code dimensions (0 = decorrelated);
    dimensions that never vary are left out of the correlation."""
    centred = codes - codes.mean(dim=0)
    singular = torch.linalg.svdvals(centred)
    weights = singular / singular.sum().clamp_min(1e-12)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum()
    live = centred[:, centred.std(dim=0) > 1e-8]
    if live.shape[1] < 2:
        return {
            "effective-rank": float(entropy.exp()),
            "mean-abs-correlation": float("nan"),
            "code-dims": codes.shape[1],
        }
    correlation = torch.corrcoef(live.T).abs()
    off = correlation[~torch.eye(len(correlation), dtype=torch.bool)]
    return {
        "effective-rank": float(entropy.exp()),
        "mean-abs-correlation": float(off.mean()),
        "code-dims": codes.shape[1],
    }


def test_codes(model: xgen.Model, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """(N, D) the latent means of the test images (P-WAE: the n x n tile codes, flattened, never shuffled)."""
    with torch.no_grad():
        return torch.cat([model.encode(images[i : i + batch]).mean.flatten(1) for i in range(0, len(images), batch)])


def run_key(run: dict[str, Any]) -> tuple:
    """What identifies a run: two runs with the same key are the same experiment."""
    extra = json.dumps(run["extra"], sort_keys=True)
    return (run["data"], run["variant"], run["seed"], run["epochs_asked"], extra, run["normalize"])


def one_run(
    data: str, variant: str, seed: int, epochs: int | None, extra: dict[str, Any], device: str, normalize: str
) -> dict[str, Any]:
    """Train one variant with one seed, evaluate it (P-WAE: under both rules), measure its codes' diversity."""
    _, architecture, options = VARIANTS[variant]
    options = {**options, **extra} if architecture == "pwae" else dict(options)
    dataset = xgen.dataset(data)
    test = dataset.test()
    metrics = IMAGE_METRICS + (PIXEL_METRICS if test.masks is not None else [])
    started = time.perf_counter()
    model = xgen.train(architecture, dataset, epochs=epochs, seed=seed, device=device, options=options)
    trained = time.perf_counter() - started
    results: dict[str, dict[str, float]] = {}
    evaluate_seconds = 0.0
    for rule in RULES if architecture == "pwae" else ["-"]:
        plugin, explainer_options = (
            ("pwae-patch-error", {"rule": rule}) if architecture == "pwae" else ("recon-error", {})
        )
        result = xgen.evaluate(
            model, dataset, plugin, options=explainer_options, metrics=metrics, seed=seed, normalize=normalize
        )
        results[rule] = {m.spec: m.value for m in result.metrics}
        evaluate_seconds += result.seconds
    training = model.metadata["training"]
    return {
        "data": data,
        "variant": variant,
        "seed": seed,
        "epochs_asked": epochs,
        "extra": extra,
        "normalize": normalize,
        "architecture": architecture,
        "options": options,
        "epochs": training["epochs"],
        "steps": training["epochs"] * -(-training["train_images"] // training["batch_size"]),
        "train_images": training["train_images"],
        "test_images": len(test),
        "metrics": results,
        "diversity": diversity(test_codes(model, test.images.to(model.device))),
        "final_losses": training["history"][-1],
        "train_seconds": round(trained, 1),
        "evaluate_seconds": round(evaluate_seconds, 1),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def values(runs: list[dict[str, Any]], variant: str, rule: str, metric: str) -> list[float]:
    """The metric over `runs` of `variant` (rule "-" for conv-vae and for the diversity measures)."""
    out = []
    for run in runs:
        if run["variant"] != variant:
            continue
        if metric in run["diversity"]:
            out.append(run["diversity"][metric])
            continue
        table = run["metrics"].get(rule if run["architecture"] == "pwae" else "-", {})
        if metric in table:
            out.append(table[metric])
    return out


COLUMNS = [
    ("image AUROC", "image+tiles", "image-auroc"),
    ("image AUROC, image rule", "image", "image-auroc"),
    ("max bal. acc.", "image+tiles", "max-balanced-accuracy"),
    ("max bal. acc., image rule", "image", "max-balanced-accuracy"),
    ("pixel AUROC", "image+tiles", "pixel-auroc"),
    ("eff. rank", "-", "effective-rank"),
    ("mean abs corr", "-", "mean-abs-correlation"),
]


def groups(runs: list[dict[str, Any]], datasets: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, runs) per dataset, then the digits mean over classes (each seed's classes pooled)."""
    out = [(data, [r for r in runs if r["data"] == data]) for data in datasets]
    digits = [r for r in runs if r["data"].startswith("digits")]
    if len({r["data"] for r in digits}) > 1:
        out.append((f"digits, mean of {len({r['data'] for r in digits})} classes", digits))
    return out


def table(runs: list[dict[str, Any]], datasets: list[str], variants: list[str]) -> list[str]:
    """Markdown rows: one per (data, variant), mean ± sample std over seeds (over classes and seeds for the digits
    mean). For conv-vae the rule columns repeat its single recon-error score."""
    lines = [
        "| data | variant | runs | " + " | ".join(c[0] for c in COLUMNS) + " | train s (mean) |",
        "| --- | --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- |",
    ]
    for label, chosen in groups(runs, datasets):
        for variant in variants:
            mine = [r for r in chosen if r["variant"] == variant]
            if not mine:
                continue
            cells = [cell(values(mine, variant, rule, metric)) for _, rule, metric in COLUMNS]
            seconds = statistics.mean(r["train_seconds"] for r in mine)
            lines.append(
                f"| {label} | {VARIANTS[variant][0]} | {len(mine)} | " + " | ".join(cells) + f" | {seconds:.0f} |"
            )
    return lines


def comparisons(runs: list[dict[str, Any]], datasets: list[str]) -> list[str]:
    """Markdown rows: each claim per data group, the difference of means (first minus second), the larger of the
    two sample stds (over seeds, or over classes for the digits mean), so a difference can be read against the
    spread, and in how many paired runs (same data and seed) the first is ahead. Undefined (NaN) values are left
    out."""
    lines = [
        "| claim | data | Δ (first − second) | spread (std) | first ahead in |",
        "| --- | --- | --- | --- | --- |",
    ]
    for claim, a, rule_a, b, rule_b, metric in COMPARISONS:
        for label, chosen in groups(runs, datasets):
            va = [v for v in values(chosen, a, rule_a, metric) if math.isfinite(v)]
            vb = [v for v in values(chosen, b, rule_b, metric) if math.isfinite(v)]
            if not va or not vb:
                continue
            spreads = [statistics.stdev(v) for v in (va, vb) if len(v) > 1]
            spread = f"{max(spreads):.3f}" if spreads else "– (one run each)"
            delta = statistics.mean(va) - statistics.mean(vb)
            pairs = []
            for key in sorted({(r["data"], r["seed"]) for r in chosen}):
                mine = [r for r in chosen if (r["data"], r["seed"]) == key]
                pa = [v for v in values(mine, a, rule_a, metric) if math.isfinite(v)]
                pb = [v for v in values(mine, b, rule_b, metric) if math.isfinite(v)]
                if pa and pb:
                    pairs.append(pa[0] > pb[0])
            lines.append(f"| {claim} | {label} | {delta:+.3f} | {spread} | {sum(pairs)} of {len(pairs)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--datasets", default=" ".join(TEXTURES), help="texture (or other) specs, by ';' or ' '")
    parser.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9", help="digit classes (one-class runs); '' for none")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"some of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--size", type=int, default=None, help="set every dataset's size option (e.g. 32)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: each architecture's)")
    parser.add_argument("--normalize", default="none", choices=["per-image", "normal-stats", "none"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra pwae options")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=Path, default=Path("pwae-results.jsonl"), help="per-run JSON lines")
    parser.add_argument("--out", type=Path, default=Path("pwae-results.md"), help="the markdown report")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    specs = [s for s in args.datasets.replace(";", " ").split() if s]
    specs += [f"digits:normal={c.strip()}" for c in args.digits.split(",") if c.strip()]
    datasets = [with_size(s, args.size) for s in specs]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]}; choose from {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    extra: dict[str, Any] = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            parser.error(f"--set {item}: write KEY=VALUE")
        extra[key] = value
    lookup("architecture", "pwae")(**extra)

    def shown(record: dict[str, Any]) -> str:
        first = " ".join(f"{k} {v:.3f}" for k, v in next(iter(record["metrics"].values())).items())
        return (
            f"{first} eff-rank {record['diversity']['effective-rank']:.2f} (train {record['train_seconds']:.0f} s, "
            f"{record['steps']} steps; evaluate {record['evaluate_seconds']:.0f} s)"
        )

    grid_started = time.perf_counter()
    runs = run_grid(
        [(d, v, s) for d in datasets for v in variants for s in seeds],
        {"epochs_asked": args.epochs, "extra": extra, "normalize": args.normalize},
        run_key,
        lambda data, variant, seed: one_run(data, variant, seed, args.epochs, extra, args.device, args.normalize),
        args.runs,
        shown,
    )
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    report = [
        "# P-WAE on xgen's offline data",
        "",
        f"Command: `{command}`",
        "",
        f"Seeds: {', '.join(map(str, seeds))}. Machines of the runs: "
        + ("; ".join(sorted({r["machine"] for r in runs})) if runs else machine()),
        "",
        f"Written {datetime.datetime.now().isoformat(timespec='seconds')} from {len(runs)} runs in `{args.runs}` "
        f"(this invocation: {time.perf_counter() - grid_started:.0f} s). xgen evaluate's normalisation: "
        f"`{args.normalize}`. P-WAE: explainer `pwae-patch-error`, score under `rule=image+tiles` (eq. 21-23) and "
        "`rule=image` (eq. 22 alone); conv-vae: explainer `recon-error` (squared). Diversity: the latent means of "
        "the test images (P-WAE: all tile codes flattened; conv-vae: its 32-d mean). Mean ± sample std over runs.",
        "",
        *table(runs, datasets, variants),
        "",
        "Claims, as differences of means (first minus second); a positive value supports the claim:",
        "",
        *comparisons(runs, datasets),
        "",
    ]
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
