"""The stacked RBM module (a deep belief network's layers) and the sizes and schedule of its greedy training.

The reproducibility report (section 3.4.2) stacks RBMs and trains them "from bottom RBM to top RBM": RBM l is fit
on the hidden means of RBM l-1 given the data, the lower RBMs frozen. Upward and downward passes use conditional
means (mean-field), as in Hinton, Osindero and Teh (2006) for the recognition and generative weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

import xgen
from xgen_plugins.rbm.rbm import RBM, Units

#: Default hidden sides as fractions of the input's side: 784-484-256-64 (28^2-22^2-16^2-8^2) for 28x28 images.
DEFAULT_SIDES: tuple[float, ...] = (22 / 28, 16 / 28, 8 / 28)


def default_hidden(visible: int) -> tuple[int, ...]:
    """Perfect-square hidden sizes for `visible` input units: side s = sqrt(visible), hidden sides round(s * f) for
    f in DEFAULT_SIDES (at least 2). 784 -> (484, 256, 64); 4096 (64x64) -> (2500, 1369, 324)."""
    side = math.sqrt(visible)
    return tuple(max(2, round(side * fraction)) ** 2 for fraction in DEFAULT_SIDES)


def grid_shape(units: int) -> tuple[int, int]:
    """The (rows, columns) a layer of `units` is shown on: a square when `units` is one, else the most square
    factorisation (rows <= columns)."""
    rows = math.isqrt(units)
    while units % rows:
        rows -= 1
    return rows, units // rows


def layer_for_epoch(epoch: int, epochs_per_layer: int, layers: int) -> int:
    """The 0-based layer trained in 1-based `epoch` of the greedy schedule; epochs past the last layer's share
    keep training the top layer."""
    return min((epoch - 1) // epochs_per_layer, layers - 1)


class StackedRBM(nn.Module):
    """RBMs stacked over images of shape (C, H, W): sizes C*H*W -> hidden[0] -> ... -> hidden[-1].

    `rbms[l]` (0-based) has the means of layer l (layer 0: the pixels) as visible units. `trained_steps[l]` counts
    the CD updates RBM l received, so a checkpoint says which layers were trained. encode(x) gives the top hidden
    means, decode(h) the pixel means of a downward pass: what `xgen.wrap` needs for generic explainers.
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int], units: Units = "binary") -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        sizes = [math.prod(self.input_shape), *hidden]
        self.rbms = nn.ModuleList(RBM(visible, units_out, units) for visible, units_out in pairwise(sizes))
        self.register_buffer("trained_steps", torch.zeros(len(hidden), dtype=torch.long))

    def visible(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1] -> the bottom RBM's visible means (N, C*H*W) in its unit domain."""
        return self.rbms[0].from_on(x.flatten(1))

    def pixels(self, v: torch.Tensor) -> torch.Tensor:
        """Bottom visible means (N, C*H*W) -> images (N, C, H, W) in [0, 1]."""
        return self.rbms[0].to_on(v).clamp(0.0, 1.0).reshape(v.shape[0], *self.input_shape)

    def ascend(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """x: (N, C, H, W) -> the input of RBM `layer` (0-based): the means (N, V_layer) of layer `layer`."""
        v = self.visible(x)
        for rbm in self.rbms[:layer]:
            v = rbm.mean(rbm(v))
        return v

    def descend(self, v: torch.Tensor, layer: int) -> torch.Tensor:
        """v: the means (N, V_layer) of layer `layer` -> images (N, C, H, W): mean-field through the RBMs below."""
        for rbm in reversed(self.rbms[:layer]):
            v = rbm.mean(rbm.visible_logits(v))
        return self.pixels(v)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1] -> the top hidden means (N, hidden[-1])."""
        return self.ascend(x, len(self.rbms))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Top hidden values (N, hidden[-1]) -> images (N, C, H, W) in [0, 1]."""
        return self.descend(h, len(self.rbms))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def stacked(model: xgen.Model, who: str) -> StackedRBM:
    """The StackedRBM a model wraps, or WrapError (before any work) when it wraps something else."""
    if not isinstance(model.module, StackedRBM):
        raise xgen.WrapError(
            f"{who} works on stacked RBMs only, but this model wraps a {type(model.module).__name__}; train one with "
            "'xgen train stacked-rbm --data SPEC --out ckpt.pt' or use a generic explainer such as recon-error."
        )
    return model.module
