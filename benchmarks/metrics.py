"""Time and peak extra memory of xgen's pixel-auroc beside scikit-learn's roc_auc_score, and of pixel-aupro.

    python benchmarks/metrics.py                 # 10 million and 113 million pixels (about 3 minutes, 8 GB)
    python benchmarks/metrics.py --skip-slow     # no scikit-learn at 113 million pixels (about a minute)

The data: seeded smooth maps (bilinear upsampling of 16x16 noise to 256x256) quantised to 1/1024 steps, so
float32 with many ties, raised by 0.25 inside masks of random blobs on half of the images. Peak extra memory is
tracemalloc's peak over the call (numpy's allocations; the inputs exist before). Always exits 0.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

import xgen
import xgen_plugins.metrics
from xgen.plugins import new_registry, use_registry


def make_data(images: int, seed: int, size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, size, size) float32 maps in 1/1024 steps and bool masks, built 64 images at a time."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.empty(images, size, size)
    masks = torch.empty(images, size, size, dtype=torch.bool)
    for start in range(0, images, 64):
        n = min(64, images - start)
        noise = torch.rand(n, 1, 16, 16, generator=generator)
        smooth = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        blobs = F.interpolate(torch.rand(n, 1, 8, 8, generator=generator), size=(size, size), mode="bilinear")[:, 0]
        anomalous = (torch.arange(start, start + n) % 2 == 1)[:, None, None]
        masks[start : start + n] = (blobs > 0.8) & anomalous
        maps[start : start + n] = smooth.add_(0.25 * masks[start : start + n]).mul_(1024).round_().div_(1024)
    return maps, masks


def measure(fn: Callable[[], float]) -> tuple[float, float, float]:
    """(value, seconds, peak extra MB) of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return value, seconds, peak / 2**20


def run(images: int, seed: int, with_sklearn: bool) -> None:
    maps, masks = make_data(images, seed)
    pixels = maps.numel()
    input_mb = (maps.numel() * maps.element_size() + masks.numel()) / 2**20
    print(
        f"\n{pixels / 1e6:.1f} million pixels ({images} maps of 256x256, float32, "
        f"{np.unique(maps[:8].numpy()).size}+ distinct values, {masks.float().mean():.3%} anomalous); "
        f"inputs {input_mb:.0f} MB"
    )
    auroc = xgen.metric("pixel-auroc")
    ours, ours_s, ours_mb = measure(lambda: auroc(maps=maps, masks=masks))
    print(f"  xgen pixel-auroc      {ours_s:8.2f} s  {ours_mb:8.0f} MB extra   AUROC {ours:.12f}")
    if with_sklearn:
        from sklearn.metrics import roc_auc_score

        def sklearn() -> float:
            return float(roc_auc_score(masks.numpy().ravel(), maps.numpy().ravel()))

        theirs, theirs_s, theirs_mb = measure(sklearn)
        print(f"  sklearn roc_auc_score {theirs_s:8.2f} s  {theirs_mb:8.0f} MB extra   AUROC {theirs:.12f}")
        speedup, difference = theirs_s / ours_s, abs(ours - theirs)
        print(
            f"  speed-up {speedup:.1f}x (target >= 10x): {'PASS' if speedup >= 10 else 'FAIL'};  "
            f"|difference| {difference:.1e} (target <= 1e-9): {'PASS' if difference <= 1e-9 else 'FAIL'}"
        )
    else:
        print("  sklearn roc_auc_score skipped (--skip-slow)")
    print(
        f"  xgen extra memory {ours_mb:.0f} MB vs inputs {input_mb:.0f} MB (target <= inputs): "
        f"{'PASS' if ours_mb <= input_mb else 'FAIL'}"
    )
    aupro = xgen.metric("pixel-aupro")
    value, seconds, mb = measure(lambda: aupro(maps=maps, masks=masks))
    print(f"  xgen pixel-aupro      {seconds:8.2f} s  {mb:8.0f} MB extra   AUPRO {value:.12f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="153,1725", help="comma-separated map counts (153 = 10.0M pixels)")
    parser.add_argument("--skip-slow", action="store_true", help="skip scikit-learn above 20 million pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = new_registry()
    if "pixel-auroc" not in registry.names("metric"):
        registry.add_plugin(xgen_plugins.metrics, "metrics")
    print(f"numpy {np.__version__}, torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs")
    with use_registry(registry):
        for images in (int(n) for n in args.images.split(",")):
            run(images, args.seed, with_sklearn=not (args.skip_slow and images * 65536 > 20_000_000))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a benchmark reports, it never fails the caller
        print(f"benchmark error: {type(exc).__name__}: {exc}")
