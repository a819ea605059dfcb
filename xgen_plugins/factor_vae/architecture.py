"""Architecture `factor-vae`: FactorVAE (Kim & Mnih 2018), beta-VAE with gamma=0, AD-FactorVAE with ad_weight > 0."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Literal

import torch
from torch import nn

import xgen
from xgen_plugins.factor_vae.attention import attention_maps, latent_gradcams, latent_gradcams_loop
from xgen_plugins.factor_vae.losses import (
    attention_disentanglement,
    bernoulli_reconstruction,
    discriminator_loss,
    gaussian_kl,
    permute_dims,
    total_correlation,
)
from xgen_plugins.factor_vae.networks import FactorVAEModule


class FactorVAEArchitecture(xgen.Architecture):
    """FactorVAE: L = E[-log p(x|z)] + beta KL(q(z|x) || p(z)) + gamma TC(z) (Kim & Mnih eq. 2, beta = 1), plus
    lambda L_AD, the attention disentanglement loss of Liu et al. (../seeds/000 eq. 1), when `ad_weight` > 0.

    One training step updates the VAE, then the discriminator:
    1. VAE (Adam `lr`, betas (0.9, 0.999)): Bernoulli reconstruction summed over pixels, closed-form KL, and gamma
       times the density-ratio TC estimate of the discriminator, whose weights are frozen for this step.
    2. Discriminator (Adam `d_lr`, betas (0.5, 0.9)): cross-entropy between the batch's codes and the same codes
       with each column shuffled across the batch (disentanglement_lib's single-batch form), on detached codes,
       so that neither update leaks into the other's weights.
    gamma = 0 with `beta` > 1 is the beta-VAE baseline (the discriminator still trains, so the TC estimate is
    logged). `gamma` defaults to 40, inside the {10, ..., 50} grid of ../seeds/000 Table 1.

    `xgen evaluate` without `--metric` adds `default_metrics` on data with factors (dsprites), two with presets that
    fit a 2-core CPU (docs/methods/disentanglement-metrics.md has the timings): `factorvae-score` with 2,000
    training and 1,000 evaluation votes instead of disentanglement_lib's 10,000 and 5,000 (202,000 images encoded
    instead of 970,000; the accuracy's binomial standard error is then at most 0.016, under the seed-to-seed spread
    of about 0.1), and Chen's `mig` on a seeded 10% subsample of the grid (73,728 of 737,280 images: q(z_j) is the
    mixture over the subsample, whose slightly dependent factors put a perfect model a little under 1) with each
    entropy averaged over 2,000 draws instead of Chen's 10,000 (the same expectation, more Monte Carlo noise). Name
    them with `--metric` for the reference protocols.

    With ad_weight = lambda > 0 (AD-FactorVAE): the Grad-CAM of every latent mean at `ad_layer` (default the first
    encoder conv, where the working public reproduction puts it; the reproduction report found the last conv
    detrimental) enters eq. 1 for the pairs `ad_pairs` picks (see `losses.attention_disentanglement`: `top2` by
    default), after the sign rule `ad_sign` and the per-map scale `ad_normalize` of `attention.attention_maps`
    (defaults `abs` and `max`: the raw ratio can be driven to 0 by shrinking one map, which moves nothing apart;
    in this implementation's first run, with ReLU maps and no scaling, the logged L_AD fell from 0.72 to 0.001
    within 30 steps). `ad_gradient="full"` keeps the Grad-CAM weights in the graph (create_graph), so L_AD trains
    the encoder through them and through the activations; `"activations"` holds the weights constant. In a ReLU
    encoder the Grad-CAM weights are piecewise constant in the attention layer's activations, so the two choices give
    the layers up to `ad_layer` the same gradient; they differ in the layers above it, which `"full"` alone trains
    through L_AD.
    `ad_jacobian="batched"` computes the D maps from one vmapped backward pass; `"loop"` from D passes, the same maps
    (on this project's 2-core CPU the loop is 10-20% faster, benchmarks/factorvae_step.py); `"auto"` (default) takes
    the loop on the CPU and the batched pass elsewhere, since one large pass is what a GPU runs well.
    """

    name = "factor-vae"
    description = "Kim & Mnih's FactorVAE (beta-VAE with gamma=0), and AD-FactorVAE with ad_weight > 0."
    default_explainer: ClassVar[str] = "vae-gradcam"
    default_scorer: ClassVar[str] = "recon-error"
    default_metrics: ClassVar[tuple[str, ...]] = (
        "factorvae-score:train_votes=2000,eval_votes=1000",
        "mig:images=73728,samples=2000",
        "mig-binned",
        "reconstruction-error",
        "total-correlation",
    )
    epochs: ClassVar[int] = 10
    batch_size: ClassVar[int] = 64

    latent: int = 10
    gamma: float = 40.0
    beta: float = 1.0
    lr: float = 1e-4
    d_lr: float = 1e-4
    ad_weight: float = 0.0
    ad_layer: str = "encoder.0"
    ad_pairs: Literal["top2", "consecutive", "all"] = "top2"
    ad_gradient: Literal["full", "activations"] = "full"
    ad_jacobian: Literal["auto", "batched", "loop"] = "auto"
    ad_sign: Literal["abs", "relu"] = "abs"
    ad_normalize: Literal["max", "sum", "none"] = "max"
    ad_eps: float = 1e-8

    def validate(self) -> None:
        if self.latent < 2:
            raise xgen.XgenError(
                f"factor-vae needs latent >= 2 (its codes are permuted per dimension), got {self.latent}."
            )
        if self.gamma < 0 or self.beta < 0 or self.ad_weight < 0:
            raise xgen.XgenError("factor-vae needs gamma, beta and ad_weight >= 0.")
        if self.lr <= 0 or self.d_lr <= 0 or self.ad_eps <= 0:
            raise xgen.XgenError("factor-vae needs lr, d_lr and ad_eps > 0.")

    def build(self, input_shape: tuple[int, int, int]) -> nn.Module:
        channels, height, width = input_shape
        if height % 16 or width % 16 or height < 16 or width < 16:
            raise xgen.XgenError(
                f"factor-vae needs image height and width divisible by 16 (four stride-2 convs), got {height}x{width}; "
                "resize the images (dSprites is 64x64)."
            )
        module = FactorVAEModule(channels, height, width, latent=self.latent)
        if self.ad_weight > 0:
            self._ad_module(module)
        return module

    def _ad_module(self, module: nn.Module) -> nn.Module:
        """The encoder conv that `ad_layer` names, or one sentence listing the ones it could name."""
        convs = [f"encoder.{i}" for i, m in enumerate(module.encoder) if isinstance(m, nn.Conv2d)]
        if self.ad_layer not in convs:
            raise xgen.XgenError(
                f"factor-vae has no encoder conv '{self.ad_layer}' for the attention disentanglement loss; set "
                f"ad_layer to one of {', '.join(convs)}."
            )
        return module.get_submodule(self.ad_layer)

    def configure_optimizers(self, module: nn.Module) -> list[torch.optim.Optimizer]:
        vae = [p for name, p in module.named_parameters() if not name.startswith("tc_discriminator.")]
        return [
            torch.optim.Adam(vae, lr=self.lr, betas=(0.9, 0.999)),
            torch.optim.Adam(module.tc_discriminator.parameters(), lr=self.d_lr, betas=(0.5, 0.9)),
        ]

    def vae_loss(self, module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """The VAE side of one step on x: (B, C, H, W) in [0, 1] -> (loss, logged terms, the sampled codes z)."""
        ad = self.ad_weight > 0
        capture = xgen.gradients.capture(self._ad_module(module), cut=False) if ad else contextlib.nullcontext([])
        with capture as seen:
            logits, mu, logvar, z = module(x)
        recon = bernoulli_reconstruction(logits, x)
        kl = gaussian_kl(mu, logvar)
        tc = total_correlation(module.tc_discriminator(z))
        loss = recon + self.beta * kl + self.gamma * tc
        logged = {"recon": float(recon.detach()), "kl": float(kl.detach()), "tc": float(tc.detach())}
        if ad:
            batched = self.ad_jacobian == "batched" or (self.ad_jacobian == "auto" and x.device.type != "cpu")
            gradcams = latent_gradcams if batched else latent_gradcams_loop
            cams = gradcams(mu, seen[0], self.ad_gradient)
            maps = attention_maps(cams, self.ad_sign, self.ad_normalize, self.ad_eps)
            l_ad = attention_disentanglement(maps, self.ad_pairs, self.ad_eps)
            loss = loss + self.ad_weight * l_ad
            logged["ad"] = float(l_ad.detach())
        return loss, logged, z

    def training_step(
        self, module: nn.Module, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, float]:
        vae_optimizer, d_optimizer = optimizers
        discriminator = module.tc_discriminator
        discriminator.requires_grad_(False)
        try:
            loss, logged, z = self.vae_loss(module, x)
            vae_optimizer.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            discriminator.requires_grad_(True)
        vae_optimizer.step()
        codes = z.detach()
        d_loss = discriminator_loss(discriminator(codes), discriminator(permute_dims(codes)))
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        return {"loss": float(loss.detach()), **logged, "d_loss": float(d_loss.detach())}

    def wrap_arguments(self, module: nn.Module) -> dict[str, Any]:
        """vae-gradcam's layer (the last encoder conv) and the N(0, I) prior, so the model can `generate`."""
        return {"layer": "encoder.6", "prior": xgen.StandardNormal(self.latent)}
