"""P-WAE (Zhang et al., "Patch-wise Wasserstein autoencoder for anomaly detection"): architecture `pwae`, explainer
and scorer `pwae-patch-error`."""

from collections.abc import Callable

import xgen
from xgen_plugins.pwae.architecture import PWAEArchitecture
from xgen_plugins.pwae.claims import PWAE_CLAIMS
from xgen_plugins.pwae.explainer import PWAEPatchError, PWAEPatchScore


@xgen.hookimpl
def xgen_register_models(register: Callable[[type], None]) -> None:
    register(PWAEArchitecture)


@xgen.hookimpl
def xgen_register_explainers(register: Callable[[type], None]) -> None:
    register(PWAEPatchError)


@xgen.hookimpl
def xgen_register_scorers(register: Callable[[type], None]) -> None:
    register(PWAEPatchScore)


@xgen.hookimpl
def xgen_register_claims(register: Callable[[type], None]) -> None:
    for claim in PWAE_CLAIMS:
        register(claim)
