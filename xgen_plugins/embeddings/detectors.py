"""The two detectors of seed 004 section 4 on whitened embeddings, their state as tensors, their scores in torch.

One-class SVM: scikit-learn's `OneClassSVM` (libsvm, Schölkopf et al. 2001) solves the dual; its decision function
f(w) = sum_i alpha_i K(s_i, w) - rho (support vectors s_i, dual coefficients alpha_i, intercept -rho) is recomputed
here from those tensors, and the score is -f(w): positive outside the learned region.

Local outlier factor (Breunig et al. 2000) as scikit-learn's `LocalOutlierFactor(novelty=True)` computes it, with
exact nearest neighbours: k-distance(o) is the distance from training point o to its k-th nearest other training
point, reach(w, o) = max(d(w, o), k-distance(o)), lrd(w) = 1 / (mean over w's k nearest training points o of
reach(w, o) + 1e-10), and LOF(w) = mean over those o of lrd(o) / lrd(w) = -score_samples(w).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

#: Query rows x training points per distance block: bounds the memory of the exact neighbour search.
BLOCK = 1 << 22


def _distances(a: torch.Tensor, b: torch.Tensor, p: float) -> torch.Tensor:
    """a: (M, k), b: (N, k) -> (M, N) Minkowski distances, computed directly (no |a|^2 + |b|^2 - 2ab shortcut)."""
    return torch.cdist(a.unsqueeze(0), b.unsqueeze(0), p=p, compute_mode="donot_use_mm_for_euclid_dist").squeeze(0)


def _rows(n_points: int) -> int:
    """Query rows per block against n_points points."""
    return max(1, BLOCK // max(1, n_points))


def kernel(a: torch.Tensor, b: torch.Tensor, name: str, gamma: float, degree: int, coef0: float) -> torch.Tensor:
    """a: (M, k), b: (N, k) -> (M, N) libsvm's kernel: rbf exp(-gamma |a-b|^2), linear <a,b>, poly
    (gamma <a,b> + coef0)^degree, sigmoid tanh(gamma <a,b> + coef0)."""
    if name == "rbf":
        return torch.exp(-gamma * _distances(a, b, 2.0).square())
    dot = a @ b.T
    if name == "linear":
        return dot
    if name == "poly":
        return (gamma * dot + coef0) ** degree
    return torch.tanh(gamma * dot + coef0)


def resolve_gamma(w: torch.Tensor, gamma: float | str) -> float:
    """The kernel coefficient scikit-learn uses: "scale" 1 / (k var(w)) (1 when var is 0), "auto" 1 / k."""
    if gamma == "scale":
        variance = float(w.var(correction=0))
        return 1.0 / (w.shape[1] * variance) if variance != 0 else 1.0
    if gamma == "auto":
        return 1.0 / w.shape[1]
    return float(gamma)


def ocsvm_fit(w: torch.Tensor, kernel_name: str, nu: float, gamma: float | str, degree: int, coef0: float) -> dict:
    """w: (n, k) whitened training embeddings -> the state of scikit-learn's OneClassSVM fitted on them."""
    from sklearn.svm import OneClassSVM

    value = resolve_gamma(w, gamma)
    svm = OneClassSVM(kernel=kernel_name, nu=nu, gamma=value, degree=degree, coef0=coef0)
    svm.fit(w.detach().cpu().numpy())
    return {
        "support_vectors": torch.from_numpy(np.asarray(svm.support_vectors_, dtype=np.float64)),
        "dual_coef": torch.from_numpy(np.asarray(svm.dual_coef_, dtype=np.float64).reshape(-1)),
        "intercept": float(svm.intercept_[0]),
        "kernel": kernel_name,
        "gamma": value,
        "degree": int(degree),
        "coef0": float(coef0),
    }


def ocsvm_decision(w: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
    """w: (N, k) whitened embeddings -> (N,) the decision function f(w) (positive inside the normal region)."""
    sv, alpha = state["support_vectors"].to(w), state["dual_coef"].to(w)
    rows = _rows(len(sv))
    parts = [
        kernel(chunk, sv, state["kernel"], state["gamma"], state["degree"], state["coef0"]) @ alpha
        for chunk in w.split(rows)
    ]
    return torch.cat(parts) + state["intercept"]


def nearest(
    query: torch.Tensor, points: torch.Tensor, k: int, p: float, exclude_self: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """query: (M, k'), points: (N, k') -> distances and indices (M, k) of each query's k nearest points, nearest
    first, exact and in blocks; with exclude_self (query is points) a point is not its own neighbour."""
    rows = _rows(len(points))
    distances, indices = [], []
    for start in range(0, len(query), rows):
        block = _distances(query[start : start + rows], points, p)
        if exclude_self:
            own = torch.arange(start, start + len(block), device=block.device)
            block[torch.arange(len(block), device=block.device), own] = torch.inf
        d, i = block.topk(k, dim=1, largest=False, sorted=True)
        distances.append(d)
        indices.append(i)
    return torch.cat(distances), torch.cat(indices)


def _lrd(distances: torch.Tensor, indices: torch.Tensor, k_distance: torch.Tensor) -> torch.Tensor:
    """Local reachability density (M,) from each query's neighbour distances and indices (M, k)."""
    reach = torch.maximum(distances, k_distance[indices])
    return 1.0 / (reach.mean(dim=1) + 1e-10)


def lof_fit(w: torch.Tensor, n_neighbors: int, p: float) -> dict:
    """w: (n, k) whitened training embeddings -> the points, their k-distances and densities; n_neighbors is
    clipped to n - 1 as scikit-learn does (with a warning)."""
    n = len(w)
    used = max(1, min(n_neighbors, n - 1))
    if used < n_neighbors:
        warnings.warn(
            f"embedding-lof: n_neighbors={n_neighbors} but only {n} training images, so {used} neighbours are used "
            "(scikit-learn clips the same way).",
            stacklevel=2,
        )
    distances, indices = nearest(w, w, used, p, exclude_self=True)
    k_distance = distances[:, -1].contiguous()
    return {
        "points": w,
        "k_distance": k_distance,
        "lrd": _lrd(distances, indices, k_distance),
        "n_neighbors": used,
        "p": float(p),
    }


def lof(w: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
    """w: (N, k) whitened embeddings -> (N,) local outlier factor against the training points (about 1 for
    inliers, larger for outliers)."""
    points, k_distance, lrd = (state[key].to(w) for key in ("points", "k_distance", "lrd"))
    distances, indices = nearest(w, points, state["n_neighbors"], state["p"])
    return (lrd[indices] / _lrd(distances, indices, k_distance)[:, None]).mean(dim=1)
