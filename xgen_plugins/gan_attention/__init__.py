"""Explainers `disc-gradcam` and `q-gradcam`: Grad-CAM of a GAN's discriminator and of its auxiliary network Q, for
any model wrapped with `discriminator=` / `auxiliary=` (InfoGAN, InfoStyleGAN, a user's own GAN); and the scorer
`disc-score`, the discriminator's 1 - D(x) without the map."""

from collections.abc import Callable

import xgen
from xgen_plugins.gan_attention.gradcam import DiscriminatorGradCAM, DiscriminatorScore, QGradCAM


@xgen.hookimpl
def xgen_register_explainers(register: Callable[[type], None]) -> None:
    register(DiscriminatorGradCAM)
    register(QGradCAM)


@xgen.hookimpl
def xgen_register_scorers(register: Callable[[type], None]) -> None:
    register(DiscriminatorScore)
