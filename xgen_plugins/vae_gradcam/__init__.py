"""Explainer `vae-gradcam`: Liu et al.'s latent-sum Grad-CAM for variational autoencoders; and the MNIST gallery
claim of their Figure 1 for `xgen reproduce`."""

import xgen
from xgen_plugins.vae_gradcam.claims import AttentionMarksWhatTheNormalDigitLacks
from xgen_plugins.vae_gradcam.latent_sum_gradcam import LatentSumGradCAM


@xgen.hookimpl
def xgen_register_explainers(register):
    register(LatentSumGradCAM)


@xgen.hookimpl
def xgen_register_claims(register):
    register(AttentionMarksWhatTheNormalDigitLacks)
