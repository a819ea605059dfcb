"""CAVGA's attention: the differentiable Grad-CAM of the latent z, its normalisation to [0, 1], and the two losses
that train it, the attention expansion loss L_ae (eq. 3) and the complementary guided attention loss L_cga (eq. 5).

Grad-CAM (Selvaraju et al.) of a per-image score s at a feature map F: (N, C, h, w) is
cam = ReLU(sum_k alpha_k F_k) with alpha_k = mean over (h, w) of ds / dF_k. The training losses compute it with
`create_graph=True`, so their gradients reach the encoder through F and through alpha.
"""

from __future__ import annotations

from typing import Literal

import torch

Score = Literal["sum", "square"]
Norm = Literal["max", "minmax", "clip"]
SCORES: tuple[str, ...] = ("sum", "square")
NORMS: tuple[str, ...] = ("max", "minmax", "clip")
EPS = 1e-12
FLAT_RTOL = 1e-5


def latent_score(mu: torch.Tensor, how: str) -> torch.Tensor:
    """The score back-propagated "from z" (section 3.1), per image: mu (N, ...) -> (N,).

    `sum`: s = sum of every element of the latent mean, the latent-sum score of Liu et al. (the paper's ADVAE
    baseline [32]) and of the public CAVGA re-implementation; the default. `square`: s = 1/2 sum mu^2, the energy
    of z, whose gradient does not depend on the sign convention of each latent channel. The mean is used rather
    than the reparameterised sample: it is z at test time, and its attention carries no sampling noise.
    """
    flat = mu.flatten(1)
    return flat.sum(dim=1) if how == "sum" else 0.5 * flat.square().sum(dim=1)


def channel_weights(features: torch.Tensor, score: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
    """alpha: (N, C) = mean over (h, w) of d score / d features, for score (N,) computed from features (N, C, h, w).

    One backward pass of the summed score: each image's score depends on its own features only."""
    (gradients,) = torch.autograd.grad(score.sum(), features, create_graph=create_graph, retain_graph=True)
    return gradients.mean(dim=(2, 3))


def grad_cam(features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k alpha_k F_k) of features (N, C, h, w): (N, h, w) for alpha (N, C); (N, K, h, w) for (N, K, C)."""
    if alpha.dim() == 2:
        return torch.einsum("nc,nchw->nhw", alpha, features).clamp_min(0.0)
    return torch.einsum("nkc,nchw->nkhw", alpha, features).clamp_min(0.0)


def normalize(cam: torch.Tensor, how: str) -> torch.Tensor:
    """Bring Grad-CAMs (..., h, w) >= 0 to A in [0, 1], per map; differentiable.

    `max`: A = cam / max(cam), the default. The paper only says that A is a Grad-CAM with A_ij in [0, 1]; dividing by
    the maximum is the smallest step there from a Grad-CAM (already >= 0 after its ReLU), the one the public
    re-implementation takes (there over the whole batch, here per image), and the only one of the two under which
    L_ae's optimum, attention covering the whole image, is reachable: a uniform map gives A = 1 everywhere.
    `minmax`: A = (cam - min) / (max - min), the usual display convention; it always leaves a pixel at 0.
    A map that is all 0 gives A = 0 (no attention); with `minmax` a uniform positive map gives A = 1.
    """
    flat = cam.flatten(-2)
    high = flat.amax(dim=-1, keepdim=True)
    dead = high <= EPS
    if how == "clip":
        out = flat.clamp_max(1.0)
    elif how == "max":
        out = torch.where(dead, torch.zeros_like(flat), flat / high.clamp_min(EPS))
    else:
        low = flat.amin(dim=-1, keepdim=True)
        span = high - low
        uniform = span <= FLAT_RTOL * high
        scaled = (flat - low) / span.clamp_min(EPS)
        out = torch.where(dead, torch.zeros_like(flat), torch.where(uniform, torch.ones_like(flat), scaled))
    return out.view_as(cam)


def latent_attention(
    features: torch.Tensor, mu: torch.Tensor, score: str, norm: str, *, create_graph: bool
) -> torch.Tensor:
    """A: (N, h, w) in [0, 1], the normalised Grad-CAM of `latent_score(mu)` at features (N, C, h, w)."""
    alpha = channel_weights(features, latent_score(mu, score), create_graph=create_graph)
    return normalize(grad_cam(features, alpha), norm)


def class_attention(features: torch.Tensor, logits: torch.Tensor, norm: str, *, create_graph: bool) -> torch.Tensor:
    """(A_cn, A_ca): (N, 2, h, w) in [0, 1], the normalised Grad-CAMs of the normal and anomalous logits (N, 2)."""
    alpha = torch.stack(
        [channel_weights(features, logits[:, k], create_graph=create_graph) for k in range(logits.shape[1])], dim=1
    )
    return normalize(grad_cam(features, alpha), norm)


def attention_expansion_loss(attention: torch.Tensor) -> torch.Tensor:
    """L_ae (eq. 3): the mean over images of L_ae,1 = (1 / |A|) sum_ij (1 - A_ij); attention A: (N, h, w)."""
    return (1.0 - attention).mean()


def complementary_guided_attention_loss(
    attention: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """L_cga (eq. 5), averaged over the N images: 1(p = y = c_n) (1 / |A|) sum_ij (1 - A_cn,ij + A_ca,ij).

    attention: (N, 2, h, w) the normal and anomalous attention maps; logits: (N, 2) the classifier's; labels: (N,)
    1 = anomalous. Only normal images that the classifier predicts as normal contribute; the others count as 0."""
    predicted = logits.detach().argmax(dim=1)
    counted = ((predicted == 0) & (labels == 0)).to(attention.dtype)
    per_image = (1.0 - attention[:, 0] + attention[:, 1]).flatten(1).mean(dim=1)
    return (counted * per_image).mean()
