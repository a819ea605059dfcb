"""The per-tile priors of P-WAE and the distances that pull the tile codes toward them: Student-t samples (eq. 11,
T(nu=5, mu=k, sigma=1) for tile k) and the sliced-Wasserstein distance (eq. 16-18); the Gaussian prior with its
closed-form KL divergence is the ablation the paper argues against."""

from __future__ import annotations

import torch


def tile_locations(tiles: int, device: torch.device | None = None) -> torch.Tensor:
    """(K,) the prior location of each tile: k = 1..K for tiles x^1..x^K (the paper's T(5, k, 1))."""
    return torch.arange(1, tiles + 1, dtype=torch.float32, device=device)


def student_t_samples(shape: tuple[int, int, int], nu: float, scale: float, device: torch.device) -> torch.Tensor:
    """(B, K, D) samples where tile k's D coordinates are i.i.d. Student-t(nu, mu=k, sigma=scale) (eq. 11)."""
    batch, tiles, dims = shape
    t = torch.distributions.StudentT(torch.tensor(float(nu), device=device)).sample((batch, tiles, dims))
    return tile_locations(tiles, device)[None, :, None] + scale * t


def gaussian_samples(shape: tuple[int, int, int], scale: float, device: torch.device) -> torch.Tensor:
    """(B, K, D) samples of the Gaussian ablation N(k, scale^2) per tile."""
    batch, tiles, dims = shape
    return tile_locations(tiles, device)[None, :, None] + scale * torch.randn(batch, tiles, dims, device=device)


def sliced_wasserstein(codes: torch.Tensor, prior: torch.Tensor, projections: int, p: int = 2) -> torch.Tensor:
    """codes, prior: (B, K, D) -> (K,) each tile's sliced-Wasserstein distance (eq. 18): the mean over
    `projections` random directions on the unit sphere (drawn per tile, Theta^k) of the 1-D Wasserstein-p distance
    to the p-th power between the projected batches, which sorting computes exactly (SWAE's estimator; eq. 17's
    outer 1/p power is left out, as in eq. 18)."""
    tiles, dims = codes.shape[1], codes.shape[2]
    theta = torch.randn(tiles, dims, projections, device=codes.device, dtype=codes.dtype)
    theta = theta / theta.norm(dim=1, keepdim=True)
    a = torch.einsum("bkd,kdl->bkl", codes, theta).sort(dim=0).values
    b = torch.einsum("bkd,kdl->bkl", prior, theta).sort(dim=0).values
    return (a - b).abs().pow(p).mean(dim=(0, 2))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """mu, logvar: (B, K, D) -> (K,) KL(N(mu, exp(logvar)) || N(k, scale^2)) summed over D, averaged over B."""
    loc = tile_locations(mu.shape[1], mu.device)[None, :, None]
    var = scale**2
    kl = 0.5 * ((logvar.exp() + (mu - loc).square()) / var - 1 - logvar + torch.log(torch.tensor(var)))
    return kl.sum(dim=2).mean(dim=0)
