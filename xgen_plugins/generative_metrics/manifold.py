"""Improved precision and recall (Kynkäänniemi et al. 2019; seed 004 Table 2): each feature set approximated by the
union of balls around its points, each ball reaching the point's k-th nearest neighbour within its own set."""

from __future__ import annotations

from typing import Literal

import torch

import xgen

from .fid import check_finite

DType = Literal["float32", "float64"]


def squared_distances(a: torch.Tensor, b: torch.Tensor, a_norms: torch.Tensor, b_norms: torch.Tensor) -> torch.Tensor:
    """||a_i||^2 - 2 a_i.b_j + ||b_j||^2 clamped at 0, (n, F) x (m, F) -> (n, m): the official code's form, one
    matrix product and no square root (distances and radii are compared squared)."""
    d = torch.addmm(b_norms.unsqueeze(0), a, b.T, alpha=-2)
    return d.add_(a_norms.unsqueeze(1)).clamp_min_(0)


def knn_radii(features: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Squared distance (N,) of each point of features (N, F) to its k-th nearest neighbour in the set, the point
    itself excluded (a duplicate of it counts, at distance 0). Rows in blocks of batch_size against the whole set, so
    memory is batch_size x N."""
    norms = features.square().sum(dim=1)
    radii = []
    for start in range(0, features.shape[0], batch_size):
        rows = features[start : start + batch_size]
        d = squared_distances(rows, features, norms[start : start + batch_size], norms)
        own = torch.arange(rows.shape[0], device=d.device)
        d[own, own + start] = torch.inf
        radii.append(d.topk(k, dim=1, largest=False).values[:, k - 1])
    return torch.cat(radii)


def coverage(probes: torch.Tensor, reference: torch.Tensor, k: int, batch_size: int) -> float:
    """The fraction of probes (M, F) within the k-NN manifold of reference (N, F): at squared distance <= some
    reference point's squared k-NN radius (the official code's `<=`). Blocks of batch_size probes."""
    radii = knn_radii(reference, k, batch_size)
    norms = reference.square().sum(dim=1)
    inside = 0
    for rows in probes.split(batch_size):
        d = squared_distances(rows, reference, rows.square().sum(dim=1), norms)
        inside += int((d <= radii).any(dim=1).sum())
    return inside / probes.shape[0]


class _ManifoldMetric(xgen.Metric):
    """Shared options and checks of `precision` and `recall`."""

    requires = frozenset({"real", "fake"})

    k: int = 3
    batch_size: int = 1024
    dtype: DType = "float32"

    def validate(self) -> None:
        if self.k < 1 or self.batch_size < 1:
            raise xgen.XgenError(
                f"{self.name} needs k >= 1 and batch_size >= 1, got k={self.k} and batch_size={self.batch_size}."
            )

    def _coverage(self, probes: torch.Tensor, reference: torch.Tensor, reference_name: str) -> float:
        if reference.shape[0] <= self.k:
            raise xgen.XgenError(
                f"{self.name} with k={self.k} needs more than {self.k} {reference_name} feature rows, got "
                f"{reference.shape[0]}; pass more images or a smaller k."
            )
        if probes.shape[0] == 0:
            raise xgen.XgenError(f"{self.name} got no {'fake' if reference_name == 'real' else 'real'} features.")
        check_finite(self.name, "real", reference if reference_name == "real" else probes)
        check_finite(self.name, "fake", probes if reference_name == "real" else reference)
        dtype = getattr(torch, self.dtype)
        return coverage(probes.to(dtype), reference.to(dtype), self.k, self.batch_size)


class Precision(_ManifoldMetric):
    """Improved precision (Kynkäänniemi et al. 2019): the fraction of generated samples that fall within the k-NN
    manifold of the real ones, i.e. within the k-th-nearest-neighbour distance of at least one real sample.

    Follows the official code (kynkaat/improved-precision-and-recall-metric): squared Euclidean distances from the
    expanded form ||u||^2 - 2 u.v + ||v||^2 clamped at 0, in float32 (`dtype=float64` for exact comparisons), the
    radius excluding the point itself, and `<=` at the boundary. The official code evaluates several k at once and
    can clip spheres at a percentile; here one k per call (the paper: k=3) and no clipping. Distances go in blocks
    of `batch_size` rows, so 50,000 x 50,000 needs batch_size x 50,000 floats at a time.
    """

    name = "precision"
    description = "Share of generated features inside the real k-NN manifold (Kynkäänniemi et al. 2019); fidelity."

    def compute(self, *, real: torch.Tensor, fake: torch.Tensor) -> float:
        """real: (N, F), fake: (M, F) features."""
        return self._coverage(fake, real, "real")


class Recall(_ManifoldMetric):
    """Improved recall (Kynkäänniemi et al. 2019): the fraction of real samples that fall within the k-NN manifold
    of the generated ones. The same computation as `precision` with the two sets swapped."""

    name = "recall"
    description = "Share of real features inside the generated k-NN manifold (Kynkäänniemi et al. 2019); diversity."

    def compute(self, *, real: torch.Tensor, fake: torch.Tensor) -> float:
        """real: (N, F), fake: (M, F) features."""
        return self._coverage(real, fake, "fake")
