"""Stacked RBMs: architecture `stacked-rbm`, explainer `rbm-gumbel`, explainer and scorer `rbm-recon-error`, scorer
`rbm-free-energy` (the reproducibility report's section 3.4.2; see docs/methods/rbm.md)."""

from collections.abc import Callable

import xgen
from xgen_plugins.rbm.architecture import StackedRBMArchitecture
from xgen_plugins.rbm.claims import RBM_CLAIMS
from xgen_plugins.rbm.explainer import RBMGumbel
from xgen_plugins.rbm.scorers import RBMFreeEnergy, RBMReconErrorMap, RBMReconErrorScore


@xgen.hookimpl
def xgen_register_models(register: Callable[[type], None]) -> None:
    register(StackedRBMArchitecture)


@xgen.hookimpl
def xgen_register_explainers(register: Callable[[type], None]) -> None:
    register(RBMGumbel)
    register(RBMReconErrorMap)


@xgen.hookimpl
def xgen_register_scorers(register: Callable[[type], None]) -> None:
    register(RBMFreeEnergy)
    register(RBMReconErrorScore)


@xgen.hookimpl
def xgen_register_claims(register: Callable[[type], None]) -> None:
    for claim in RBM_CLAIMS:
        register(claim)
