"""Generator metrics from feature sets: the Fréchet distance (FID) and improved precision and recall."""

from __future__ import annotations

from collections.abc import Callable

import xgen

from .fid import FID, frechet_distance, moments, trace_sqrt_product
from .manifold import Precision, Recall, coverage, knn_radii

METRICS: tuple[type[xgen.Metric], ...] = (FID, Precision, Recall)

__all__ = [
    "FID",
    "METRICS",
    "Precision",
    "Recall",
    "coverage",
    "frechet_distance",
    "knn_radii",
    "moments",
    "trace_sqrt_product",
]


@xgen.hookimpl
def xgen_register_metrics(register: Callable[[type], None]) -> None:
    """Register fid, precision and recall."""
    for metric in METRICS:
        register(metric)
