"""InfoStyleGAN (Paul, Wang, Alajaji and Burlina, ../seeds/004): architecture `infostylegan`, a style-based GAN
whose auxiliary network Q shares the discriminator's trunk; InfoGAN, StyleGAN and InfoStyleGAN-Discrete are settings
of it."""

from collections.abc import Callable

import xgen
from xgen_plugins.infostylegan.architecture import InfoStyleGANArchitecture


@xgen.hookimpl
def xgen_register_models(register: Callable[[type], None]) -> None:
    register(InfoStyleGANArchitecture)
