"""The Ray engine on this machine: explain throughput of the local engine against Ray with 1 and 2 workers, and the
driver's peak memory when `evaluate`'s pixel metrics are merged from shards against computing them in one process.

Run from the repository root:  python benchmarks/ray_scaling.py [--quick] [--json out.json]

Explain: a folder of PNGs (digits 28x28 from `xgen.dataset("digits:normal=1")`, repeated; 256x256 crops of the
scikit-image textures) and an untrained, seeded conv-vae per size (as `benchmarks/explain_speed.py`), explained with
the default outputs (.npy, .png, scores.csv) in batches of 64 by `xgen.explain_job.run`: the local engine, then Ray
with 1 and 2 workers of 1 CPU each on a private Ray instance (started once, its start-up timed apart). Each engine
explains n and 2n images (the fastest of `--repeats` runs each, into a fresh folder, the runs rotating): images/s on
2n, the marginal rate n / (t(2n) - t(n)) that a long job approaches (Ray's fixed cost of starting the workers and
loading the model left out) and that fixed cost; and the driver's CPU seconds per batch of 64 (what bounds how many
workers one driver can keep busy).

Evaluate memory: `--images` synthetic 256x256 maps (smooth random fields, bilinearly upsampled from 16x16, per-image
min-max normalised, float32: nearly every pixel a distinct value) with masks of one to three elliptic defects on
two thirds of the images (1,728 images = 113,246,208 pixels by default, MVTec AD's test set at 256x256). Three
processes, each reporting its own peak resident memory (ru_maxrss): `single` builds all maps and masks and computes
pixel-auroc, pixel-aupro and best-iou with `Metric.__call__` (what `xgen evaluate` does after gathering every map);
`workers` builds the same maps 64 images at a time and stores each shard's partials (`Metric.shard`) as .npy files
(what Ray workers return); `merge` is the driver: `Metric.merged` over the stored partials. The values must agree
(AUROC bit for bit, AUPRO within 1e-12). `baseline` imports the same modules and does nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("pixel-auroc", "pixel-aupro", "best-iou")
SHARD = 64


def synthetic(start: int, count: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Maps (count, size, size) float32 in [0, 1] and masks (count, size, size) uint8 of images start.., each image
    seeded by its index, so any shard split gives the same images."""
    import torch
    import torch.nn.functional as F

    maps = np.empty((count, size, size), dtype=np.float32)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    rows, cols = np.mgrid[0:size, 0:size]
    for k in range(count):
        rng = np.random.default_rng([seed, start + k])
        coarse = torch.from_numpy(rng.random((1, 1, 16, 16), dtype=np.float32))
        field = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
        if (start + k) % 3:
            for _ in range(rng.integers(1, 4)):
                r, c, a, b = rng.integers(20, size - 20), rng.integers(20, size - 20), *rng.integers(3, 18, 2)
                masks[k] |= (((rows - r) / a) ** 2 + ((cols - c) / b) ** 2 <= 1).astype(np.uint8)
            field = field + 0.5 * masks[k] * rng.random(dtype=np.float32)
        low, high = field.min(), field.max()
        maps[k] = (field - low) / (high - low)
    return maps, masks


def _peak_mb() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss keeps the parent's peak across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(name: str, images: int, folder: Path) -> dict[str, Any]:
    """One measured process: baseline, single, workers or merge (see the module docstring)."""
    import torch

    import xgen

    torch.set_num_threads(1)
    metrics = {spec: xgen.metric(spec) for spec in METRICS}
    start = time.perf_counter()
    values: dict[str, float] = {}
    if name == "single":
        maps, masks = synthetic(0, images)
        built = time.perf_counter() - start
        for spec, metric in metrics.items():
            values[spec] = metric(maps=maps, masks=masks)
        return {"values": values, "build_s": built, "seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}
    if name == "workers":
        entries = 0
        for first in range(0, images, SHARD):
            maps, masks = synthetic(first, min(SHARD, images - first))
            for spec, metric in metrics.items():
                shard = folder / spec / f"{first:06d}"
                shard.mkdir(parents=True)
                for key, array in metric.shard(maps=maps, masks=masks).items():
                    np.save(shard / f"{key}.npy", array, allow_pickle=False)
                entries += np.load(shard / "neg.npy", mmap_mode="r").size if (shard / "neg.npy").exists() else 0
        return {"entries": entries, "seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}
    if name == "merge":
        from xgen.ray_engine import StoredPartial

        seconds = {}
        for spec, metric in metrics.items():
            began = time.perf_counter()
            values[spec] = metric.merged(StoredPartial(p) for p in sorted((folder / spec).iterdir()))
            seconds[spec] = time.perf_counter() - began
        return {
            "values": values,
            "seconds": time.perf_counter() - start,
            "per_metric_s": seconds,
            "peak_mb": _peak_mb(),
        }
    return {"seconds": 0.0, "peak_mb": _peak_mb()}


def measured(name: str, images: int, folder: Path) -> dict[str, Any]:
    """`step` in a fresh Python process (one thread), so its peak memory is its own."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, __file__, "--step", name, "--images", str(images), "--folder", str(folder)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(images: int, workdir: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        found = {name: measured(name, images, folder) for name in ("baseline", "single", "workers", "merge")}
        found["stored_mb"] = sum(p.stat().st_size for p in folder.rglob("*.npy")) / 2**20
    single, merged = found["single"]["values"], found["merge"]["values"]
    found["same"] = {
        spec: (merged[spec] == single[spec]) if spec != "pixel-aupro" else abs(merged[spec] - single[spec]) <= 1e-12
        for spec in METRICS
    }
    found["pixels"] = images * 256 * 256
    return found


def explain_rates(digits: int, textures: int, repeats: int, workdir: Path | None) -> dict[str, Any]:
    """Per image size and engine: the fastest wall time of explaining n and 2n images, hence the end-to-end images/s
    on 2n, the marginal images/s n / (t(2n) - t(n)) (the steady rate, without the fixed cost of starting workers and
    loading the model) and that fixed cost; and the driver's CPU seconds per batch."""
    import ray
    from explain_speed import digit_pngs, texture_pngs, untrained_conv_vae

    import xgen
    from xgen.cli.explain import _file_items
    from xgen.explain_job import run

    results: dict[str, Any] = {}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    began = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    results["ray_start_s"] = time.perf_counter() - began
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            root = Path(tmp)
            sizes = {
                "1x28x28": (digit_pngs, digits, (1, 28, 28), {}),
                "1x256x256": (texture_pngs, textures, (1, 256, 256), {"hidden": 16}),
            }
            for label, (make, n, shape, options) in sizes.items():
                folder = root / label
                make(folder, 2 * n)
                checkpoint = untrained_conv_vae(root / f"{label}.pt", shape, **options)
                model = xgen.load(checkpoint)
                items = _file_items([folder], shape, False, False)
                runs = {
                    "local engine": {},
                    "ray, 1 worker": {"engine": "ray", "workers": 1, "checkpoint": checkpoint},
                    "ray, 2 workers": {"engine": "ray", "workers": 2, "checkpoint": checkpoint},
                }
                best: dict[tuple[str, int], tuple[float, float, int]] = {}
                order = [(name, count) for name in runs for count in (n, 2 * n)]
                for r in range(repeats):
                    for name, count in order[r % len(order) :] + order[: r % len(order)]:
                        out = root / "out"
                        shutil.rmtree(out, ignore_errors=True)
                        cpu, start = time.process_time(), time.perf_counter()
                        result = run(model, items[:count], out, plugin=None, options={}, model_id=None, **runs[name])
                        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                        assert result.explained == count
                        if seconds < best.get((name, count), (float("inf"),))[0]:
                            best[(name, count)] = (seconds, cpu / -(-count // 64), len(result.workers))
                timed = {}
                for name in runs:
                    (t1, _, _), (t2, cpu_per_batch, workers) = best[(name, n)], best[(name, 2 * n)]
                    marginal = n / max(t2 - t1, 1e-9)
                    timed[name] = {
                        "seconds_n": t1,
                        "seconds_2n": t2,
                        "images_per_s": 2 * n / t2,
                        "marginal_images_per_s": marginal,
                        "fixed_s": t2 - 2 * n / marginal,
                        "driver_cpu_s_per_batch": cpu_per_batch,
                        "workers_seen": workers,
                    }
                results[label] = {"images": [n, 2 * n], "runs": timed}
    finally:
        ray.shutdown()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000, help="n of the 28x28 runs (n and 2n; default 1000)")
    parser.add_argument("--textures", type=int, default=64, help="n of the 256x256 runs (n and 2n; default 64)")
    parser.add_argument("--images", type=int, default=1728, help="256x256 maps for the memory figures (default 1728)")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of each explain run (default 2)")
    parser.add_argument("--quick", action="store_true", help="n = 100 digits, 8 textures; 96 maps, 1 repeat")
    parser.add_argument("--skip-explain", action="store_true", help="only the memory figures")
    parser.add_argument("--workdir", type=Path, default=None, help="where temporary files go (default: /tmp)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step is not None:
        print(json.dumps(step(args.step, args.images, args.folder)))
        return 0
    if args.quick:
        args.digits, args.textures, args.images, args.repeats = 100, 8, 96, 1
    sys.path.insert(0, str(Path(__file__).parent))
    from result_runs import machine

    print("xgen Ray engine benchmark")
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}")
    summary: dict[str, Any] = {"machine": machine()}
    if not args.skip_explain:
        rates = explain_rates(args.digits, args.textures, args.repeats, args.workdir)
        summary["explain"] = rates
        print(f"\nprivate Ray instance started in {rates['ray_start_s']:.1f} s (not in the figures below)")
        header = ("images (n, 2n)", "engine", "s for n", "s for 2n", "img/s 2n", "marginal", "fixed s", "CPU s/batch")
        print(f"{header[0]:<20}{header[1]:<16}" + "".join(f"{h:>12}" for h in header[2:]))
        for label, found in rates.items():
            if not isinstance(found, dict):
                continue
            for name, f in found["runs"].items():
                cells = (f["seconds_n"], f["seconds_2n"], f["images_per_s"], f["marginal_images_per_s"], f["fixed_s"])
                print(
                    f"{label + ' x ' + str(found['images']):<20}{name:<16}"
                    + "".join(f"{c:>12.2f}" for c in cells)
                    + f"{f['driver_cpu_s_per_batch']:>12.4f}"
                )
    found = memory(args.images, args.workdir)
    summary["memory"] = found
    print(f"\nevaluate's pixel metrics on {found['pixels']:,} pixels ({args.images} maps of 256x256)")
    print(f"{'process':<40}{'peak RSS MB':>12}{'seconds':>10}")
    for name, what in (
        ("baseline", "baseline (imports only)"),
        ("single", "single process (all maps held)"),
        ("workers", f"workers ({SHARD} maps per shard)"),
        ("merge", "driver merging the shards' partials"),
    ):
        print(f"{what:<40}{found[name]['peak_mb']:>12.0f}{found[name]['seconds']:>10.1f}")
    print(f"partials stored: {found['stored_mb']:.0f} MB; merge per metric: {found['merge']['per_metric_s']}")
    for spec in METRICS:
        print(f"{spec}: single {found['single']['values'][spec]!r}, merged {found['merge']['values'][spec]!r}, "
              f"equal: {found['same'][spec]}")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
