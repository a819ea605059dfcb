"""Latent-sum Grad-CAM for VAEs (Liu et al., CVPR 2020; reproduced in ../seeds/000, sections 3.2 and 3.4.1)."""

from __future__ import annotations

from typing import Literal

import torch

import xgen


class LatentSumGradCAM(xgen.Explainer):
    """Grad-CAM of the VAE score s = sum_i mu_i(x), the sum of the encoder mean over latent dimensions.

    With A the activations of the chosen layer (default: the last encoder conv, before its ReLU, as the
    official code hooks `encoder.2`): alpha_c = mean_{h,w} ds/dA_c (Grad-CAM weights); map = sign(upsample(
    sum_c alpha_c A_c)) at input resolution, then min-max normalised per image. Each image's score depends on
    that image only, so the whole batch takes one backward pass. `dim=i` explains mu_i alone; `per_dim=True`
    also returns every dimension's map in details["per_dim"]: (N, D, H, W), from one batched backward pass.

    Where the paper (eq. 2) and the official code differ, and the option that selects each:
    - Sign of the map: the paper applies a ReLU (`sign="relu"`); the official code takes the absolute value
      after upsampling (`sign="abs"`, the default); `sign="none"` keeps the signed map.
    - Gradient normalisation: the official code divides the gradients by their root mean square before
      averaging (`grad_norm="l2"`); the paper does not (`grad_norm="none"`, the default). The official code
      takes one RMS over the whole batch, which makes a map depend on the other images in its batch; xgen takes
      it per image. Either way it scales a map by a positive constant, so it changes nothing after min-max.
    - Upsampling: bilinear to the input size, as the official code (the paper does not say).
    - Normalisation: the official code min-max normalises each map for display (`normalize="minmax"`);
      `normalize="none"` returns raw upsampled values.
    """

    name = "vae-gradcam"
    description = "Liu et al.'s latent-sum Grad-CAM: attention of the sum of the VAE encoder mean at a conv layer."
    requires = frozenset({"encode", "layers"})

    layer: str | None = None
    sign: Literal["abs", "relu", "none"] = "abs"
    normalize: Literal["minmax", "none"] = "minmax"
    grad_norm: Literal["none", "l2"] = "none"
    dim: int | None = None
    per_dim: bool = False

    def validate(self) -> None:
        if self.dim is not None and self.dim < 0:
            raise xgen.XgenError(f"vae-gradcam option dim must be a latent index >= 0, got {self.dim}.")
        if self.per_dim and self.grad_norm == "l2":
            raise xgen.XgenError(
                "vae-gradcam cannot combine per_dim=true with grad_norm=l2; drop grad_norm (it does not change "
                "min-max normalised maps)."
            )

    def _check_dim(self, latent_size: int) -> None:
        if self.dim is not None and self.dim >= latent_size:
            raise xgen.XgenError(
                f"vae-gradcam option dim={self.dim} is out of range: the latent has {latent_size} dimensions "
                f"(0-{latent_size - 1})."
            )

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        """x: (N, C, H, W) in [0, 1] -> anomaly_map (N, H, W); details["layer"], and ["per_dim"] if asked."""
        layer = self.layer or model.attention_layer(x)
        size = (x.shape[2], x.shape[3])
        details: dict[str, object] = {"layer": layer}

        def latent_mean(inputs: torch.Tensor) -> torch.Tensor:
            mu = model.encode(inputs).mean.flatten(1)
            self._check_dim(mu.shape[1])
            return mu

        if self.per_dim:
            acts, alpha, _ = xgen.gradients.channel_weights(model, layer, x, latent_mean)
            cams = torch.einsum("nkc,nchw->nkhw", alpha, acts.detach())
            cam = cams[:, self.dim : self.dim + 1] if self.dim is not None else cams.sum(dim=1, keepdim=True)
            details["per_dim"] = xgen.gradients.cam_maps(cams, size, self.sign, self.normalize).detach()
        else:
            dim = self.dim

            def score(inputs: torch.Tensor) -> torch.Tensor:
                mu = latent_mean(inputs)
                return mu.sum(dim=1) if dim is None else mu[:, dim]

            grads = xgen.gradients.layer_gradients(model, layer, x, score)
            xgen.gradients.check_spatial(grads.activations, layer)
            g = grads.gradients
            if self.grad_norm == "l2":
                g = g / (g.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-5)
            alpha = g.mean(dim=(2, 3), keepdim=True)
            cam = (alpha * grads.activations.detach()).sum(dim=1, keepdim=True)
        anomaly_map = xgen.gradients.cam_maps(cam, size, self.sign, self.normalize)[:, 0]
        return xgen.Explanation(anomaly_map=anomaly_map.detach(), score=None, details=details)
