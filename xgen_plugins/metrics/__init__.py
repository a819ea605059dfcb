"""Built-in metrics: pixel and image AUROC, pixel AUPRO, IoU and best IoU, (maximum) balanced accuracy, F1 and
accuracy with bootstrap intervals. Pixel metrics pool every test pixel (the MVTec AD protocol)."""

from __future__ import annotations

from collections.abc import Callable

import xgen

from .aupro import PixelAUPRO
from .roc import ImageAUROC, PixelAUROC, roc_curve
from .thresholded import F1, Accuracy, BalancedAccuracy, BestIoU, IoU, MaxBalancedAccuracy

METRICS: tuple[type[xgen.Metric], ...] = (
    PixelAUROC,
    ImageAUROC,
    PixelAUPRO,
    IoU,
    BestIoU,
    BalancedAccuracy,
    MaxBalancedAccuracy,
    F1,
    Accuracy,
)

__all__ = [
    "F1",
    "METRICS",
    "Accuracy",
    "BalancedAccuracy",
    "BestIoU",
    "ImageAUROC",
    "IoU",
    "MaxBalancedAccuracy",
    "PixelAUPRO",
    "PixelAUROC",
    "roc_curve",
]


@xgen.hookimpl
def xgen_register_metrics(register: Callable[[type], None]) -> None:
    """Register every built-in metric."""
    for metric in METRICS:
        register(metric)
