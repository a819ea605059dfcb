"""dSprites' six factors (Matthey et al. 2017) and the mixed-radix index over their 737,280 combinations.

Factor order and values follow the original `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`:
color (1 value), shape (square, ellipse, heart), scale (6 values in [0.5, 1]), orientation (40 values in
[0, 2 pi], both ends included), posX and posY (32 values each in [0, 1]). The last factor varies fastest.
"""

from __future__ import annotations

import numpy as np
import torch

import xgen

NAMES: tuple[str, ...] = ("color", "shape", "scale", "orientation", "posX", "posY")
SIZES: tuple[int, ...] = (1, 3, 6, 40, 32, 32)
SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
COUNT = int(np.prod(SIZES))
BASES: tuple[int, ...] = tuple(int(np.prod(SIZES[i + 1 :])) for i in range(len(SIZES)))

SCALES = torch.from_numpy(np.linspace(0.5, 1.0, 6))
ORIENTATIONS = torch.from_numpy(np.linspace(0.0, 2 * np.pi, 40))
POSITIONS = torch.from_numpy(np.linspace(0.0, 1.0, 32))


def full_factors(factors: torch.Tensor) -> torch.Tensor:
    """Factor indices (N, 6) int64, from (N, 6) or from (N, 5) without the color column; refuses out-of-range rows."""
    factors = torch.as_tensor(factors)
    if factors.dim() != 2 or factors.shape[1] not in (5, 6) or factors.is_floating_point():
        raise xgen.XgenError(
            f"dsprites factors must be an integer tensor (N, 6) or (N, 5) without color, got "
            f"{factors.dtype} {tuple(factors.shape)}."
        )
    factors = factors.long()
    if factors.shape[1] == 5:
        factors = torch.cat([torch.zeros_like(factors[:, :1]), factors], dim=1)
    sizes = torch.tensor(SIZES)
    bad = ((factors < 0) | (factors >= sizes)).any(dim=0)
    if bad.any():
        column = int(bad.nonzero()[0])
        raise xgen.XgenError(
            f"dsprites factor {NAMES[column]} takes indices 0-{SIZES[column] - 1}; "
            f"got values from {int(factors[:, column].min())} to {int(factors[:, column].max())}."
        )
    return factors


def index_to_factors(index: torch.Tensor) -> torch.Tensor:
    """The factor indices (N, 6) int64 of dataset indices (N,) in [0, 737280), as in the original file's order."""
    index = torch.as_tensor(index).long().reshape(-1)
    if index.numel() and (index.min() < 0 or index.max() >= COUNT):
        raise xgen.XgenError(f"dsprites indices must lie in [0, {COUNT}), got {int(index.min())}-{int(index.max())}.")
    return index.unsqueeze(1) // torch.tensor(BASES) % torch.tensor(SIZES)


def factors_to_index(factors: torch.Tensor) -> torch.Tensor:
    """The dataset indices (N,) int64 of factor indices (N, 6) or (N, 5); the exact inverse of `index_to_factors`."""
    return (full_factors(factors) * torch.tensor(BASES)).sum(dim=1)


def factor_values(factors: torch.Tensor) -> torch.Tensor:
    """The real factor values (N, 6) float64 of factor indices (N, 6) or (N, 5), laid out as the original
    `latents_values`: color 1.0, shape 1.0/2.0/3.0, scale, orientation in radians, posX, posY."""
    factors = full_factors(factors)
    return torch.stack(
        [
            torch.ones(len(factors), dtype=torch.float64),
            factors[:, 1].double() + 1.0,
            SCALES[factors[:, 2]],
            ORIENTATIONS[factors[:, 3]],
            POSITIONS[factors[:, 4]],
            POSITIONS[factors[:, 5]],
        ],
        dim=1,
    )
