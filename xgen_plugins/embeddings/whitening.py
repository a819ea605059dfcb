"""Standardise, then PCA-whiten, keeping every component whose variance is not numerically zero (seed 004 sec. 4).

The training matrix E (n, d) is standardised per feature (mean, population std), Z = (E - mean) / std, where a
feature constant up to rounding keeps scale 1 (`constant`, scikit-learn's StandardScaler rule), and decomposed
Z = U S V^T.
Component i has variance S_i^2 / (n - 1); it is kept when S_i > RTOL(n, d) * S_max, the tolerance
`numpy.linalg.matrix_rank` uses: max(n, d) times float64's machine epsilon. The centred matrix has rank at most
n - 1, so with fewer samples than dimensions (a 512 x 4 x 4 tap on a few hundred images) the remaining singular
values are rounding noise; scikit-learn's `PCA(whiten=True)` keeps them and divides by them, sending test images
to 1e12. Kept components are scaled to unit variance: w = Z V_k sqrt(n - 1) / S_k.
"""

from __future__ import annotations

import torch

import xgen

EPS = torch.finfo(torch.float64).eps


def constant(var: torch.Tensor, mean: torch.Tensor, n: int) -> torch.Tensor:
    """(d,) True where a feature's variance is within the rounding error of computing it over n samples, so the
    feature is constant: var <= n eps var + (n mean eps)^2 (scikit-learn's `_is_constant_feature`)."""
    return var <= n * EPS * var + (n * mean * EPS) ** 2


def rtol(n: int, d: int) -> float:
    """Singular values below rtol * the largest count as zero: numpy.linalg.matrix_rank's tolerance."""
    return max(n, d) * EPS


def fit(e: torch.Tensor, components: int | None = None) -> dict[str, torch.Tensor]:
    """e: (n, d) training embeddings -> {"mean": (d,), "scale": (d,), "projection": (d, k)} in float64, k the
    components kept (every one not numerically zero, or the `components` largest of those)."""
    n, d = e.shape
    if n < 2:
        raise xgen.XgenError(f"whitening needs at least 2 normal images to estimate a variance, got {n}.")
    e = e.double()
    mean = e.mean(dim=0)
    var = e.var(dim=0, correction=0)
    scale = torch.where(constant(var, mean, n), torch.ones_like(var), var.sqrt())
    _, s, vh = torch.linalg.svd((e - mean) / scale, full_matrices=False)
    k = int((s > rtol(n, d) * s[0]).sum()) if s[0] > 0 else 0
    if k == 0:
        raise xgen.XgenError("every training embedding is the same, so there is nothing to whiten; choose another tap.")
    if components is not None:
        k = min(k, components)
    projection = vh[:k].T * ((n - 1) ** 0.5 / s[:k])
    return {"mean": mean, "scale": scale, "projection": projection}


def simplex_warning(scorer: str, n: int, d: int, k: int) -> str | None:
    """The warning for n training images of d >= n features whitened with all k = n - 1 components their centred
    matrix has: the whitened training images are then the vertices of a regular simplex, every pair sqrt(2(n - 1))
    apart, so a one-class SVM ranks test images by their whitened norm alone and LOF gives every image about 1.
    None when fewer components were kept, or there are more images than features."""
    if d < n or k < n - 1:
        return None
    return (
        f"{scorer}: {n} training images of a {d}-feature tap, whitened with all {k} components, sit at equal "
        "distances from each other, so the detector ranks test images by their whitened norm only; pass "
        f"components=K with K well below {n} (for example {max(1, n // 4)}) to use the shape of the data."
    )


def apply(e: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """e: (N, d) embeddings -> (N, k) float64 whitened with a state from `fit`."""
    if e.shape[1] != state["mean"].shape[0]:
        raise xgen.XgenError(
            f"the tap gives {e.shape[1]} features but the scorer was fitted on {state['mean'].shape[0]}; "
            "refit it on this model."
        )
    return ((e.double() - state["mean"]) / state["scale"]) @ state["projection"]
