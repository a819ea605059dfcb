"""CAVGA's VAE and adversarial losses (eq. 1-2) and the classifier loss L_bce of the weakly supervised variant."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["mean", "sum"]
GeneratorLoss = Literal["non-saturating", "minimax"]


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, reduction: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1: (L_R, KL) for x and its reconstruction recon: (N, C, H, W) in [0, 1], and z's mean and log-variance.

    L_R is the binary cross-entropy and KL the divergence of N(mu, exp(logvar)) from N(0, I). `mean`: both are
    means, over pixels and over latent elements (torch's BCELoss default; eq. 1's 1/N averages over images and
    leaves the pixels implicit). `sum`: both summed over each image's pixels and latent elements and averaged over
    the images (the ELBO). The loss weights 1, 1, 0.01 of eq. 4 only make sense with means: a summed BCE over 4,096
    pixels would drown an L_ae bounded by 1 at weight 0.01.
    """
    bce = F.binary_cross_entropy(recon, x, reduction="none").flatten(1)
    kl = (-0.5 * (1 + logvar - mu.square() - logvar.exp())).flatten(1)
    if reduction == "mean":
        return bce.mean(), kl.mean()
    return bce.sum(dim=1).mean(), kl.sum(dim=1).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 2, the discriminator's side: L_adv = -log D(x) - log(1 - D(x_hat)), with D's sigmoid applied here, averaged
    over images and over the entries of D's patch map. Real: the training images; fake: their reconstructions
    (VAE-GAN style: D never sees samples decoded from the prior)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor, form: str) -> torch.Tensor:
    """The generator's side of eq. 2 on D's logits of the reconstructions.

    `non-saturating` (default): -log D(x_hat), Goodfellow et al.'s form, which keeps gradients when D wins early.
    `minimax`: log(1 - D(x_hat)), eq. 2's fake term with the sign the generator minimises. The real term of eq. 2
    does not depend on the generator, so it is left out."""
    if form == "non-saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor, balance: bool) -> torch.Tensor:
    """L_bce (section 3.2): cross-entropy of the 2-way softmax of logits (N, 2) with labels (N,) 1 = anomalous, the
    binary cross-entropy of Table 10's Linear(2) + Softmax classifier. Plain (`balance=False`): the mean over the
    images, as the paper writes it. `balance=True`: the mean of the two classes' mean losses over the classes present
    in the batch, so that the one anomaly in a batch of 16 weighs as much as the 15 normal images."""
    losses = F.cross_entropy(logits, labels.long(), reduction="none")
    if not balance:
        return losses.mean()
    present = [losses[labels == k].mean() for k in (0, 1) if bool((labels == k).any())]
    return torch.stack(present).mean()
