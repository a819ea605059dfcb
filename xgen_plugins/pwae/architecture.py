"""Architecture `pwae`: Zhang et al.'s patch-wise Wasserstein autoencoder (P-WAE): tiles shuffled by a permutation
the network must recognise, a siamese tile encoder whose codes are pulled toward per-tile Student-t priors by the
sliced-Wasserstein distance, an HSIC bottleneck, and a decoder of the unshuffled image (eq. 11, 14-15, 18-20)."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

import xgen
from xgen_plugins.pwae import backbones, errors, hsic, priors, tiles
from xgen_plugins.pwae.networks import PWAENet

Prior = Literal["student-t-swd", "gaussian-kl"]
Backbone = Literal["small", "resnet18", "resnet50"]


class PWAEArchitecture(xgen.Architecture):
    """P-WAE (Zhang et al.). Each training step on a batch x (B, C, H, W):

    1. fit x to the training size and pad it to a multiple of `n`; cut it into n x n tiles;
    2. jigsaw: draw a permutation index S_i per image from the saved set of `permutations` (maximal minimum
       Hamming distance, seeded by `permutation_seed`, the identity first) and shuffle the tiles by it;
    3. encode all B n^2 tiles as one batch with the shared (siamese) encoder: codes z^k (D = `code`);
    4. L_jigsaw (eq. 19): cross-entropy of a linear head over the codes concatenated in shuffled order;
    5. put the codes back in place and decode the whole image: L_AE = mean squared error (eq. 20);
    6. L_SWD (eq. 18): sum over tiles of the sliced-Wasserstein distance (`projections` directions) between tile
       k's codes and samples of its prior Student-t(`nu`=5, mu=k, sigma=`prior_scale`=1) (eq. 11);
    7. L_HSIC (eq. 15) = nHSIC(Z', Z) - `beta` nHSIC(X, Z), Gaussian kernels, eq. 14's normalisation;
    8. L = L_AE + `w_hsic` L_HSIC + `w_prior` L_SWD + `w_jigsaw` L_jigsaw (eq. 20; 0.01, 0.1, 1), one SGD step
       (lr 0.01, momentum 0.9) at lr = lr0 / (1 + `lr_a` p)^`lr_b`, p the fraction of training steps done.

    Ablations: `hsic=false`, `jigsaw=false` (no shuffling, no head loss), `prior=gaussian-kl` (the encoder gives
    a mean and log-variance, the code is a reparameterised sample, and the KL divergence to N(k, 1) replaces SWD).
    After the last epoch the whole-image and per-tile error statistics of eq. 21-23 are computed over the training
    images with the final weights and saved in the checkpoint (`errors.calibrate`).

    Deviations, each documented in docs/methods/pwae.md: a small conv encoder by default (`backbone=resnet50` is
    the paper's; ImageNet weights only from `backbone_weights`), 100 permutations instead of 1,000, the decoder
    reads the codes directly (the paper's "flow-based warp" is not specified), and the AE loss is a mean.
    """

    name = "pwae"
    description = "P-WAE: patch-wise Wasserstein autoencoder with jigsaw, Student-t SWD priors and HSIC bottleneck."
    default_explainer: ClassVar[str] = "pwae-patch-error"
    default_scorer: ClassVar[str] = "pwae-patch-error"
    any_input_size: ClassVar[bool] = True
    epochs: ClassVar[int] = 10
    min_steps: ClassVar[int] = 300
    batch_size: ClassVar[int] = 32

    n: int = 3
    permutations: int = 100
    permutation_seed: int = 0
    code: int = 16
    width: int = 16
    backbone: Backbone = "small"
    backbone_weights: str = ""
    prior: Prior = "student-t-swd"
    nu: float = 5.0
    prior_scale: float = 1.0
    projections: int = 50
    hsic: bool = True
    jigsaw: bool = True
    beta: float = 0.1
    hsic_sigma: float = 0.0
    hsic_eps: float = 0.01
    w_hsic: float = 0.01
    w_prior: float = 0.1
    w_jigsaw: float = 1.0
    lr: float = 0.01
    momentum: float = 0.9
    lr_a: float = 10.0
    lr_b: float = 0.75

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._epochs: int | None = None
        self._train_images: int | None = None
        self._steps_per_epoch: int | None = None
        self._step = 0
        self._epoch = 0

    def validate(self) -> None:
        if self.n < 1 or self.code < 1 or self.width < 1 or self.projections < 1:
            raise xgen.XgenError("pwae needs n >= 1, code >= 1, width >= 1 and projections >= 1.")
        most = math.factorial(self.n * self.n)
        if not 1 <= self.permutations <= most:
            raise xgen.XgenError(
                f"pwae permutations must be between 1 and {most} (the orderings of {self.n}x{self.n} tiles), "
                f"got {self.permutations}."
            )
        if self.jigsaw and self.permutations < 2:
            raise xgen.XgenError("pwae jigsaw=true needs permutations >= 2 (and n >= 2); or set jigsaw=false.")
        weights = {k: getattr(self, k) for k in ("w_hsic", "w_prior", "w_jigsaw", "beta")}
        negative = [k for k, v in weights.items() if v < 0]
        if negative:
            raise xgen.XgenError(f"pwae loss weights must be >= 0, got {negative[0]}={weights[negative[0]]}.")
        if self.nu <= 0 or self.prior_scale <= 0 or self.hsic_eps <= 0:
            raise xgen.XgenError("pwae needs nu > 0, prior_scale > 0 and hsic_eps > 0.")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.lr_a < 0 or self.lr_b < 0:
            raise xgen.XgenError("pwae needs lr > 0, momentum in [0, 1), lr_a >= 0 and lr_b >= 0.")
        if self.backbone_weights and self.backbone == "small":
            raise xgen.XgenError(
                "pwae backbone_weights loads ImageNet weights into a ResNet; add backbone=resnet18 or resnet50."
            )

    def build(self, input_shape: tuple[int, int, int]) -> nn.Module:
        _, height, width = input_shape
        if height < self.n or width < self.n:
            raise xgen.XgenError(f"pwae n={self.n} needs images at least {self.n} pixels a side; lower n.")
        try:
            perms = tiles.permutation_set(self.n * self.n, self.permutations, self.permutation_seed)
        except ValueError as exc:
            raise xgen.XgenError(f"pwae could not choose the permutation set ({exc}); lower permutations.") from None
        return PWAENet(
            input_shape,
            n=self.n,
            code=self.code,
            width=self.width,
            backbone=self.backbone,
            permutations=perms,
            logvar=self.prior == "gaussian-kl",
        )

    def training_set(self, dataset: xgen.Dataset) -> tuple[xgen.ImageSet, list[str]]:
        """The training split; its size fixes the steps per epoch of the lr schedule."""
        train = dataset.train()
        self._train_images = len(train)
        return train, []

    def phases(self, epochs: int) -> list[tuple[str, int]]:
        """One phase; records the epoch count, which with the steps per epoch gives the schedule's p."""
        self._epochs = epochs
        return [("", epochs)]

    def configure_optimizers(self, module: nn.Module) -> list[torch.optim.Optimizer]:
        """SGD at `lr` with `momentum`. Also where a ResNet backbone gets its ImageNet weights (or the notice that it
        has none)."""
        assert isinstance(module, PWAENet)
        self._step = 0
        self._epoch = 0
        if self.backbone != "small":
            backbones.load_weights(module.encoder.trunk, self.backbone, self.backbone_weights)
        return [torch.optim.SGD(module.parameters(), lr=self.lr, momentum=self.momentum)]

    def progress(self, batch: int) -> float:
        """p in [0, 1] for the next step: steps done over total steps (epochs x ceil(training images / batch))
        when xgen.train gave both, else the fraction of epochs done, else 0."""
        if self._steps_per_epoch is None and self._train_images is not None:
            self._steps_per_epoch = math.ceil(self._train_images / max(batch, 1))
        if self._epochs and self._steps_per_epoch:
            return min(1.0, self._step / (self._epochs * self._steps_per_epoch))
        return min(1.0, self._epoch / self._epochs) if self._epochs else 0.0

    def end_epoch(self, epoch: int, optimizers: list[torch.optim.Optimizer]) -> None:
        self._epoch = epoch

    def after_training(self, module: nn.Module, train_set: xgen.ImageSet) -> None:
        """The training-error statistics of eq. 21-23 under the final weights, saved as the module's buffers."""
        errors.calibrate(module, train_set.images)

    def loss_terms(self, module: PWAENet, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, C, H, W) -> the unweighted terms of eq. 20 that the options switch on: ae, swd or kl, hsic,
        jigsaw (steps 1-7 of the class docstring)."""
        fitted = module.working(x)
        pieces = tiles.cut(fitted, module.n)
        batch, k = pieces.shape[:2]
        if self.jigsaw:
            labels = torch.randint(len(module.permutations), (batch,), device=x.device)
            perms = module.permutations[labels]
            pieces = tiles.shuffle(pieces, perms)
        else:
            perms = torch.arange(k, device=x.device).expand(batch, k)
        mean, logvar = module.encode_slots(pieces)
        slots = mean if logvar is None else mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        codes = tiles.unshuffle(slots, perms)
        terms = {"ae": F.mse_loss(module.decode_working(codes), fitted)}
        if self.prior == "student-t-swd":
            prior = priors.student_t_samples(tuple(codes.shape), self.nu, self.prior_scale, x.device)
            terms["swd"] = priors.sliced_wasserstein(codes, prior, self.projections).sum()
        else:
            prior = priors.gaussian_samples(tuple(codes.shape), self.prior_scale, x.device)
            terms["kl"] = priors.gaussian_kl(tiles.unshuffle(mean, perms), tiles.unshuffle(logvar, perms)).sum()
        if self.hsic:
            terms["hsic"] = hsic.hsic_bottleneck(
                fitted.flatten(1), codes.flatten(1), prior.flatten(1), self.beta, self.hsic_sigma, self.hsic_eps
            )
        if self.jigsaw:
            terms["jigsaw"] = F.cross_entropy(module.jigsaw(slots), labels)
        return terms

    def training_step(
        self, module: nn.Module, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, float]:
        """One SGD step on eq. 20 at the scheduled lr; logs the total `loss` and every term."""
        assert isinstance(module, PWAENet)
        (optimizer,) = optimizers
        lr = self.lr / (1 + self.lr_a * self.progress(x.shape[0])) ** self.lr_b
        for group in optimizer.param_groups:
            group["lr"] = lr
        terms = self.loss_terms(module, x)
        weights = {"ae": 1.0, "swd": self.w_prior, "kl": self.w_prior, "hsic": self.w_hsic, "jigsaw": self.w_jigsaw}
        total = sum(weights[key] * value for key, value in terms.items())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        self._step += 1
        return {"loss": float(total.detach()), **{key: float(value.detach()) for key, value in terms.items()}}
