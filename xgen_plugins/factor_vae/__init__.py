"""Architecture `factor-vae`: FactorVAE, beta-VAE and AD-FactorVAE (Liu et al.'s attention disentanglement loss)."""

import xgen
from xgen_plugins.factor_vae.architecture import FactorVAEArchitecture


@xgen.hookimpl
def xgen_register_models(register):
    register(FactorVAEArchitecture)
