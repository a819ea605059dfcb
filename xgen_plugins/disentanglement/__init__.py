"""Disentanglement metrics: `mig-binned` (disentanglement_lib's MIG on given codes and factors), `mig` (Chen et al.'s
estimator over a dataset's factor grid), `factorvae-score` (Kim & Mnih's majority vote), and the other axis of their
trade-off, `reconstruction-error`, with `total-correlation` (Chen et al.'s estimate over a test split). See
docs/methods/disentanglement-metrics.md."""

from __future__ import annotations

from collections.abc import Callable

import xgen

from .binned import BinnedMIG, discretize, mutual_information
from .factorvae import FactorVAEScore
from .latent_statistics import ReconstructionError, TotalCorrelation, aggregate_log_densities
from .mig import ChenMIG, gaussian_entropies

METRICS: tuple[type[xgen.Metric], ...] = (
    BinnedMIG,
    ChenMIG,
    FactorVAEScore,
    ReconstructionError,
    TotalCorrelation,
)

__all__ = [
    "METRICS",
    "BinnedMIG",
    "ChenMIG",
    "FactorVAEScore",
    "ReconstructionError",
    "TotalCorrelation",
    "aggregate_log_densities",
    "discretize",
    "gaussian_entropies",
    "mutual_information",
]


@xgen.hookimpl
def xgen_register_metrics(register: Callable[[type], None]) -> None:
    """Register the disentanglement metrics."""
    for metric in METRICS:
        register(metric)
