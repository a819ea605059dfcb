"""Time `mig` (Chen et al.'s estimator over the dSprites factor grid) and `factorvae-score` on this machine.

    python benchmarks/disentanglement.py                       # mig over all 737,280 grid cells (16 min, 2 cores)
    python benchmarks/disentanglement.py --images 73728        # a seeded 10% subsample of the grid
    python benchmarks/disentanglement.py --metric factorvae-score
    python benchmarks/disentanglement.py --metric mig-binned   # 10,000 codes, beside disentanglement_lib's loop

The model is the FactorVAE paper's dSprites encoder (4 convs 4x4 stride 2 with 32, 32, 64, 64 channels, FC 128,
FC 2 x 10), untrained, seeded: the time depends on the architecture, not on what it learned. The figures split the
call into rendering, encoding and the rest (the entropy estimates of `mig`, the votes of `factorvae-score`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import torch
from result_runs import machine
from torch import nn

import xgen
from xgen_plugins.dsprites import DSprites

#: disentanglement_lib's defaults (metric_configs/mig.gin, factor_vae_metric.gin), for comparison.
DISENTANGLEMENT_LIB = {
    "mig-binned": "10,000 images (num_train), encoder mean, 20 bins",
    "factorvae-score": "10,000 variance images + (10,000 + 5,000) votes x 64 images = 970,000 encodes",
}


class Encoder(nn.Module):
    """Kim & Mnih's dSprites encoder: (N, 1, 64, 64) -> (mean, logvar) (N, latent); wall time of encode kept."""

    def __init__(self, latent: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        channels = [1, 32, 32, 64, 64]
        convs = [nn.Sequential(nn.Conv2d(a, b, 4, 2, 1), nn.ReLU()) for a, b in itertools.pairwise(channels)]
        self.net = nn.Sequential(
            *convs, nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 2 * latent)
        )
        self.seconds = 0.0

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = time.perf_counter()
        mean, logvar = self.net(x).chunk(2, dim=1)
        self.seconds += time.perf_counter() - start
        return mean, logvar


class TimedDSprites(DSprites):
    """dsprites with the wall time of `render_factors` kept."""

    seconds = 0.0

    def render_factors(self, factors: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        images = super().render_factors(factors)
        TimedDSprites.seconds += time.perf_counter() - start
        return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", choices=["mig", "factorvae-score", "mig-binned"], default="mig")
    parser.add_argument("--images", type=int, default=None, help="mig: grid cells to use (default: all 737,280)")
    parser.add_argument("--samples", type=int, default=10_000, help="mig: entropy samples per estimate")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    if args.metric == "mig-binned":
        binned()
        return
    model, data = Encoder(), TimedDSprites()
    options = {"seed": 0, "progress": args.progress}
    if args.metric == "mig":
        options.update(images=args.images, samples=args.samples)
    metric = xgen.metric(args.metric, **options)
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}")
    print(f"xgen.metric({args.metric!r}, {', '.join(f'{k}={v!r}' for k, v in options.items())})")
    start = time.perf_counter()
    value = metric(model=model, data=data)
    total = time.perf_counter() - start
    rest = total - model.seconds - TimedDSprites.seconds
    print(
        f"value {value:.4f}; total {total:.1f} s = render {TimedDSprites.seconds:.1f} s + encode {model.seconds:.1f} s "
        f"+ {'entropy estimates' if args.metric == 'mig' else 'votes'} {rest:.1f} s; "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )
    if args.metric == "factorvae-score":
        print(
            f"train accuracy {metric.details['train_accuracy']:.4f}, "
            f"active latents {int(metric.details['active'].sum())}"
        )
    print(f"disentanglement_lib: {DISENTANGLEMENT_LIB['mig-binned' if args.metric == 'mig' else args.metric]}")


def _disentanglement_lib_mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """disentanglement_lib's `mig._compute_mig` as it computes it: per-code histogram discretisation, then
    scikit-learn's `mutual_info_score` for every (code, factor) pair in a Python loop."""
    from sklearn.metrics import mutual_info_score

    discrete = np.zeros_like(codes, dtype=np.int64)
    for j in range(codes.shape[1]):
        discrete[:, j] = np.digitize(codes[:, j], np.histogram(codes[:, j], bins)[1][:-1])
    mi = np.array([[mutual_info_score(f, c) for f in factors.T] for c in discrete.T])
    entropy = np.array([mutual_info_score(f, f) for f in factors.T])
    top = np.sort(mi, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


def binned(n: int = 10_000, latent: int = 10, repeats: int = 5) -> None:
    """Time `mig-binned` on n N(0, 1) codes against n dsprites factor rows, beside disentanglement_lib's loop."""
    codes = torch.randn(n, latent, generator=torch.Generator().manual_seed(0))
    factors = DSprites().sample_factors(n, torch.Generator().manual_seed(0))
    metric = xgen.metric("mig-binned")
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}")
    print(f"mig-binned on {n:,} x {latent} N(0, 1) codes (seed 0) and {n:,} dsprites factor rows (seed 0)")
    times, ours, ref = [], None, None
    for _ in range(repeats):
        start = time.perf_counter()
        ours = metric(codes=codes, factors=factors)
        times.append(time.perf_counter() - start)
    ref_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ref = _disentanglement_lib_mig(codes.numpy(), factors.numpy())
        ref_times.append(time.perf_counter() - start)
    best, ref_best = min(times), min(ref_times)
    print(f"xgen mig-binned: {best:.3f} s (best of {repeats}), value {ours:.6f}")
    print(f"disentanglement_lib's loop (sklearn mutual_info_score per pair): {ref_best:.3f} s, value {ref:.6f}")
    print(f"ratio: {ref_best / best:.1f}x; |difference| {abs(ours - ref):.2e}")
    print(f"disentanglement_lib: {DISENTANGLEMENT_LIB['mig-binned']}")


if __name__ == "__main__":
    main()
