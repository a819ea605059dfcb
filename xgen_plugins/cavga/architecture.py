"""Architecture `cavga`: Venkataramanan et al.'s convolutional adversarial VAE with guided attention (ECCV 2020),
unsupervised (CAVGA_u, eq. 4) and weakly supervised (CAVGA_w, eq. 6), trained by alternating discriminator and
generator updates."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

import xgen
from xgen_plugins.cavga import attention, losses
from xgen_plugins.cavga.augment import random_rotation
from xgen_plugins.cavga.networks import CAVGANet, build_network
from xgen_plugins.cavga.weights import initialise_backbone


def borrow_anomalies(test: xgen.ImageSet, fraction: float, seed: int) -> xgen.ImageSet:
    """A seeded `fraction` of the anomalous images of a test split (at least one), in test order."""
    if test.labels is None or not bool((test.labels == 1).any()):
        raise xgen.XgenError(
            "cavga weak=true trains on a few anomalous test images, but this dataset's test split has no anomalous "
            "images; choose labelled data such as textures:brick or digits."
        )
    anomalous = (test.labels == 1).nonzero().flatten()
    count = max(1, round(fraction * len(anomalous)))
    order = torch.randperm(len(anomalous), generator=torch.Generator().manual_seed(seed))
    return test.subset(anomalous[order[:count]].sort().values)


class CAVGAArchitecture(xgen.Architecture):
    """CAVGA: a VAE whose latent z keeps the encoder's spatial grid (1x1 convs give its mean and log-variance), a
    decoder, and a DC-GAN discriminator that sees images against their reconstructions (supplement Tables 9-10).

    Unsupervised (eq. 4): L = w_r (L_R + KL) + w_adv L_adv + w_ae L_ae, weights 1, 1, 0.01, where L_ae (eq. 3) is
    the mean of 1 - A and A the normalised Grad-CAM of z at the encoder's last feature map (`attention.py`).
    Weakly supervised (`weak=true`, eq. 6): a classifier C on the flattened z, and L = w_r (L_R + KL) + w_adv L_adv
    + w_c L_bce + w_cga L_cga, weights 1, 1, 0.001, 0.01; L_cga (eq. 5) expands the normal class's attention and
    suppresses the anomalous class's on normal images that C gets right. The training set is the normal training
    split plus a seeded `anomalous_fraction` of the test anomalies (`xgen evaluate` leaves those out).
    `attention_loss=false` drops L_ae (or L_cga) for the ablation of Table 8; `latent=flat` flattens z to a
    `flat_size`-d vector through linear layers (CAVGA-R*).

    Each training step: rotate the batch (+-`rotation` degrees); encode, sample z, decode; one Adam step of the
    discriminator on eq. 2 (real x, fake x_hat, detached); then one Adam step of everything else on the loss
    above, whose adversarial term reads the updated discriminator (`generator_loss`). The learning rates are
    multiplied by `lr_gamma` every `lr_step` epochs.

    Where the paper is silent (see docs/methods/cavga.md): which score Grad-CAM back-propagates
    (`attention_score`), how A is brought to [0, 1] (`attention_norm`), the loss reductions (`reduction`), the
    generator's adversarial loss (`generator_loss`), whether L_bce balances its two classes (`balance_classes`, off
    as in the paper), and the classifier reads the latent mean, not the sample.

    Defaults for a CPU: base width 32 instead of 64 (`width`), 10 epochs and at least 600 steps of batch 16 instead
    of 150 epochs; `backbone_weights` is read when training starts, never when a checkpoint is loaded.
    """

    name = "cavga"
    description = (
        "CAVGA: convolutional-latent adversarial VAE whose Grad-CAM attention is trained to cover normal images."
    )
    default_explainer: ClassVar[str] = "cavga"
    default_scorer: ClassVar[str] = "cavga"
    epochs: ClassVar[int] = 10
    min_steps: ClassVar[int] = 600
    batch_size: ClassVar[int] = 16

    backbone: Literal["dcgan", "resnet18"] = "dcgan"
    backbone_weights: str = ""
    latent: Literal["conv", "flat"] = "conv"
    flat_size: int = 100
    width: int = 32
    grid: int = 8
    attention_loss: bool = True
    attention_score: attention.Score = "sum"
    attention_norm: attention.Norm = "max"
    weak: bool = False
    anomalous_fraction: float = 0.02
    anomalous_seed: int = 0
    balance_classes: bool = False
    w_r: float = 1.0
    w_adv: float = 1.0
    w_ae: float = 0.01
    w_c: float = 0.001
    w_cga: float = 0.01
    reduction: losses.Reduction = "mean"
    generator_loss: losses.GeneratorLoss = "non-saturating"
    lr: float = 1e-4
    lr_step: int = 30
    lr_gamma: float = 0.1
    rotation: float = 15.0

    def validate(self) -> None:
        if self.width < 1 or self.grid < 1 or self.flat_size < 1:
            raise xgen.XgenError("cavga needs width >= 1, grid >= 1 and flat_size >= 1.")
        if not 0 < self.anomalous_fraction <= 1:
            raise xgen.XgenError(f"cavga anomalous_fraction must be in (0, 1], got {self.anomalous_fraction}.")
        weights = {k: getattr(self, k) for k in ("w_r", "w_adv", "w_ae", "w_c", "w_cga")}
        negative = [k for k, v in weights.items() if v < 0]
        if negative:
            raise xgen.XgenError(f"cavga loss weights must be >= 0, got {negative[0]}={weights[negative[0]]}.")
        if self.lr <= 0 or self.lr_step < 1 or not 0 < self.lr_gamma <= 1:
            raise xgen.XgenError("cavga needs lr > 0, lr_step >= 1 (epochs) and lr_gamma in (0, 1].")
        if not 0 <= self.rotation <= 180:
            raise xgen.XgenError(f"cavga rotation must be between 0 and 180 degrees, got {self.rotation}.")
        if self.backbone_weights and self.backbone != "resnet18":
            raise xgen.XgenError(
                "cavga backbone_weights loads ImageNet weights into the resnet18 backbone; add backbone=resnet18 or "
                "drop backbone_weights."
            )

    def build(self, input_shape: tuple[int, int, int]) -> nn.Module:
        return build_network(
            input_shape,
            backbone=self.backbone,
            latent=self.latent,
            width=self.width,
            grid=self.grid,
            flat_size=self.flat_size,
            weak=self.weak,
        )

    def training_set(self, dataset: xgen.Dataset) -> tuple[xgen.ImageSet, list[str]]:
        """Unsupervised: the training split. Weak: the training split (labels 0) and a seeded `anomalous_fraction`
        of the test split's anomalies (labels 1, at least one), whose names are returned so evaluation skips them."""
        train = dataset.train()
        if not self.weak:
            return train, []
        borrowed = borrow_anomalies(dataset.test(), self.anomalous_fraction, self.anomalous_seed)
        images = torch.cat([train.images, borrowed.images])
        labels = torch.cat([torch.zeros(len(train), dtype=torch.long), torch.ones(len(borrowed), dtype=torch.long)])
        names = [*train.names, *(f"test:{name}" for name in borrowed.names)]
        return xgen.ImageSet(images, labels=labels, names=names), list(borrowed.names)

    def configure_optimizers(self, module: nn.Module) -> list[torch.optim.Optimizer]:
        """[generator (encoder, latent heads, decoder, classifier), discriminator], Adam at `lr` each. Called once
        when training starts, so it is also where the resnet18 backbone gets its ImageNet weights (or the notice
        that it has none): `build` must not read files, since it also rebuilds checkpoints."""
        assert isinstance(module, CAVGANet)
        if self.backbone == "resnet18":
            initialise_backbone(module.encoder, self.backbone_weights)
        return [
            torch.optim.Adam(module.generator_parameters(), lr=self.lr),
            torch.optim.Adam(module.discriminator.parameters(), lr=self.lr),
        ]

    def end_epoch(self, epoch: int, optimizers: list[torch.optim.Optimizer]) -> None:
        if epoch % self.lr_step == 0:
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] *= self.lr_gamma

    def discriminator_step(
        self, module: CAVGANet, x: torch.Tensor, recon: torch.Tensor, optimizer: torch.optim.Optimizer
    ) -> float:
        """One update of the discriminator on eq. 2: x (B, C, H, W) real, recon fake (detached here)."""
        optimizer.zero_grad(set_to_none=True)
        loss = losses.discriminator_loss(module.discriminator(x), module.discriminator(recon.detach()))
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def generator_loss_terms(
        self, module: CAVGANet, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The reconstruction (B, C, H, W) of x and the terms of eq. 4 (or eq. 6 with `weak`), unweighted, except
        the adversarial one, which needs the discriminator and is added by `generator_step`."""
        features = module.encoder(x)
        mu, logvar = module.latent(features)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = module.decode(z)
        rec, kl = losses.vae_loss(recon, x, mu, logvar, self.reduction)
        terms = {"rec": rec, "kl": kl}
        if self.weak:
            if labels is None:
                raise xgen.XgenError("cavga weak=true needs labels in training; train it with xgen.train.")
            logits = module.classify_latent(mu)
            terms["bce"] = losses.classifier_loss(logits, labels, self.balance_classes)
            if self.attention_loss:
                maps = attention.class_attention(features, logits, self.attention_norm, create_graph=True)
                terms["cga"] = attention.complementary_guided_attention_loss(maps, logits, labels)
        elif self.attention_loss:
            maps = attention.latent_attention(
                features, mu, self.attention_score, self.attention_norm, create_graph=True
            )
            terms["ae"] = attention.attention_expansion_loss(maps)
        return recon, terms

    def generator_step(
        self,
        module: CAVGANet,
        recon: torch.Tensor,
        terms: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
    ) -> dict[str, float]:
        """One update of everything but the discriminator on the weighted sum of `terms` and the adversarial loss of
        recon (B, C, H, W) under the current discriminator."""
        terms = {**terms, "adv": losses.generator_loss(module.discriminator(recon), self.generator_loss)}
        weights = dict(rec=self.w_r, kl=self.w_r, adv=self.w_adv, ae=self.w_ae, bce=self.w_c, cga=self.w_cga)
        total = sum(weights[key] * value for key, value in terms.items())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return {"loss": float(total.detach()), **{key: float(value.detach()) for key, value in terms.items()}}

    def training_step(
        self,
        module: nn.Module,
        x: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        labels: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """x: (B, C, H, W) in [0, 1]; labels: (B,) 1 = anomalous (weak only). Logs the generator's weighted total
        `loss`, each term, and the discriminator's loss `d`."""
        assert isinstance(module, CAVGANet)
        generator_optimizer, discriminator_optimizer = optimizers
        x = random_rotation(x, self.rotation)
        recon, terms = self.generator_loss_terms(module, x, labels)
        d = self.discriminator_step(module, x, recon, discriminator_optimizer)
        return {**self.generator_step(module, recon, terms, generator_optimizer), "d": d}

    def wrap_arguments(self, module: nn.Module) -> dict[str, Any]:
        """The attention layer (the encoder's last feature map), the discriminator and, weak, the classifier."""
        assert isinstance(module, CAVGANet)
        heads: dict[str, Any] = {"layer": "encoder", "discriminator": module.discriminate}
        if module.classifier is not None:
            heads["classifier"] = module.class_logits
        return heads
