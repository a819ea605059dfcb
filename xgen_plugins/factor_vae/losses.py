"""FactorVAE's objective (Kim & Mnih 2018, eq. 2-3) and Liu et al.'s attention disentanglement loss (eq. 1 of
../seeds/000, section 3.3), with each choice the papers leave open as an option."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Pairs = Literal["top2", "consecutive", "all"]


def bernoulli_reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) of a Bernoulli decoder: BCE of logits (N, C, H, W) against x in [0, 1], summed over each image's
    pixels and averaged over the images (as disentanglement_lib's `bernoulli_loss`)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form: mu, logvar (N, D) -> summed over D, averaged over N."""
    return (-0.5 * (1 + logvar - mu.square() - logvar.exp())).sum(dim=1).mean()


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Kim & Mnih's Algorithm 1: z (N, D) with each column shuffled across the batch by its own permutation, i.e.
    samples of the product of q(z)'s marginals. Every column keeps its values; rows are mixed between images."""
    keys = torch.rand(z.shape, generator=generator, device=z.device)
    return z.gather(0, keys.argsort(dim=0))


def total_correlation(logits: torch.Tensor) -> torch.Tensor:
    """The density-ratio estimate of TC(z) = KL(q(z) || prod_j q(z_j)) (eq. 3): the mean over the batch of
    log D(z) / (1 - D(z)) = logit_q - logit_perm, logits (N, 2) of the discriminator on z drawn from q(z)."""
    return (logits[:, 0] - logits[:, 1]).mean()


def discriminator_loss(real: torch.Tensor, permuted: torch.Tensor) -> torch.Tensor:
    """The discriminator's cross-entropy: 0.5 [CE(D(z), class 0) + CE(D(permute_dims(z)), class 1)], logits (N, 2)
    each. The codes must be detached, so that this loss trains the discriminator only."""
    zeros = torch.zeros(real.shape[0], dtype=torch.long, device=real.device)
    ones = torch.ones(permuted.shape[0], dtype=torch.long, device=permuted.device)
    return 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(permuted, ones))


def map_overlap(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 1 per pair of maps: 2 sum_ij min(A1_ij, A2_ij) / (sum_ij (A1_ij + A2_ij) + eps), for non-negative maps
    a, b: (..., h, w) -> (...). 1 for two identical maps, 0 for maps with disjoint support; `eps` keeps two empty
    maps at 0 rather than NaN."""
    shared = torch.minimum(a, b).flatten(-2).sum(dim=-1)
    total = (a + b).flatten(-2).sum(dim=-1)
    return 2 * shared / (total + eps)


def top2_dims(maps: torch.Tensor) -> torch.Tensor:
    """maps: (N, D, h, w) >= 0 -> (N, 2) long: each image's two dimensions whose maps respond most (largest sum),
    largest first. The pair eq. 1's `top2` rule compares; picking it passes no gradient."""
    return maps.detach().flatten(2).sum(dim=2).topk(2, dim=1).indices


def top2_pair(maps: torch.Tensor) -> torch.Tensor:
    """maps: (N, D, h, w) -> (N, 2, h, w): the maps of `top2_dims`, differentiable as the maps are."""
    top = top2_dims(maps)
    return maps.gather(1, top[:, :, None, None].expand(-1, 2, *maps.shape[2:]))


def attention_disentanglement(
    maps: torch.Tensor, pairs: Pairs = "top2", eps: float = 1e-8, reduction: Literal["mean", "none"] = "mean"
) -> torch.Tensor:
    """L_AD (eq. 1): the overlap of per-latent-dimension attention maps (N, D, h, w), non-negative, averaged over the
    batch (`reduction="none"`: one value per image, (N,)).

    The paper does not say which two maps A1 and A2 are; each rule is an option, ratios are per image, then
    averaged over the batch:
    - `top2` (default): the two dimensions whose maps respond most (largest sum) in each image, the pair the
      paper's Figure 4 shows. It is the only rule that neither depends on the arbitrary order of the latent
      dimensions nor spends the loss on collapsed dimensions, whose maps are near zero everywhere.
    - `consecutive`: the mean over the pairs (0, 1), (1, 2), ..., (D-2, D-1), the reproduction report's rule
      (../seeds/000, section 3.3).
    - `all`: the mean over every pair i < j.
    """
    d = maps.shape[1]
    if d < 2:
        raise ValueError(f"attention_disentanglement needs at least 2 latent dimensions, got {d}.")
    if pairs == "top2":
        picked = top2_pair(maps)
        per_image = map_overlap(picked[:, 0], picked[:, 1], eps)
    elif pairs == "consecutive":
        per_image = map_overlap(maps[:, :-1], maps[:, 1:], eps).mean(dim=1)
    elif pairs == "all":
        i, j = torch.triu_indices(d, d, offset=1, device=maps.device)
        per_image = map_overlap(maps[:, i], maps[:, j], eps).mean(dim=1)
    else:
        raise ValueError(f"unknown pairs rule '{pairs}'; use top2, consecutive or all.")
    return per_image if reduction == "none" else per_image.mean()
