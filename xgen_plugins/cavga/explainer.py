"""Explainer and scorer `cavga`: where the trained attention does not go (unsupervised), or where the classifier's
anomalous class looks (weakly supervised), and the image scores of section 3.1-3.2."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

import xgen
from xgen_plugins.cavga import attention

Mode = Literal["auto", "unsupervised", "weak"]
Error = Literal["absolute", "squared"]


def is_weak(model: xgen.Model, mode: str) -> bool:
    """Whether to explain with the classifier: `auto` uses it when the model has a classifier head."""
    if mode == "weak":
        model.check_requires({"classifier"}, "explainer 'cavga' with mode=weak")
        return True
    return mode == "auto" and "classifier" in model.capabilities


def anomaly_probability(model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
    """x: (N, C, H, W) -> (N,) the classifier's softmax probability of the anomalous class (index 1)."""
    with torch.no_grad():
        logits = model.head("classifier")(x)
    return logits.softmax(dim=1)[:, 1]


def reconstruction_score(model: xgen.Model, x: torch.Tensor, error: str) -> torch.Tensor:
    """x: (N, C, H, W) -> (N,) the mean pixel-wise difference between x and its reconstruction (absolute: AnoGAN's
    residual, which section 3.1 follows; or squared)."""
    with torch.no_grad():
        difference = model.reconstruct(x) - x
    return (difference.abs() if error == "absolute" else difference.square()).flatten(1).mean(dim=1)


def _option(value: str | None, model: xgen.Model, key: str, default: str) -> str:
    """An explainer option left at None takes the value a cavga checkpoint was trained with, else `default`."""
    if value is not None:
        return value
    return str(model.config.get(key, default)) if model.architecture == "cavga" else default


class CAVGAExplainer(xgen.Explainer):
    """CAVGA's anomalous attention map (Venkataramanan et al., ECCV 2020, sections 3.1-3.2).

    Unsupervised: A = the Grad-CAM of the latent score (`attention_score`, default the sum of the latent mean) at
    `layer` (default: the model's attention layer; for cavga checkpoints the encoder's last feature map), brought
    to [0, 1] per image (`attention_norm`); the map is 1 - A upsampled bilinearly to the input size, and the score
    the mean pixel-wise difference between the image and its reconstruction (`error`; needs `decode`, else None).
    The paper normalises these scores to [0, 1] over the test images and detects at 0.5: `xgen evaluate` does the
    normalising (per-image normalisation min-max scales scores over the test set), so `balanced-accuracy` at its
    threshold of 0.5 is the paper's detection rule.

    Weakly supervised (a model with a classifier head (N, 2) of logits [normal, anomalous], or `mode=weak`): the
    map is the normalised Grad-CAM of the anomalous logit at `layer`, upsampled; the score the classifier's
    probability of the anomalous class, so that 0.5 is its decision.

    Works on any wrapped model with `encode` and a hookable convolutional layer, cavga or not. details: "attention",
    the normalised A (unsupervised) or the normal class's attention A_cn (weak), (N, H, W) upsampled; "layer".
    `attention_score` and `attention_norm` left unset take a cavga checkpoint's training values.
    """

    name = "cavga"
    description = "CAVGA anomaly map: 1 - the normalised Grad-CAM of the latent (or the anomalous class's Grad-CAM)."
    requires = frozenset({"encode", "layers"})

    layer: str | None = None
    mode: Mode = "auto"
    attention_score: attention.Score | None = None
    attention_norm: attention.Norm | None = None
    error: Error = "absolute"

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        """x: (N, C, H, W) in [0, 1] -> anomaly_map (N, H, W) in [0, 1], score (N,) or None, details."""
        layer = self.layer or model.attention_layer(x)
        norm = _option(self.attention_norm, model, "attention_norm", "max")
        size = (x.shape[2], x.shape[3])
        if is_weak(model, self.mode):
            features, alpha, logits = xgen.gradients.channel_weights(model, layer, x, model.head("classifier"))
            if logits.shape[1] != 2:
                raise xgen.XgenError(
                    f"explainer 'cavga' needs a classifier with 2 outputs [normal, anomalous], got {logits.shape[1]}; "
                    "pass wrap(classifier=...) a two-class head."
                )
            maps = attention.normalize(attention.grad_cam(features.detach(), alpha.detach()), norm)
            up = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
            anomaly_map, attended = up[:, 1], up[:, 0]
            score = logits.detach().softmax(dim=1)[:, 1]
        else:
            how = _option(self.attention_score, model, "attention_score", "sum")
            grads = xgen.gradients.layer_gradients(
                model, layer, x, lambda inputs: attention.latent_score(model.encode(inputs).mean, how)
            )
            xgen.gradients.check_spatial(grads.activations, layer)
            alpha = grads.gradients.mean(dim=(2, 3))
            maps = attention.normalize(attention.grad_cam(grads.activations.detach(), alpha), norm)
            attended = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            anomaly_map = 1.0 - attended
            score = reconstruction_score(model, x, self.error) if "decode" in model.capabilities else None
        return xgen.Explanation(
            anomaly_map=anomaly_map.detach(), score=score, details={"attention": attended.detach(), "layer": layer}
        )


class CAVGAScorer(xgen.Scorer):
    """CAVGA's image score: the classifier's probability of the anomalous class when the model has a classifier
    head (weak), else the mean pixel-wise difference between the image and its reconstruction (section 3.1)."""

    name = "cavga"
    description = "CAVGA image score: P(anomalous) of the classifier, or the mean reconstruction difference."
    requires = frozenset({"encode", "decode"})

    mode: Mode = "auto"
    error: Error = "absolute"

    def score(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        if is_weak(model, self.mode):
            return anomaly_probability(model, x)
        return reconstruction_score(model, x, self.error)
