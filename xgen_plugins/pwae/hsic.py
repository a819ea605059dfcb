"""The HSIC bottleneck of P-WAE (section 3.D): the normalised Hilbert-Schmidt independence criterion of eq. 14 with
Gaussian kernels, and the objective of eq. 15."""

from __future__ import annotations

import torch


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """x: (m, d) -> (m, m) ||x_i - x_j||^2 through the Gram matrix (one matmul; faster than cdist for wide rows)."""
    squares = x.square().sum(dim=1)
    return (squares[:, None] + squares[None, :] - 2 * x @ x.T).clamp_min(0.0)


def median_bandwidth(x: torch.Tensor) -> torch.Tensor:
    """x: (m, d) -> the median pairwise distance (a constant, not differentiated): the kernel width when none is
    given, so one setting fits images and codes of any dimension."""
    with torch.no_grad():
        distances = squared_distances(x).sqrt()
        off = distances[~torch.eye(len(x), dtype=torch.bool, device=x.device)]
        return off.median().clamp_min(1e-6) if off.numel() else torch.ones((), device=x.device)


def gaussian_kernel(x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    """x: (m, d) -> (m, m) K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)); sigma <= 0 takes `median_bandwidth`."""
    width = median_bandwidth(x) if sigma <= 0 else torch.tensor(sigma, device=x.device)
    return torch.exp(-squared_distances(x) / (2 * width.square()))


def normalized_kernel(x: torch.Tensor, sigma: float = 0.0, eps: float = 1e-2) -> torch.Tensor:
    """x: (m, d) -> (m, m) K~ = K_bar (K_bar + eps m I)^-1 with K_bar = H K H the centred Gaussian kernel (eq. 14)."""
    m = x.shape[0]
    h = torch.eye(m, device=x.device, dtype=x.dtype) - 1.0 / m
    centred = h @ gaussian_kernel(x, sigma) @ h
    regulariser = eps * m * torch.eye(m, device=x.device, dtype=x.dtype)
    return torch.linalg.solve(centred + regulariser, centred, left=False)


def nhsic(
    x: torch.Tensor, z: torch.Tensor, sigma_x: float = 0.0, sigma_z: float = 0.0, eps: float = 1e-2
) -> torch.Tensor:
    """x: (m, d_x), z: (m, d_z), row i of each from the same sample -> the scalar nHSIC(X, Z) = tr(K~_X K~_Z)
    (eq. 14): near 0 for independent samples, up to the kernel's effective rank for identical ones."""
    return (normalized_kernel(x.flatten(1), sigma_x, eps) * normalized_kernel(z.flatten(1), sigma_z, eps).T).sum()


def hsic_bottleneck(
    x: torch.Tensor, z: torch.Tensor, prior: torch.Tensor, beta: float, sigma: float = 0.0, eps: float = 1e-2
) -> torch.Tensor:
    """x: (m, ...) images, z: (m, ...) codes, prior: (m, ...) prior samples -> L_HSIC = nHSIC(Z', Z) - beta
    nHSIC(X, Z) (eq. 15): the codes kept dependent on the input while (as the paper writes it) independent of
    the prior draws."""
    return nhsic(prior, z, sigma, sigma, eps) - beta * nhsic(x, z, 0.0, sigma, eps)
