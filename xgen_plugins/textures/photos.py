"""scikit-image's 512x512 texture photographs, split by rows, and seeded square crops of them."""

from __future__ import annotations

import functools

import numpy as np
import torch

CATEGORIES = ("brick", "grass", "gravel")
SIDE = 512
TRAIN_ROWS = (0, 384)
TEST_ROWS = (384, 512)


@functools.lru_cache(maxsize=len(CATEGORIES))
def photograph(category: str) -> torch.Tensor:
    """The photograph `category` as (512, 512) float32 in [0, 1] (its uint8 grey levels / 255). Do not modify it."""
    import skimage.data

    pixels = getattr(skimage.data, category)()
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)


def origins(seed: int, stream: int, n: int, rows: tuple[int, int], size: int) -> torch.Tensor:
    """(n, 2) int64 top-left corners (row, col) of size x size crops lying inside `rows` = [start, stop).

    Crop i draws from its own generator `default_rng([seed, stream, i])`, so it does not depend on n."""
    corners = np.empty((n, 2), dtype=np.int64)
    low, high = [rows[0], 0], [rows[1] - size, SIDE - size]
    for i in range(n):
        corners[i] = np.random.default_rng([seed, stream, i]).integers(low, high, endpoint=True)
    return torch.from_numpy(corners)


def crop(photo: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """The crops of `photo` (H, W) at `corners` (N, 2): (N, 1, size, size), a new tensor."""
    offsets = torch.arange(size)
    rows = corners[:, 0, None] + offsets
    cols = corners[:, 1, None] + offsets
    return photo[rows[:, :, None], cols[:, None, :]].unsqueeze(1)
