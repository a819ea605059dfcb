"""Explainer and scorer `pwae-patch-error`: P-WAE's per-pixel reconstruction error map and its image score from
the whole-image and tile errors normalised by the training images' statistics (eq. 21-23)."""

from __future__ import annotations

import torch

import xgen
from xgen_plugins.pwae import errors
from xgen_plugins.pwae.networks import PWAENet


def pwae_module(model: xgen.Model, who: str) -> PWAENet:
    """The PWAENet inside `model`, or XgenError: the tile errors and their statistics exist only there."""
    if not isinstance(model.module, PWAENet):
        raise xgen.XgenError(f"{who} needs a pwae model; train one with `xgen train pwae --data ...`.")
    return model.module


def normalized_errors(net: PWAENet, found: errors.PatchErrors, who: str) -> torch.Tensor:
    """(N, 1 + K) the errors normalised by the training statistics; XgenError when the model has none."""
    if not int(net.calibrated):
        raise xgen.XgenError(
            f"{who} needs the training-error statistics of this pwae model, which it lacks; train it with xgen.train "
            "or call xgen_plugins.pwae.errors.calibrate(module, training_images)."
        )
    return errors.normalized(found, net.error_mean, net.error_std)


class PWAEPatchError(xgen.Explainer):
    """P-WAE's anomaly map and score (Zhang et al., eq. 21-23).

    Map: the per-pixel squared error between the image and the reconstruction of its unshuffled tiles (channel
    mean), at the input's size. Score: the whole-image error and each of the n x n tile errors as standard
    deviations above their means over the training images; `rule=image+tiles` (the paper's) takes the largest,
    `rule=image` the whole-image one alone. An image is flagged (details["flagged"]) when its score exceeds
    `threshold`, i.e. when the whole-image error or any tile error exceeds mean_k + threshold * std_k (eq. 21).
    details: "tiles" (N, n, n) the raw tile errors; "normalized" (N, 1 + K) the normalised errors (whole image
    first); "image_error" (N,); "flagged" (N,) bool. The authors' code shuffled test tiles 30% of the time; here
    the test path never shuffles.
    """

    name = "pwae-patch-error"
    description = "P-WAE: per-pixel reconstruction error; score: max of whole-image and tile errors normalised."
    requires = frozenset({"encode", "decode"})

    rule: errors.Rule = "image+tiles"
    threshold: float = 3.0

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        """x: (N, C, H, W) in [0, 1], any size -> anomaly_map (N, H, W), score (N,), details."""
        net = pwae_module(model, f"explainer '{self.name}'")
        found = errors.patch_errors(net, x)
        z = normalized_errors(net, found, f"explainer '{self.name}'")
        details = {
            "tiles": found.tiles,
            "normalized": z,
            "image_error": found.image,
            "flagged": errors.decide(z, self.rule, self.threshold),
        }
        return xgen.Explanation(anomaly_map=found.pixel_map, score=errors.score(z, self.rule), details=details)


class PWAEPatchScore(xgen.Scorer):
    """The image score of `pwae-patch-error` alone (eq. 21-23): the largest normalised error (`image+tiles`) or the
    whole-image one (`image`)."""

    name = "pwae-patch-error"
    description = "P-WAE image score: max of whole-image and tile reconstruction errors, normalised by training."
    requires = frozenset({"encode", "decode"})

    rule: errors.Rule = "image+tiles"

    def score(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        net = pwae_module(model, f"scorer '{self.name}'")
        found = errors.patch_errors(net, x)
        return errors.score(normalized_errors(net, found, f"scorer '{self.name}'"), self.rule)
