"""Architecture `conv-vae`: Liu et al.'s MNIST VAE, trained with BCE(sum) + KL and Adam 1e-3."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

import xgen
from xgen_plugins.conv_vae.module import ConvVAE


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Negative ELBO summed over the batch: BCE(recon, x, sum) + KL(N(mu, exp(logvar)) || N(0, I))."""
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl


class ConvVAEArchitecture(xgen.Architecture):
    """Liu et al. (2020) MNIST VAE: conv 64 s2, conv 128 s2, FC 1024, latent 32, mirrored decoder, sigmoid.

    Training defaults: batch 32 and at least 400 steps (10 epochs, more on small sets). The reference code's batch
    of 128 suits MNIST's 60,000 images; xgen's one-class sets hold 70-1,000, where 128 gives one step per epoch and
    its 30 epochs leave a decoder that outputs the mean image (recon-error image AUROC 0.16 on digits:normal=1)."""

    name = "conv-vae"
    description = "Liu et al.'s convolutional VAE (conv 64, conv 128, FC 1024, latent 32); BCE + KL, Adam."
    default_explainer: ClassVar[str] = "vae-gradcam"
    default_scorer: ClassVar[str] = "recon-error"
    epochs: ClassVar[int] = 10
    min_steps: ClassVar[int] = 400
    batch_size: ClassVar[int] = 32

    latent: int = 32
    hidden: int = 1024
    lr: float = 1e-3

    def validate(self) -> None:
        if self.latent < 1 or self.hidden < 1 or self.lr <= 0:
            raise xgen.XgenError("conv-vae needs latent >= 1, hidden >= 1 and lr > 0.")

    def build(self, input_shape: tuple[int, int, int]) -> nn.Module:
        channels, height, width = input_shape
        if height % 4 or width % 4 or height < 4 or width < 4:
            raise xgen.XgenError(
                f"conv-vae needs image height and width divisible by 4, got {height}x{width}; resize the images."
            )
        return ConvVAE(channels, height, width, latent=self.latent, hidden=self.hidden)

    def wrap_arguments(self, module: nn.Module) -> dict[str, Any]:
        """The attention layer of the reference code and the ELBO's N(0, I) prior, so the model can `generate`."""
        return {"layer": "encoder.2", "prior": xgen.StandardNormal(self.latent)}

    def training_step(
        self, module: nn.Module, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, float]:
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        recon, mu, logvar = module(x)
        loss = vae_loss(recon, x, mu, logvar)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach()) / x.shape[0]}


@xgen.hookimpl
def xgen_register_models(register):
    register(ConvVAEArchitecture)
