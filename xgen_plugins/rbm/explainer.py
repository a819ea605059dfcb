"""Explainer `rbm-gumbel`: latent-sum Grad-CAM for stacked RBMs, the top layer's binary units relaxed (report 3.4.2)."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.nn.functional as F

import xgen
from xgen_plugins.rbm.gumbel import Relaxation, relax
from xgen_plugins.rbm.stack import StackedRBM, grid_shape, stacked

Sign = Literal["abs", "relu", "none"]
Normalize = Literal["minmax", "none"]


def finish(
    maps: torch.Tensor, size: tuple[int, int] | None, sign: str, normalize: str, eps: float = 1e-12, rtol: float = 1e-5
) -> torch.Tensor:
    """maps: (N, 1, h, w) -> (N, h, w), or (N, H, W) upsampled bilinearly to `size`: vae-gradcam's post-processing
    (upsample, then the sign rule, then per-map min-max; a map flat to within `rtol` of its magnitude becomes 0)."""
    if size is not None:
        maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    if sign == "abs":
        maps = maps.abs()
    elif sign == "relu":
        maps = maps.clamp_min(0.0)
    flat = maps.flatten(1)
    if normalize == "minmax":
        low = flat.min(dim=1, keepdim=True).values
        span = flat.max(dim=1, keepdim=True).values - low
        is_flat = span <= rtol * flat.abs().max(dim=1, keepdim=True).values
        flat = torch.where(is_flat, torch.zeros_like(flat), (flat - low) / span.clamp_min(eps))
    return flat.view(maps.shape[0], *maps.shape[2:])


def gumbel_sum(stack: StackedRBM, x: torch.Tensor, relaxation: Relaxation, tau: float, seed: int) -> torch.Tensor:
    """The score s(x) = sum_j z_j: (N,) of x: (N, C, H, W), z the relaxed sample of the top RBM's hidden units
    given the means of the layers below (`gumbel.relax`, noise seeded by `seed`), in the unit domain."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    top = stack.rbms[-1]
    logits = top.on_logit(top(stack.ascend(x, len(stack.rbms) - 1)))
    return top.from_on(relax(logits, relaxation, tau, generator)).sum(dim=1)


def project(unit_map: torch.Tensor, stack: StackedRBM, layer: int) -> torch.Tensor:
    """A map over the units of hidden layer `layer` (1-based): (N, H_l) -> pixel space (N, 1, H, W).

    Each unit's value is spread over the pixels through the absolute weights of the RBMs below, m |W_l|^T ...
    |W_1|^T (a unit's footprint: how strongly each pixel drives it), then reshaped to (N, C, H, W) and averaged
    over channels. The weights are non-negative, so the sign of each unit's contribution is kept.
    """
    pixels = unit_map
    for rbm in reversed(stack.rbms[:layer]):
        pixels = pixels @ rbm.weight.abs().t()
    return pixels.view(unit_map.shape[0], *stack.input_shape).mean(dim=1, keepdim=True)


class RBMGumbel(xgen.Explainer):
    """Grad-CAM of the relaxed top-layer sample of a stacked RBM, shown on a hidden layer's grid and on the pixels.

    Score (the report, section 3.4.2, latent-sum Grad-CAM of section 3.2 on an RBM): the up pass takes conditional
    means through the lower RBMs; the top RBM's hidden units, binary and so not differentiable, are replaced by a
    relaxed Bernoulli sample z = relax(l) of their log-odds l (`relaxation`, temperature `tau`, Gumbel noise
    seeded by `seed` and shared by every image, so a map depends on its image alone); s(x) = sum_j z_j, in the
    unit domain (z in {-1, +1} for spin units). See `gumbel.py` for why the report's relaxed ONE-HOT sample, whose
    sum is 1 whatever the input, gives a constant score and noise maps (`relaxation="one-hot"` reproduces it).

    Grad-CAM for fully connected units: with a = the pre-activations of hidden layer `layer` (1-based; negative
    counts from the top) and g = ds/da, each unit is a channel whose spatial map is 1x1, so Grad-CAM's weight
    alpha_j (the gradient averaged over the channel's map) is g_j, and the channel's contribution alpha_j A_j is
    g_j a_j. The unit map m = g * a (gradient x activation) is shown on the layer's square grid
    (`details["grid"]`), and projected to pixels through |W| (`project`): pixel map = sum_j alpha_j a_j
    footprint_j, Grad-CAM's sum_c alpha_c A_c with each unit's footprint as its spatial map. Then vae-gradcam's
    post-processing: `sign` (abs, as its reference code; relu, as the paper's eq. 2; none), per-image min-max.

    `view="pixels"` (default) returns the projected map; `view="grid"` the grid map upsampled bilinearly to the
    input size, as the report shows hidden-layer maps (grid cells are not pixel positions). details: "layer",
    "grid" (N, rows, cols), "pixels" (N, H, W), "gumbel_sum" (N,) the score s. No image score: s is not an
    anomaly score (use the model's default scorer, rbm-free-energy).
    """

    name = "rbm-gumbel"
    description = "Grad-CAM of a stacked RBM's Gumbel-relaxed top-layer sum, on a hidden layer's grid and the pixels."
    requires = frozenset({"encode", "layers"})

    tau: float = 0.5
    relaxation: Relaxation = "concrete"
    layer: int = 1
    seed: int = 0
    sign: Sign = "abs"
    normalize: Normalize = "minmax"
    view: Literal["pixels", "grid"] = "pixels"

    def validate(self) -> None:
        if not self.tau > 0:
            raise xgen.XgenError(f"rbm-gumbel option tau must be a temperature > 0, got {self.tau}.")
        if self.layer == 0:
            raise xgen.XgenError("rbm-gumbel option layer counts hidden layers from 1 (or from the top with -1).")

    def _layer(self, stack: StackedRBM) -> int:
        count = len(stack.rbms)
        layer = self.layer if self.layer > 0 else count + 1 + self.layer
        if not 1 <= layer <= count:
            raise xgen.XgenError(
                f"rbm-gumbel option layer={self.layer} is out of range: this stack has hidden layers 1-{count} "
                f"(or -1 to -{count} from the top)."
            )
        untrained = [i + 1 for i in range(count) if int(stack.trained_steps[i]) == 0]
        if untrained and int(stack.trained_steps.sum()) > 0:
            warnings.warn(
                f"stacked RBM layers {untrained} were never trained (too few epochs for epochs_per_layer), so "
                "maps through them are arbitrary; retrain with more --epochs.",
                stacklevel=2,
            )
        return layer

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        """x: (N, C, H, W) in [0, 1] -> anomaly_map (N, H, W); details as in the class docstring."""
        stack = stacked(model, f"explainer '{self.name}'")
        layer = self._layer(stack)

        def score(inputs: torch.Tensor) -> torch.Tensor:
            return gumbel_sum(stack, inputs, self.relaxation, self.tau, self.seed)

        grads = xgen.gradients.layer_gradients(model, f"rbms.{layer - 1}", x, score)
        with torch.no_grad():
            unit_map = grads.gradients * grads.activations
            rows, cols = grid_shape(unit_map.shape[1])
            grid = unit_map.view(-1, 1, rows, cols)
            pixels = finish(project(unit_map, stack, layer), None, self.sign, self.normalize)
            if self.view == "pixels":
                anomaly_map = pixels
            else:
                anomaly_map = finish(grid, (x.shape[2], x.shape[3]), self.sign, self.normalize)
            details = {
                "layer": layer,
                "grid": finish(grid, None, self.sign, self.normalize),
                "pixels": pixels,
                "gumbel_sum": grads.outputs.detach(),
            }
        return xgen.Explanation(anomaly_map=anomaly_map, score=None, details=details)
