"""CAVGA (Venkataramanan et al., "Attention Guided Anomaly Localization in Images", ECCV 2020): architecture
`cavga` (unsupervised and weakly supervised), explainer `cavga` and scorer `cavga`."""

from collections.abc import Callable

import xgen
from xgen_plugins.cavga.ablation_claims import ABLATION_CLAIMS
from xgen_plugins.cavga.architecture import CAVGAArchitecture
from xgen_plugins.cavga.claims import CAVGADuBeatsVAEOnMNIST
from xgen_plugins.cavga.explainer import CAVGAExplainer, CAVGAScorer


@xgen.hookimpl
def xgen_register_models(register: Callable[[type], None]) -> None:
    register(CAVGAArchitecture)


@xgen.hookimpl
def xgen_register_explainers(register: Callable[[type], None]) -> None:
    register(CAVGAExplainer)


@xgen.hookimpl
def xgen_register_scorers(register: Callable[[type], None]) -> None:
    register(CAVGAScorer)


@xgen.hookimpl
def xgen_register_claims(register: Callable[[type], None]) -> None:
    register(CAVGADuBeatsVAEOnMNIST)
    for claim in ABLATION_CLAIMS:
        register(claim)
