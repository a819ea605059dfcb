"""Explainer and scorer `recon-error`: the per-pixel reconstruction error of an autoencoder, the baseline every
paper compares its maps and scores against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

import xgen

Error = Literal["squared", "absolute"]


def error_map(model: xgen.Model, x: torch.Tensor, error: str) -> torch.Tensor:
    """x: (N, C, H, W) in [0, 1] -> (N, H, W) channel-mean error between x and the reconstruction of its latent
    mean (squared or absolute)."""
    with torch.no_grad():
        difference = model.reconstruct(x) - x
    return (difference.square() if error == "squared" else difference.abs()).mean(dim=1)


class ReconstructionErrorMap(xgen.Explainer):
    """Map: the per-pixel error between an image and its reconstruction (decode of the latent mean), averaged over
    channels; score: the map's mean (the mean squared error for error=squared)."""

    name = "recon-error"
    description = "Per-pixel reconstruction error (channel mean); score: its mean over the image."
    requires = frozenset({"encode", "decode"})

    error: Error = "squared"

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        amap = error_map(model, x, self.error)
        return xgen.Explanation(anomaly_map=amap, score=amap.flatten(1).mean(dim=1))


class ReconstructionErrorScore(xgen.Scorer):
    """The mean per-pixel error between an image and its reconstruction: the image score of a plain autoencoder."""

    name = "recon-error"
    description = "Mean reconstruction error of the image (squared by default)."
    requires = frozenset({"encode", "decode"})

    error: Error = "squared"

    def score(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        return error_map(model, x, self.error).flatten(1).mean(dim=1)


@xgen.hookimpl
def xgen_register_explainers(register: Callable[[type], None]) -> None:
    register(ReconstructionErrorMap)


@xgen.hookimpl
def xgen_register_scorers(register: Callable[[type], None]) -> None:
    register(ReconstructionErrorScore)
