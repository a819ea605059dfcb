"""Time of xgen's `fid` on 50,000 x 2,048 features beside torchmetrics' FID, and of `precision` / `recall` on
10,000 x 2,048 beside full distance matrices (torch-fidelity's unbatched mode, reimplemented here).

    pip install -e ".[bench]"                            # adds torchmetrics; without it that row reads "skipped"
    python benchmarks/generative_metrics.py              # about 3 minutes on 2 idle cores, ~4 GB
    python benchmarks/generative_metrics.py --fid-n 10000 --pr-n 2000    # a rough look in well under a minute

The features: seeded random 2,048-d vectors shaped like Inception pool features (non-negative, correlated):
relu(z @ M) with z standard normal and one fixed random mixing matrix M; the generated set has its own z, M
scaled by 1.05 and a shift of 0.01, so the FID is neither 0 nor huge. Both sets are float32 tensors built before any
clock starts, and each measured call follows a small warm-up call.

- **xgen fid**: `xgen.metric("fid")(real=..., fake=...)` as users call it: float64 moments in two passes and the
  trace root from Cholesky + `eigvalsh` (`trace_root=symmetric`); also `trace_root=eigvals` (torchmetrics' route
  on xgen's moments).
- **torchmetrics**: `FrechetInceptionDistance(feature=Identity)`, whose `feature=` is an `nn.Module` with
  `num_features = 2048` that returns its input: `update()` with the features in batches of 1,000 (float64 sums of
  x and x x^T), then `compute()` (`_compute_fid`: general `eigvals` of S_r S_f). Its value is printed beside xgen's.
- **precision / recall**: xgen's metrics (row blocks of `batch_size` against the whole set, squared distances by
  one matrix product, `topk` radii), against full 10,000 x 10,000 `torch.cdist` matrices with `kthvalue` radii,
  computing both values at once. The values must agree exactly.

Progress goes to stderr, the report to stdout. Always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import xgen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_runs import cpu_name


def features(n: int, width: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """(n, width) float32: relu(z @ M * scale + shift) with z ~ N(0, I) seeded by `seed` and M fixed (seed 0)."""
    mix = torch.randn(width, width, generator=torch.Generator().manual_seed(0)) / width**0.5
    z = torch.randn(n, width, generator=torch.Generator().manual_seed(seed))
    return (z @ mix * scale + shift).relu_()


def timed(label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    print(f"  {label} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


class Identity(nn.Module):
    """torchmetrics' custom extractor: returns the features it is given."""

    num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchmetrics_fid(real: torch.Tensor, fake: torch.Tensor, batch: int = 1000) -> float | None:
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        return None
    Identity.num_features = real.shape[1]
    metric = FrechetInceptionDistance(feature=Identity())
    for rows in real.split(batch):
        metric.update(rows, real=True)
    for rows in fake.split(batch):
        metric.update(rows, real=False)
    return float(metric.compute())


def full_matrix_precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    """Both values from the three full distance matrices (torch-fidelity's unbatched mode)."""
    real_radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    fake_radii = torch.cdist(fake, fake).kthvalue(k + 1, dim=1).values
    cross = torch.cdist(fake, real)
    precision = (cross <= real_radii[None, :]).any(dim=1).float().mean()
    recall = (fake_radii[None, :] >= cross.T).any(dim=1).float().mean()
    return float(precision), float(recall)


def inception_seconds(images: torch.Tensor) -> float:
    """Seconds per image of `xgen.features.extract("inception:PATH", ...)`, randomly initialised weights in a
    temporary file (the speed does not depend on the weights), batches of 8, after one warm-up image."""
    import tempfile

    from torchvision.models import inception_v3

    from xgen.features import open_extractor

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "inception_v3.pt"
        torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
        extractor = open_extractor(f"inception:{path}")
    extractor(images[:1])
    _, seconds = timed("inception features", lambda: extractor(images, batch_size=8))
    return seconds / len(images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fid-n", type=int, default=50_000, help="rows of each feature set for fid")
    parser.add_argument("--pr-n", type=int, default=10_000, help="rows of each feature set for precision/recall")
    parser.add_argument("--width", type=int, default=2048, help="feature dimensions")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--inception-images", type=int, default=16, help="images for the Inception timing (0: none)")
    parser.add_argument("--skip-peers", action="store_true", help="time xgen only")
    args = parser.parse_args(argv)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    rows: list[tuple[str, str, float | None, str]] = []

    print(f"fid on {args.fid_n:,} x {args.width:,} features per set", file=sys.stderr)
    real = features(args.fid_n, args.width, seed=1)
    fake = features(args.fid_n, args.width, seed=2, scale=1.05, shift=0.01)
    fid, fid_eigvals = xgen.metric("fid"), xgen.metric("fid", trace_root="eigvals")  # plugins load before timing
    fid(real=real[:64, :64], fake=fake[:64, :64]), fid_eigvals(real=real[:64, :64], fake=fake[:64, :64])  # warm-up
    value, seconds = timed("xgen fid", lambda: fid(real=real, fake=fake))
    rows.append(("fid", "xgen (symmetric: Cholesky + eigvalsh)", seconds, f"{value:.6f}"))
    value, seconds = timed("xgen fid eigvals", lambda: fid_eigvals(real=real, fake=fake))
    rows.append(("fid", "xgen (trace_root=eigvals)", seconds, f"{value:.6f}"))
    if args.skip_peers:
        rows.append(("fid", "torchmetrics FrechetInceptionDistance", None, "skipped (--skip-peers)"))
    else:
        peer, seconds = timed("torchmetrics", lambda: torchmetrics_fid(real, fake))
        if peer is None:
            rows.append(("fid", "torchmetrics FrechetInceptionDistance", None, "skipped (not installed)"))
        else:
            rows.append(("fid", "torchmetrics FrechetInceptionDistance", seconds, f"{peer:.6f}"))
            rows.append(("fid", "relative difference xgen / torchmetrics", None, f"{abs(value - peer) / peer:.1e}"))
    del real, fake

    print(f"precision / recall on {args.pr_n:,} x {args.width:,} features per set, k={args.k}", file=sys.stderr)
    real = features(args.pr_n, args.width, seed=3)
    fake = features(args.pr_n, args.width, seed=4, scale=1.02)
    precision_metric, recall_metric = xgen.metric("precision", k=args.k), xgen.metric("recall", k=args.k)
    precision_metric(real=real[:64], fake=fake[:64]), recall_metric(real=real[:64], fake=fake[:64])  # warm-up
    precision, p_seconds = timed("xgen precision", lambda: precision_metric(real=real, fake=fake))
    recall, r_seconds = timed("xgen recall", lambda: recall_metric(real=real, fake=fake))
    rows.append(("precision", "xgen", p_seconds, f"{precision:.6f}"))
    rows.append(("recall", "xgen", r_seconds, f"{recall:.6f}"))
    if not args.skip_peers:
        (p_full, r_full), seconds = timed("full matrices", lambda: full_matrix_precision_recall(real, fake, args.k))
        rows.append(("precision + recall", "full cdist matrices", seconds, f"{p_full:.6f} / {r_full:.6f}"))
        same = round(p_full * args.pr_n) == round(precision * args.pr_n) and round(r_full * args.pr_n) == round(
            recall * args.pr_n
        )
        agree = "same counts" if same else "DIFFER (float32 rounding at a boundary)"
        rows.append(("precision + recall", "xgen equals full matrices", None, agree))

    if args.inception_images:
        images = torch.rand(args.inception_images, 3, 64, 64, generator=torch.Generator().manual_seed(5))
        seconds = inception_seconds(images)
        rows.append(("inception features", "per image, 3x64x64 -> 299x299, random weights", seconds, "2048-d"))

    print("\n| measure | implementation | seconds | value |\n| --- | --- | ---: | --- |")
    for measure, who, seconds, value in rows:
        shown = f"{seconds:.3g}" if seconds is not None else ""
        print(f"| {measure} | {who} | {shown} | {value} |")


if __name__ == "__main__":
    main()
