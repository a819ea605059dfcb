"""Architecture `stacked-rbm`: Bernoulli-Bernoulli RBMs trained greedily, bottom first, with CD-k or PCD."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

import xgen
from xgen_plugins.rbm.rbm import Units
from xgen_plugins.rbm.stack import DEFAULT_SIDES, StackedRBM, default_hidden, layer_for_epoch


class StackedRBMArchitecture(xgen.Architecture):
    """The stacked RBM of the reproducibility report (section 3.4.2), trained greedily inside xgen's epoch loop.

    Schedule: epochs 1..e train RBM 1 (on the pixels), epochs e+1..2e RBM 2 (on RBM 1's hidden means), and so on,
    with e = `epochs_per_layer`; the default epoch count is layers x e. With `--epochs` larger, the extra epochs
    train the top RBM; smaller, the upper RBMs stay untrained (`rbm-gumbel` warns when it explains through one).

    Update: CD-k (`k` Gibbs steps from the data) or persistent CD (`persistent=true`: the chains carry over
    between batches, one per example of the layer's first batch). The gradient comes from autograd on the
    surrogate mean F(data) - mean F(chain end) (see `RBM.contrastive_divergence_loss`), stepped by SGD with
    momentum (step size `learning_rate`), weight decay on the weights only (Hinton's guide, sections 9-10).
    Each RBM's visible biases are set from its first batch (guide, section 8.1). Each RBM is a training phase
    with its own progress bar; the step logs `recon` (one-step mean-field reconstruction error of the layer's
    input, per unit, [0, 1] scale) and `pseudo-ll` (the stochastic pseudo-log-likelihood, see
    `RBM.pseudo_log_likelihood`), averaged over the epoch; the history records each epoch's phase.

    Sizes: `hidden` (e.g. "484,256,64"), or by default perfect squares scaled to the input: 784-484-256-64 for
    28x28, 4096-2500-1369-324 for 64x64 (`stack.default_hidden`), so every hidden layer shows as a square image.
    """

    name = "stacked-rbm"
    description = "Stacked Bernoulli RBMs (deep belief net layers), trained greedily with CD-k or persistent CD."
    default_explainer: ClassVar[str] = "rbm-gumbel"
    default_scorer: ClassVar[str] = "rbm-free-energy"
    batch_size: ClassVar[int] = 16

    hidden: tuple[int, ...] | None = None
    units: Units = "binary"
    k: int = 1
    persistent: bool = False
    epochs_per_layer: int = 20
    lr: float | None = None
    momentum: float = 0.5
    weight_decay: float = 1e-4

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.epochs = self.layers * self.epochs_per_layer
        self._layer = 0
        self._chains: dict[int, torch.Tensor] = {}

    @property
    def layers(self) -> int:
        """The number of RBMs in the stack."""
        return len(self.hidden) if self.hidden is not None else len(DEFAULT_SIDES)

    def validate(self) -> None:
        if self.hidden is not None and (not self.hidden or min(self.hidden) < 1):
            raise xgen.XgenError("stacked-rbm option hidden needs one or more positive sizes, like hidden=484,256,64.")
        if self.k < 1 or self.epochs_per_layer < 1:
            raise xgen.XgenError(
                f"stacked-rbm needs k >= 1 and epochs_per_layer >= 1, got k={self.k}, "
                f"epochs_per_layer={self.epochs_per_layer}."
            )
        if (self.lr is not None and self.lr <= 0) or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise xgen.XgenError("stacked-rbm needs lr > 0 (or none), 0 <= momentum < 1 and weight_decay >= 0.")

    def learning_rate(self, visible: int) -> float:
        """The SGD step of an RBM with `visible` inputs: `lr`, or by default 0.05 * min(1, 784 / visible).

        A hidden pre-activation sums `visible` terms, so one step moves it in proportion to the fan-in: 0.05 suits
        784 (28x28) inputs, while 4,096 (64x64) grey textures at 0.05 saturate every hidden unit of the first RBM
        within an epoch (all means 0 or 1, identical for every image); scaling by 784 / visible avoids that."""
        return self.lr if self.lr is not None else 0.05 * min(1.0, 784 / visible)

    def build(self, input_shape: tuple[int, int, int]) -> nn.Module:
        visible = math.prod(input_shape)
        hidden = self.hidden if self.hidden is not None else default_hidden(visible)
        return StackedRBM(input_shape, hidden, self.units)

    def configure_optimizers(self, module: nn.Module) -> list[torch.optim.Optimizer]:
        """One SGD per RBM (the greedy schedule steps one at a time); resets the schedule and the PCD chains."""
        self._layer = 0
        self._chains = {}
        return [
            torch.optim.SGD(
                [
                    {"params": [rbm.weight], "weight_decay": self.weight_decay},
                    {"params": [rbm.visible_bias, rbm.hidden_bias], "weight_decay": 0.0},
                ],
                lr=self.learning_rate(rbm.visible),
                momentum=self.momentum,
            )
            for rbm in module.rbms
        ]

    def training_step(
        self, module: nn.Module, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, float]:
        layer = self._layer
        rbm = module.rbms[layer]
        with torch.no_grad():
            v0 = module.ascend(x, layer)
            if int(module.trained_steps[layer]) == 0:
                rbm.init_visible_bias(v0)
        a0 = rbm.hidden_logits(v0)
        with torch.no_grad():
            if self.persistent:
                negative = self._chains[layer] = rbm.gibbs(self._chains.get(layer, v0), self.k)
            else:
                negative = rbm.gibbs(v0, self.k, logits=a0.detach())
        optimizer = optimizers[layer]
        optimizer.zero_grad(set_to_none=True)
        rbm.contrastive_divergence_loss(v0, negative, a0).backward()
        optimizer.step()
        module.trained_steps[layer] += 1
        with torch.no_grad():
            recon = rbm.reconstruction_error(v0, a0.detach()).mean()
            pseudo = rbm.pseudo_log_likelihood(v0).mean()
        return {"recon": float(recon), "pseudo-ll": float(pseudo)}

    def phases(self, epochs: int) -> list[tuple[str, int]]:
        """One phase (and progress bar) per RBM: `epochs_per_layer` each, the rest to the top one; with fewer
        epochs the upper RBMs get none."""
        counts = [0] * self.layers
        for epoch in range(1, epochs + 1):
            counts[layer_for_epoch(epoch, self.epochs_per_layer, self.layers)] += 1
        return [(f"layer {i + 1}/{self.layers}", count) for i, count in enumerate(counts)]

    def begin_phase(self, index: int, optimizers: list[torch.optim.Optimizer]) -> None:
        self._layer = index

    def wrap_arguments(self, module: nn.Module) -> dict[str, Any]:
        return {"encode": module.encode, "decode": module.decode}
