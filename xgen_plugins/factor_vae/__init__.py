"""Architecture `factor-vae`: FactorVAE, beta-VAE and AD-FactorVAE (Liu et al.'s attention disentanglement loss);
and the claims (iv) and (v) of Liu et al. that `xgen reproduce` re-measures."""

import xgen
from xgen_plugins.factor_vae.architecture import FactorVAEArchitecture
from xgen_plugins.factor_vae.claims import AttentionSeparates, FactorVAETradeoff


@xgen.hookimpl
def xgen_register_models(register):
    register(FactorVAEArchitecture)


@xgen.hookimpl
def xgen_register_claims(register):
    register(FactorVAETradeoff)
    register(AttentionSeparates)
