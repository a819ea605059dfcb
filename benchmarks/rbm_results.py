"""The stacked-RBM results: a digits gallery of rbm-gumbel maps, and texture localisation beside vae-gradcam.

Run from the repository root:  python benchmarks/rbm_results.py [--out rbm-results] [--quick]

1. Gallery (the reproducibility report's Figure 12): a stacked RBM trained on digits:normal=1, rbm-gumbel maps of
   the first held-out 7, 4, 9 and 2 for every hidden layer and temperature (pixel view beside the hidden layer's
   grid), plus the straight-through, probability and one-hot (the report code's flaw) variants and the
   reconstruction-error map. Written as one PNG.
2. Textures: for each category and seed, a stacked RBM and a conv-vae trained on textures:CATEGORY (same data,
   same seed); pixel AUROC and best IoU of rbm-gumbel (each layer, and its variants), rbm-recon-error, and of
   vae-gradcam and recon-error on the conv-vae. Maps are min-max normalised per image before the metrics
   (`xgen.evaluate`'s default), the same for every method.

Resumable: every training and evaluation appends one JSON line to OUT/runs.jsonl, and checkpoints are kept in
OUT/checkpoints/; a rerun with the same options skips what is done (a changed option gives a new key). The
markdown table OUT/results.md names the command, seeds and machine. This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from result_runs import cpu_name, fixed_map_metrics

import xgen
from xgen.visualize import captioned, grid, jet, save_png

GALLERY_DIGITS = (7, 4, 9, 2)
METRICS = ("pixel-auroc", "best-iou")


def machine(threads: int, device: str) -> str:
    return (
        f"{platform.system()} {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs ({threads} threads), "
        f"device {device}, torch {torch.__version__}, Python {platform.python_version()}"
    )


class Runs:
    """OUT/runs.jsonl: one record per finished training or evaluation, found again by its key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.records[record["key"]] = record

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        self.records[record["key"]] = record
        with self.path.open("a") as out:
            out.write(json.dumps(record) + "\n")
        return record


def key_of(**parts: Any) -> str:
    return json.dumps(parts, sort_keys=True)


def train(
    runs: Runs,
    out: Path,
    architecture: str,
    data: str,
    seed: int,
    options: dict[str, Any],
    args: argparse.Namespace,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
) -> tuple[xgen.Model, str]:
    """The model trained on (architecture, data, seed, options, epochs, batch size) and its run key; trained now
    unless a finished run left its checkpoint."""
    key = key_of(
        kind="train", architecture=architecture, data=data, seed=seed, options=options, epochs=epochs, batch=batch_size
    )
    path = out / "checkpoints" / f"{architecture}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if runs.get(key) and path.exists():
        return xgen.load(path, device=args.device), key
    started = time.perf_counter()
    print(f"train {architecture} on {data} (seed {seed}) ...", flush=True)
    model = xgen.train(
        architecture,
        data,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        device=args.device,
        options=options,
        out=path,
        progress=sys.stderr.isatty(),
    )
    seconds = time.perf_counter() - started
    record = model.metadata["training"]
    runs.add(
        {
            "key": key,
            "kind": "train",
            "architecture": architecture,
            "data": data,
            "seed": seed,
            "options": options,
            "epochs": record["epochs"],
            "batch_size": record["batch_size"],
            "seconds": round(seconds, 1),
            "last_epoch": record["history"][-1],
            "last_epoch_per_layer": {row["phase"]: row for row in record["history"] if "phase" in row},
            "machine": machine(torch.get_num_threads(), str(args.device)),
            "checkpoint": str(path),
        }
    )
    print(f"  {seconds:.1f} s; last epoch {record['history'][-1]}", flush=True)
    return model, key


def evaluate(
    runs: Runs,
    model_key: str,
    model: xgen.Model,
    data: str,
    label: str,
    plugin: str,
    options: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """pixel-auroc and best-iou of `plugin` on the test split of `data`, evaluated now unless already recorded."""
    key = key_of(kind="evaluate", model=model_key, data=data, plugin=plugin, options=options)
    done = runs.get(key)
    if done is not None:
        return done
    result = xgen.evaluate(model, data, plugin, options=options, metrics=list(METRICS), seed=0)
    record = runs.add(
        {
            "key": key,
            "kind": "evaluate",
            "data": data,
            "method": label,
            "plugin": plugin,
            "options": options,
            **{name: result[name] for name in METRICS},
            "warnings": result.warnings,
            "anomalous_pixel_fraction": float(result.test.masks.float().mean()),
            "seconds": round(result.seconds, 1),
            "machine": machine(torch.get_num_threads(), str(args.device)),
        }
    )
    print(f"  {label:<44} " + "  ".join(f"{m} {record[m]:.4f}" for m in METRICS), flush=True)
    return record


# -- 1. the digits gallery ------------------------------------------------------------------------------------------


def cell(image: torch.Tensor, amap: torch.Tensor, third: torch.Tensor, colour: bool) -> np.ndarray:
    """image (1, H, W) and amap (H, W) in [0, 1]; third (r, c) in [0, 1], resized to H x H, in jet (`colour`) or
    grey -> RGB (H, 3H + 4, 3): the input | the map over it | the third panel."""

    def grey(values: np.ndarray) -> np.ndarray:
        return np.repeat((values * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)

    h = image.shape[1]
    rgb = grey(image[0].numpy())
    blend = (0.5 * rgb + 0.5 * jet(amap.numpy())).astype(np.uint8)
    resized = F.interpolate(third[None, None].float(), size=(h, h), mode="nearest")[0, 0].numpy()
    gap = np.full((h, 2, 3), 255, dtype=np.uint8)
    return np.concatenate([rgb, gap, blend, gap, jet(resized) if colour else grey(resized)], axis=1)


def cross_input_similarity(maps: torch.Tensor) -> float:
    """maps: (N, H, W) -> the mean Pearson correlation between the maps of distinct inputs: near 1 when the map
    hardly depends on the input (the report's finding for the upper layers), near 0 when each input gets its own."""
    flat = maps.flatten(1).double()
    flat = flat[flat.std(dim=1) > 1e-12]
    if len(flat) < 2:
        return float("nan")
    correlation = torch.corrcoef(flat)
    return float(correlation[~torch.eye(len(flat), dtype=torch.bool)].mean())


def gallery(runs: Runs, out: Path, args: argparse.Namespace) -> tuple[Path, list[tuple[str, float, float, int]]]:
    data = f"digits:normal=1,size={args.digit_size}"
    options = {"epochs_per_layer": args.digit_epochs_per_layer, "units": args.units}
    model, _ = train(runs, out, "stacked-rbm", data, args.seeds[0], options, args)
    test = xgen.dataset(data).test()
    index = [int((test.classes == d).nonzero()[0]) for d in GALLERY_DIGITS]
    x = test.images[index].to(model.device)
    rows: list[tuple[str, dict[str, Any]]] = [
        (f"layer {layer}, tau {tau:g}", {"layer": layer, "tau": tau})
        for layer in range(1, len(model.module.rbms) + 1)
        for tau in args.taus
    ]
    rows += [
        ("layer 1, straight-thr., tau 0.5", {"relaxation": "straight-through"}),
        ("layer 1, probability", {"relaxation": "probability"}),
        ("layer 1, one-hot (flawed)", {"relaxation": "one-hot"}),
    ]
    size = 4 * args.digit_size
    tiles = []
    probe = test.images[(test.classes != 1).nonzero()[:, 0][: args.similarity_n]].to(model.device)
    similarity = []
    for caption, row_options in rows:
        result = xgen.explain(model, x, plugin="rbm-gumbel", **row_options).cpu()
        probed = xgen.explain(model, probe, plugin="rbm-gumbel", **row_options).cpu()
        pixel, hidden = cross_input_similarity(probed.anomaly_map), cross_input_similarity(probed.details["grid"])
        similarity.append((caption, pixel, hidden, len(probe)))
        for i, digit in enumerate(GALLERY_DIGITS):
            rgb = cell(x[i].cpu(), result.anomaly_map[i], result.details["grid"][i], colour=True)
            tiles.append(captioned(rgb, f"{digit}: {caption}", min_size=size))
    recon = xgen.explain(model, x, plugin="rbm-recon-error").cpu()
    probe_maps = xgen.explain(model, probe, plugin="rbm-recon-error").anomaly_map.cpu()
    similarity.append(("rbm-recon-error", cross_input_similarity(probe_maps), float("nan"), len(probe)))
    with torch.no_grad():
        reconstructions = model.reconstruct(x).cpu()
    for i, digit in enumerate(GALLERY_DIGITS):
        amap = recon.anomaly_map[i] / recon.anomaly_map[i].max().clamp_min(1e-12)
        rgb = cell(x[i].cpu(), amap, reconstructions[i, 0], colour=False)
        tiles.append(captioned(rgb, f"{digit}: rbm-recon-error | reconstruction", min_size=size))
    path = out / "rbm-gallery.png"
    save_png(grid(tiles, columns=len(GALLERY_DIGITS)), path)
    print(f"gallery: {path} ({len(rows) + 1} rows: input | map over input | hidden-layer grid)", flush=True)
    for caption, pixel, hidden, n in similarity:
        print(f"  {caption:<34} cross-input correlation: pixel view {pixel:.3f}, hidden grid {hidden:.3f} ({n} digits)")
    return path, similarity


# -- 2. textures ----------------------------------------------------------------------------------------------------


def rbm_variants(layers: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, explainer, options) of every stacked-RBM map evaluated on textures."""
    return [
        *((f"rbm-gumbel layer {layer}", "rbm-gumbel", {"layer": layer}) for layer in range(1, layers + 1)),
        ("rbm-gumbel layer 1, view=grid", "rbm-gumbel", {"view": "grid"}),
        ("rbm-gumbel layer 1, probability", "rbm-gumbel", {"relaxation": "probability"}),
        ("rbm-gumbel layer 1, one-hot (report code)", "rbm-gumbel", {"relaxation": "one-hot"}),
        ("rbm-recon-error (whole stack, k=1)", "rbm-recon-error", {}),
        ("rbm-recon-error (bottom RBM, k=1)", "rbm-recon-error", {"depth": 1}),
    ]


VAE_VARIANTS = [
    ("conv-vae: vae-gradcam", "vae-gradcam", {}),
    ("conv-vae: recon-error", "recon-error", {}),
]


def textures(runs: Runs, out: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    records = []
    for category in args.categories:
        data = f"textures:{category},size={args.texture_size},train_n={args.train_n},test_n={args.test_n}"
        for seed in args.seeds:
            rbm_options = {"epochs_per_layer": args.texture_epochs_per_layer, "units": args.units}
            rbm, rbm_key = train(
                runs, out, "stacked-rbm", data, seed, rbm_options, args, batch_size=args.rbm_batch_size
            )
            vae, vae_key = train(runs, out, "conv-vae", data, seed, {}, args, epochs=args.vae_epochs)
            variants = [(rbm, rbm_key, v) for v in rbm_variants(len(rbm.module.rbms))]
            variants += [(vae, vae_key, v) for v in VAE_VARIANTS]
            for model, model_key, (label, plugin, options) in variants:
                record = evaluate(runs, model_key, model, data, label, plugin, options, args)
                records.append({**record, "category": category, "seed": seed})
            test = xgen.dataset(data).test()
            top = len(rbm.module.rbms)
            fixed = [
                (rbm, f"rbm-gumbel layer {top}", "rbm-gumbel", {"layer": top}),
                (rbm, "rbm-recon-error", "rbm-recon-error", {}),
                (vae, "conv-vae: vae-gradcam", "vae-gradcam", {}),
                (vae, "conv-vae: recon-error", "recon-error", {}),
            ]
            for model, name, plugin, options in fixed:
                label = f"fixed map: the mean {name} map, the same for every image"
                amap = mean_map(model, test.images, plugin, options)
                records.append({**fixed_map_record(label, amap, test.masks), "category": category, "seed": seed})
        label = "fixed map: mean test mask (a position prior that peeks at the masks)"
        records.append({**fixed_map_record(label, test.masks.float().mean(dim=0), test.masks), "category": category})
    return records


def mean_map(model: xgen.Model, images: torch.Tensor, plugin: str, options: dict[str, Any]) -> torch.Tensor:
    """images: (N, C, H, W) -> (H, W), the mean of the per-image min-max normalised maps of `plugin`."""
    total = None
    for i in range(0, len(images), 100):
        maps = xgen.explain(model, images[i : i + 100].to(model.device), plugin=plugin, **options).anomaly_map.cpu()
        low = maps.flatten(1).amin(dim=1)[:, None, None]
        high = maps.flatten(1).amax(dim=1)[:, None, None]
        part = ((maps - low) / (high - low).clamp_min(1e-12)).sum(dim=0)
        total = part if total is None else total + part
    return total / len(images)


def fixed_map_record(label: str, amap: torch.Tensor, masks: torch.Tensor) -> dict[str, Any]:
    """The record of one (H, W) map given to every test image: what position alone earns, with no input."""
    values = fixed_map_metrics(amap, masks, list(METRICS))
    return {"method": label, **values, "anomalous_pixel_fraction": float(masks.float().mean())}


# -- the table ------------------------------------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(
    records: list[dict[str, Any]],
    runs: Runs,
    args,
    command: str,
    gallery_path: Path | None,
    similarity: list[tuple[str, float, float, int]],
    seconds: float,
):
    done = list(runs.records.values())
    lines = [
        "# Stacked-RBM results (generated by benchmarks/rbm_results.py)",
        "",
        f"Command: `{command}`",
        "",
        f"Seeds: {', '.join(map(str, args.seeds))} (training seed; rbm-gumbel noise seed 0; evaluation seed 0).",
        "",
        f"Machine: {machine(torch.get_num_threads(), args.device)}.",
        "",
        f"Wall time of this invocation: {seconds / 60:.1f} min; recorded in runs.jsonl: training "
        f"{sum(r['seconds'] for r in done if r['kind'] == 'train') / 60:.1f} min, evaluation "
        f"{sum(r['seconds'] for r in done if r['kind'] == 'evaluate') / 60:.1f} min (a rerun skips recorded work).",
        "",
        "Machines of the recorded runs: " + "; ".join(sorted({r.get("machine", "unrecorded") for r in done})) + ".",
        "",
    ]
    if gallery_path is not None:
        lines += [
            f"## Digits gallery ({gallery_path.name})",
            "",
            f"A stacked RBM ({args.units} units, epochs per layer {args.digit_epochs_per_layer}, seed "
            f"{args.seeds[0]}) trained on digits:normal=1,size={args.digit_size}; rbm-gumbel maps of the first "
            "held-out 7, 4, 9 and 2. Each cell: input | map over the input (pixel view) | the map on the hidden "
            "layer's square grid.",
            "",
            f"![rbm-gumbel gallery]({gallery_path.name})",
            "",
            f"Does the map depend on the input? The mean Pearson correlation between the maps of distinct inputs, "
            f"over the first {similarity[0][3] if similarity else 0} held-out digits other than 1 (1: the same map "
            "for every input; 0: unrelated maps), for the map in pixel space and on the hidden layer's grid:",
            "",
            "| map | pixel view | hidden grid |",
            "| --- | --- | --- |",
            *[f"| {caption} | {pixel:.3f} | {hidden:.3f} |" for caption, pixel, hidden, _ in similarity],
            "",
        ]
    if records:
        lines += [
            "## Textures: pixel AUROC and best IoU",
            "",
            f"Data: textures:CATEGORY,size={args.texture_size},train_n={args.train_n},test_n={args.test_n}; "
            f"stacked-rbm ({args.units} units, epochs per layer {args.texture_epochs_per_layer}"
            + (f", batch {args.rbm_batch_size}" if args.rbm_batch_size else "")
            + "), conv-vae ("
            + ("default epochs" if args.vae_epochs is None else f"epochs {args.vae_epochs}")
            + "). Mean ± standard deviation over the seeds; maps min-max normalised per image.",
            "",
        ]
        methods = list(dict.fromkeys(r["method"] for r in records))
        header = "| method | " + " | ".join(f"{c} pixel AUROC | {c} best IoU" for c in args.categories) + " |"
        lines += [header, "|" + " --- |" * (1 + 2 * len(args.categories))]
        for method in methods:
            cells = []
            for category in args.categories:
                chosen = [r for r in records if r["method"] == method and r["category"] == category]
                for metric in METRICS:
                    cells.append(summary([r[metric] for r in chosen]) if chosen else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        fractions = []
        for category in args.categories:
            chosen = [r["anomalous_pixel_fraction"] for r in records if r["category"] == category]
            fractions += ["0.500", f"{chosen[0]:.3f}"] if chosen else ["-", "-"]
        lines.append("| chance (AUROC); a map flagging every pixel (IoU) | " + " | ".join(fractions) + " |")
        trainings = [r for r in runs.records.values() if r["kind"] == "train"]
        lines += ["", "Training times (s):", ""]
        lines += [
            f"- {r['architecture']} on {r['data']}, seed {r['seed']}: {r['seconds']} s, epochs {r['epochs']}, batch "
            f"{r['batch_size']}; last epoch "
            + "; ".join(
                json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
                for row in (r.get("last_epoch_per_layer") or {"": r["last_epoch"]}).values()
            )
            for r in trainings
        ]
        warned = sorted({w for r in records for w in r.get("warnings", [])})
        if warned:
            lines += ["", "Warnings from xgen.evaluate:", "", *[f"- {w}" for w in warned]]
    path = args.out / "results.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"table: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("rbm-results"), help="folder for runs.jsonl, checkpoints/, the PNG, results.md"
    )
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated (the gallery uses the first)")
    parser.add_argument("--categories", default="brick,grass,gravel")
    parser.add_argument("--taus", default="0.1,0.5,1.0", help="gallery temperatures")
    parser.add_argument("--units", choices=["binary", "spin"], default="binary")
    parser.add_argument("--digit-size", type=int, default=28)
    parser.add_argument("--digit-epochs-per-layer", type=int, default=20)
    parser.add_argument("--texture-size", type=int, default=64)
    parser.add_argument("--train-n", type=int, default=1000)
    parser.add_argument("--test-n", type=int, default=200)
    parser.add_argument("--texture-epochs-per-layer", type=int, default=20)
    parser.add_argument("--rbm-batch-size", type=int, default=None, help="default: the architecture's (16)")
    parser.add_argument("--vae-epochs", type=int, default=None, help="default: conv-vae's (at least 400 steps)")
    parser.add_argument("--similarity-n", type=int, default=100, help="held-out digits for the map correlation")
    parser.add_argument("--skip-gallery", action="store_true")
    parser.add_argument("--skip-textures", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration to check the script (about 15 s)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.categories, args.digit_size = "0", "brick", 12
        args.digit_epochs_per_layer, args.texture_epochs_per_layer, args.vae_epochs = 2, 1, 1
        args.texture_size, args.train_n, args.test_n = 32, 64, 16
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s]
    args.categories = [c for c in str(args.categories).split(",") if c]
    args.taus = [float(t) for t in str(args.taus).split(",") if t]
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = Runs(args.out / "runs.jsonl")
    command = shlex.join(["python", "benchmarks/rbm_results.py", *sys.argv[1:]])
    started = time.perf_counter()
    gallery_path, similarity = (None, []) if args.skip_gallery else gallery(runs, args.out, args)
    records = [] if args.skip_textures else textures(runs, args.out, args)
    table(records, runs, args, command, gallery_path, similarity, time.perf_counter() - started)


if __name__ == "__main__":
    main()
