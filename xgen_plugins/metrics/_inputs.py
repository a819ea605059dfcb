"""Turning metric inputs (torch tensors) into flat numpy arrays, with the checks every metric shares."""

from __future__ import annotations

import numpy as np
import torch

import xgen

_CHUNK = 1 << 20


def values(name: str, tensor: torch.Tensor, what: str) -> np.ndarray:
    """A flat float32 (or float64, kept as given) numpy view of maps or scores; NaN is an XgenError."""
    tensor = tensor.detach().cpu()
    if tensor.dtype != torch.float64:
        tensor = tensor.float()
    if tensor.numel() and torch.isnan(tensor.max()):
        raise xgen.XgenError(f"metric '{name}' got NaN in the {what}; remove or replace them before evaluating.")
    return tensor.contiguous().numpy().reshape(-1)


def binary(name: str, tensor: torch.Tensor, what: str) -> np.ndarray:
    """A flat bool numpy array of masks or labels; values other than 0 and 1 are an XgenError."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bool:
        return tensor.contiguous().numpy().reshape(-1)
    flat = tensor.contiguous().reshape(-1)
    for start in range(0, flat.numel(), _CHUNK):
        part = flat[start : start + _CHUNK]
        if not ((part == 0) | (part == 1)).all():
            raise xgen.XgenError(f"metric '{name}' needs binary {what} (0 or 1 only); threshold them first.")
    return (flat != 0).numpy()


def both_classes(name: str, positive: int, negative: int, unit: str) -> None:
    """Raise unless both classes are present."""
    if positive == 0 or negative == 0:
        raise xgen.XgenError(
            f"metric '{name}' needs both normal and anomalous {unit}, but all {positive + negative} are "
            f"{'normal' if positive == 0 else 'anomalous'}; evaluate on data with both."
        )
