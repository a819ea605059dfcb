"""The Fréchet Inception Distance (Heusel et al. 2017; eq. 18 of seed 004) between two sets of image features."""

from __future__ import annotations

from typing import Literal

import torch

import xgen

TraceRoot = Literal["symmetric", "eigvals"]


def moments(features: torch.Tensor, block: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and unbiased covariance (F, F), both float64, of features (N, F), N >= 2.

    Two passes: the mean first, then the centred products summed over blocks of rows, so 50,000 x 2,048 never needs
    a float64 copy of the whole set and the sum does not lose digits to a large mean (torchmetrics instead keeps raw
    sums of x and x x^T and subtracts N mu mu^T at the end)."""
    n, width = features.shape
    mean = torch.zeros(width, dtype=torch.float64, device=features.device)
    for rows in features.split(block):
        mean += rows.double().sum(dim=0)
    mean /= n
    scatter = torch.zeros(width, width, dtype=torch.float64, device=features.device)
    for rows in features.split(block):
        centred = rows.double() - mean
        scatter.addmm_(centred.T, centred)
    return mean, scatter / (n - 1)


def check_finite(metric: str, name: str, features: torch.Tensor) -> None:
    """Raise XgenError, before any work, when features hold NaN or infinity."""
    bad = int((~torch.isfinite(features)).sum()) if features.is_floating_point() else 0
    if bad:
        raise xgen.XgenError(
            f"{metric} got {bad} NaN or infinite values in the {name} features; check the extractor and the images."
        )


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (F, F), eigenvalues clamped at 0."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def trace_sqrt_product(cov_a: torch.Tensor, cov_b: torch.Tensor, method: TraceRoot = "symmetric") -> torch.Tensor:
    """Tr (S_a S_b)^{1/2} for covariances (F, F) in float64.

    `symmetric`: the eigenvalues of L^T S_b L, with S_a = L L^T its Cholesky factorisation (the roles swapped when
    only S_b is positive definite; L = S_a^{1/2} from `eigh` when both are singular, e.g. fewer samples than
    features). That matrix has the eigenvalues of S_a S_b but
    is symmetric positive semi-definite, so `eigvalsh` applies (several times faster than a general
    eigendecomposition) and round-off cannot make them complex; those below 0 are clamped. `eigvals`: the sum of
    the real parts of the complex square roots of the general eigenvalues of S_a S_b, as torchmetrics'
    `_compute_fid` and torch-fidelity compute it (a negative eigenvalue thus counts 0, like the clamp)."""
    if method == "symmetric":
        first, second = cov_a, cov_b
        factor, info = torch.linalg.cholesky_ex(first)
        if int(info) != 0:
            first, second = cov_b, cov_a
            factor, info = torch.linalg.cholesky_ex(first)
        if int(info) != 0:
            factor = _psd_sqrt(first)
        inner = factor.T @ second @ factor
        return torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    return torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()


def frechet_distance(
    mean_a: torch.Tensor,
    cov_a: torch.Tensor,
    mean_b: torch.Tensor,
    cov_b: torch.Tensor,
    method: TraceRoot = "symmetric",
) -> float:
    """Eq. 18: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}), the squared 2-Wasserstein distance of the two
    Gaussians. Means (F,), covariances (F, F), float64."""
    shift = (mean_a - mean_b).square().sum()
    return float(shift + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt_product(cov_a, cov_b, method))


class FID(xgen.Metric):
    """Fréchet Inception Distance (Heusel et al. 2017; seed 004 eq. 18) between real and generated features.

    Each set is summarised by its mean and unbiased (N - 1) covariance in float64, as pytorch-fid, torch-fidelity
    and torchmetrics do. The trace of the matrix square root never goes through `scipy.linalg.sqrtm`, whose
    `disp=False` is gone from SciPy 1.18 and which returned large imaginary parts in SciPy 1.11-1.12: by default
    (`trace_root=symmetric`) it is computed from the eigenvalues of the symmetric L^T S_f L (S_r = L L^T), which are
    those of S_r S_f; `trace_root=eigvals` uses the general eigenvalues of S_r S_f as torchmetrics does. The value
    depends on the extractor and on the number of samples (it is biased upwards for small N, and with fewer samples
    than feature dimensions the covariances are singular), so report both with it.
    """

    name = "fid"
    description = "Fréchet distance between real and generated features (eq. 18 of seed 004); lower is better."
    requires = frozenset({"real", "fake"})

    trace_root: TraceRoot = "symmetric"

    def compute(self, *, real: torch.Tensor, fake: torch.Tensor) -> float:
        """real: (N, F), fake: (M, F) features; N, M >= 2."""
        for name, features in (("real", real), ("fake", fake)):
            if features.shape[0] < 2:
                raise xgen.XgenError(
                    f"fid needs at least 2 {name} feature rows to estimate a covariance, got {features.shape[0]}; "
                    "pass more images (thousands for a stable value)."
                )
            check_finite(self.name, name, features)
        mean_r, cov_r = moments(real)
        mean_f, cov_f = moments(fake)
        return frechet_distance(mean_r, cov_r, mean_f, cov_f, self.trace_root)
