"""Disentanglement metrics: `mig-binned` (disentanglement_lib's MIG on given codes and factors), `mig` (Chen et al.'s
estimator over a dataset's factor grid) and `factorvae-score` (Kim & Mnih's majority vote). See
docs/methods/disentanglement-metrics.md."""

from __future__ import annotations

from collections.abc import Callable

import xgen

from .binned import BinnedMIG, discretize, mutual_information
from .factorvae import FactorVAEScore
from .mig import ChenMIG, gaussian_entropies

METRICS: tuple[type[xgen.Metric], ...] = (BinnedMIG, ChenMIG, FactorVAEScore)

__all__ = [
    "METRICS",
    "BinnedMIG",
    "ChenMIG",
    "FactorVAEScore",
    "discretize",
    "gaussian_entropies",
    "mutual_information",
]


@xgen.hookimpl
def xgen_register_metrics(register: Callable[[type], None]) -> None:
    """Register the three disentanglement metrics."""
    for metric in METRICS:
        register(metric)
