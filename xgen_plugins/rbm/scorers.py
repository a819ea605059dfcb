"""Scorer `rbm-free-energy`, and explainer and scorer `rbm-recon-error`: the stacked RBM's own anomaly measures."""

from __future__ import annotations

from typing import Literal

import torch

import xgen
from xgen_plugins.rbm.stack import StackedRBM, stacked


class RBMFreeEnergy(xgen.Scorer):
    """F(v) of the bottom RBM (`rbm.RBM.free_energy`), v the image's pixels in the unit domain: -log p(v) up to
    the constant log Z, so higher = less likely under the model = more anomalous."""

    name = "rbm-free-energy"
    description = "Free energy of the image under the bottom RBM of a stacked RBM (higher = more anomalous)."
    requires = frozenset({"encode"})

    def score(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        stack = stacked(model, f"scorer '{self.name}'")
        with torch.no_grad():
            return stack.rbms[0].free_energy(stack.visible(x))


class _ReconstructionOptions:
    """The options and the reconstruction shared by the `rbm-recon-error` explainer and scorer."""

    steps: int = 1
    gibbs: Literal["mean-field", "sampled"] = "mean-field"
    depth: int | None = None
    seed: int = 0
    error: Literal["squared", "absolute"] = "squared"

    def validate(self) -> None:
        if self.steps < 1 or (self.depth is not None and self.depth < 1):
            raise xgen.XgenError(
                f"{self.name} needs steps >= 1 and depth >= 1 (or none for the whole stack), got steps={self.steps}, "
                f"depth={self.depth}."
            )

    def reconstruct(self, stack: StackedRBM, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W): up to the input of RBM `depth` (default the top) by means, `steps` Gibbs
        steps of that RBM (mean-field, or sampled with seeded noise shared by every image), down by means."""
        count = len(stack.rbms)
        depth = count if self.depth is None else self.depth
        if depth > count:
            raise xgen.XgenError(f"{self.name} option depth={depth} is out of range: this stack has {count} RBMs.")
        generator = None if self.gibbs == "mean-field" else torch.Generator(device=x.device).manual_seed(self.seed)
        with torch.no_grad():
            v = stack.ascend(x, depth - 1)
            v = stack.rbms[depth - 1].gibbs(v, self.steps, generator, mean_field=self.gibbs == "mean-field")
            return stack.descend(v, depth - 1)

    def error_map(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, H, W) the channel mean of the squared or absolute reconstruction error."""
        difference = self.reconstruct(stacked(model, f"{self.kind} '{self.name}'"), x) - x
        return (difference.square() if self.error == "squared" else difference.abs()).mean(dim=1)


class RBMReconErrorMap(_ReconstructionOptions, xgen.Explainer):
    """Per-pixel error between an image and its stacked-RBM reconstruction after `steps` Gibbs steps at RBM `depth`
    (see `reconstruct`); score: the map's mean. With the defaults it equals `recon-error` on the wrapped model."""

    name = "rbm-recon-error"
    description = "Per-pixel error of a stacked RBM's reconstruction after k Gibbs steps; score: its mean."
    requires = frozenset({"encode", "decode"})

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        amap = self.error_map(model, x)
        return xgen.Explanation(anomaly_map=amap, score=amap.flatten(1).mean(dim=1))


class RBMReconErrorScore(_ReconstructionOptions, xgen.Scorer):
    """The mean of `rbm-recon-error`'s map: the image's reconstruction error after k Gibbs steps."""

    name = "rbm-recon-error"
    description = "Mean reconstruction error of a stacked RBM after k Gibbs steps (higher = more anomalous)."
    requires = frozenset({"encode", "decode"})

    def score(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        return self.error_map(model, x).flatten(1).mean(dim=1)
