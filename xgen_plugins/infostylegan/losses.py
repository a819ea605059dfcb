"""Eq. 3 of Paul et al. (../seeds/004): min_{G,Q} max_D V(D, G) - beta L_info(G, Q), as the losses each player
minimises, with the choices the paper leaves open as options."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from xgen_plugins.infostylegan.codes import Codes, Kind

GeneratorLoss = Literal["non-saturating", "minimax"]


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V(D, G) of eq. 4, which D minimises: -log D(x) - log(1 - D(x_hat)), averaged over the batch; logits (B,) of
    real images and of generated ones (D's sigmoid is applied here, inside the cross-entropy, for stability)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor, form: GeneratorLoss = "non-saturating") -> torch.Tensor:
    """The generator's side of V on the logits (B,) of its images.

    `minimax`: log(1 - D(x_hat)), eq. 1-4 as written (V's real term does not depend on G). `non-saturating`
    (default): -log D(x_hat), Goodfellow et al.'s form that StyleGAN and the official InfoGAN train with: early on,
    when D rejects the samples confidently, log(1 - D) is flat and G learns nothing, while -log D keeps a gradient.
    """
    if form == "non-saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def information_loss(
    codes: Codes, q: torch.Tensor, c: torch.Tensor, weights: dict[Kind, float] | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """-L_info of eq. 5, the batch mean of -(log Q(c|x_hat) - log p(c)) with each code kind weighted (default 1),
    for Q's output q (B, q_dim) on images generated from codes c (B, width). Returns it with the logged values:
    `info` (the unweighted L_info, the mutual-information lower bound of eq. 10, in nats) and `info_<kind>` each."""
    total, terms = codes.information(q, c, weights)
    logged = {f"info_{kind}": float(value.detach().mean()) for kind, value in terms.items()}
    logged["info"] = sum(logged.values(), 0.0)
    return -total.mean(), logged


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al.'s R1, E[||grad_x D(x)||^2] / 2 on real images x (B, C, H, W) that require grad, whose logits
    (B,) were computed from them (StyleGAN's regulariser, gamma = 10 there; not in the paper's loss)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return 0.5 * grad.square().flatten(1).sum(dim=1).mean()
