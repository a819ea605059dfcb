"""`mig-binned`: the mutual information gap as google-research/disentanglement_lib computes it."""

from __future__ import annotations

import math

import numpy as np
import torch

import xgen


def discretize(codes: torch.Tensor, bins: int) -> torch.Tensor:
    """codes: (N, D) float -> (N, D) int64 bin numbers 1..bins, each code in `bins` equal-width bins over its own
    range: np.histogram's edges (a constant code spans [c - 0.5, c + 0.5]) without the last, then np.digitize."""
    z = codes.detach().cpu().double()
    low, high = z.amin(dim=0).numpy(), z.amax(dim=0).numpy()
    flat = low == high
    low, high = np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high)
    edges = torch.from_numpy(np.linspace(low, high, bins + 1, axis=1)[:, :-1].copy())
    return torch.searchsorted(edges, z.T.contiguous(), right=True).T


def factor_indices(factors: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """factors: (N, K) integers -> (N, K) int64 in 0..n_k - 1 (the rank of each value in its column), and the n_k."""
    columns, sizes = [], []
    for column in factors.detach().cpu().long().T:
        values, inverse = torch.unique(column, return_inverse=True)
        columns.append(inverse)
        sizes.append(len(values))
    return torch.stack(columns, dim=1), sizes


def entropy(counts: torch.Tensor) -> torch.Tensor:
    """The entropy in nats of the empirical distributions in the last dimension of counts (..., V)."""
    total = counts.sum(dim=-1, keepdim=True)
    p = counts / total
    return -torch.where(counts > 0, p * (counts.log() - total.log()), torch.zeros_like(p)).sum(dim=-1)


def mutual_information(bins: torch.Tensor, values: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Discrete mutual information (D, K) in nats of each binned code (N, D) int64 with each factor (N, K) int64 in
    0..sizes[k] - 1: the plug-in estimate sum p(b, v) log(p(b, v) / (p(b) p(v))) from one joint histogram per
    factor (a bincount over all codes at once), equal to sklearn's `mutual_info_score` for every pair."""
    n, d = bins.shape
    width = int(bins.max()) + 1
    offset = torch.arange(d).mul(width).unsqueeze(0)
    mi = torch.empty(d, len(sizes), dtype=torch.float64)
    for k, size in enumerate(sizes):
        joint_index = ((bins + offset) * size + values[:, k : k + 1]).reshape(-1)
        joint = torch.bincount(joint_index, minlength=d * width * size).view(d, width, size).double()
        code_counts, factor_counts = joint.sum(dim=2, keepdim=True), joint.sum(dim=1, keepdim=True)
        terms = joint * (joint.log() + math.log(n) - code_counts.log() - factor_counts.log())
        mi[:, k] = torch.where(joint > 0, terms, torch.zeros_like(terms)).sum(dim=(1, 2)).div(n).clamp_min(0.0)
    return mi


class BinnedMIG(xgen.Metric):
    """The mutual information gap (MIG) of codes against ground-truth factors, as google-research/disentanglement_lib
    computes it (`evaluation/metrics/mig.py`, `_compute_mig`; Locatello et al. 2019, after Chen et al. 2018):

        MIG = 1/K sum_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k)

    where z_(1), z_(2) are the codes with the largest and second-largest I(z_j; v_k). Each code is discretised into
    `bins` (20) equal-width bins between its own minimum and maximum (np.histogram's edges without the last, then
    np.digitize); I is the discrete mutual information in nats (sklearn's `mutual_info_score`) and H(v_k) the
    empirical entropy of the factor (`mutual_info_score(v_k, v_k)`). Codes are taken in float64.

    Where this differs from `mig` (Chen et al.'s estimator): the codes are whatever the caller passes
    (disentanglement_lib uses the encoder *mean* of 10,000 images drawn uniformly from the factor grid, with all five
    dSprites factors), not samples of q(z|x) over the whole grid; I is a histogram plug-in estimate, biased upward by
    about (bins - 1)(|v_k| - 1) / 2N nats; and the normaliser is the factor's empirical entropy, not log |v_k|. The
    two numbers are not comparable. After `__call__`, `details` holds the (D, K) mutual information and the (K,)
    factor entropies.
    """

    name = "mig-binned"
    description = "Mutual information gap of codes and factors with 20-bin histograms (disentanglement_lib)."
    requires = frozenset({"codes", "factors"})

    bins: int = 20

    def validate(self) -> None:
        if self.bins < 2:
            raise xgen.XgenError(f"mig-binned needs bins >= 2, got {self.bins}.")

    def compute(self, *, codes: torch.Tensor, factors: torch.Tensor) -> float:
        """codes: (N, D) float, factors: (N, K) integer -> MIG in [0, 1]."""
        check(self.name, codes, factors)
        values, sizes = factor_indices(factors)
        constant = [k for k, size in enumerate(sizes) if size < 2]
        if constant:
            raise xgen.XgenError(
                f"metric '{self.name}' got factor column {constant[0]} with a single value, whose entropy is zero; "
                "drop the factors that do not vary (such as dSprites' color)."
            )
        mi = mutual_information(discretize(codes, self.bins), values, sizes)
        h = torch.stack([entropy(torch.bincount(values[:, k]).double()) for k in range(len(sizes))])
        top = mi.sort(dim=0, descending=True).values
        self.details = {"mutual_information": mi, "factor_entropy": h}
        return float(((top[0] - top[1]) / h).mean())


def check(metric: str, codes: torch.Tensor, factors: torch.Tensor) -> None:
    """One sentence for codes and factors that MIG cannot use."""
    if codes.dim() != 2 or factors.dim() != 2:
        raise xgen.XgenError(
            f"metric '{metric}' needs codes (N, D) and factors (N, K), got shapes {tuple(codes.shape)} and "
            f"{tuple(factors.shape)}; reshape a single column to (N, 1)."
        )
    if codes.shape[1] < 2:
        raise xgen.XgenError(
            f"metric '{metric}' needs at least two code dimensions to take a gap, got {codes.shape[1]}."
        )
    if len(codes) < 2 or factors.shape[1] < 1:
        raise xgen.XgenError(f"metric '{metric}' needs at least two rows and one factor, got {tuple(factors.shape)}.")
    if factors.is_floating_point() or factors.is_complex():
        raise xgen.XgenError(
            f"metric '{metric}' needs integer factors (the index of each factor's value), got {factors.dtype}; "
            "pass the factor indices, such as a dataset's split_factors gives."
        )
    if not torch.isfinite(codes).all():
        raise xgen.XgenError(f"metric '{metric}' got NaN or Inf in the codes; remove those rows first.")
