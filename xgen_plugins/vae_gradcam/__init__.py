"""Explainer `vae-gradcam`: Liu et al.'s latent-sum Grad-CAM for variational autoencoders."""

import xgen
from xgen_plugins.vae_gradcam.latent_sum_gradcam import LatentSumGradCAM


@xgen.hookimpl
def xgen_register_explainers(register):
    register(LatentSumGradCAM)
