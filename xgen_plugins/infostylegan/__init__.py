"""InfoStyleGAN (Paul, Wang, Alajaji and Burlina, ../seeds/004): architecture `infostylegan`, a style-based GAN
whose auxiliary network Q shares the discriminator's trunk; InfoGAN, StyleGAN and InfoStyleGAN-Discrete are settings
of it; and the paper's claims that `xgen reproduce` re-measures."""

from collections.abc import Callable

import xgen
from xgen_plugins.infostylegan.architecture import InfoStyleGANArchitecture
from xgen_plugins.infostylegan.claims import (
    DenseEmbeddingBest,
    InformationCostsLittleQuality,
    InfoStyleGANDisentangles,
)


@xgen.hookimpl
def xgen_register_models(register: Callable[[type], None]) -> None:
    register(InfoStyleGANArchitecture)


@xgen.hookimpl
def xgen_register_claims(register: Callable[[type], None]) -> None:
    register(InfoStyleGANDisentangles)
    register(InformationCostsLittleQuality)
    register(DenseEmbeddingBest)
