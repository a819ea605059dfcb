"""A vectorised dSprites renderer: pixel centres are tested against the shape's implicit equation, for a whole batch
at once, in the 27x27 window around each shape (the rest of the 64x64 canvas is always black).

Geometry, in frame units (the 64-pixel side is 1): pixel (row i, column j) has its centre at ((j + 0.5) / 64,
(i + 0.5) / 64); the shape's centre is at (0.2 + 0.6 posX, 0.2 + 0.6 posY), so posY grows downwards like rows.
At scale 1 every shape fits in a circle of radius 0.19 about its centre, so it stays inside the frame at every
orientation and position. Orientation turns the shape counter-clockwise on screen. Shapes at orientation 0:

- square: side 0.19 * sqrt(2) (17.2 px at scale 1), axis-aligned;
- ellipse: semi-axes 0.19 and 0.095 (12.2 x 6.1 px), the long axis horizontal;
- heart: (p^2 + q^2 - 1)^3 <= p^2 q^3 with (p, q) = (u, v) / 0.1462 + (0, 0.3), point down, 21 px wide.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from xgen_plugins.dsprites.factors import factor_values, full_factors

SIZE = 64
RADIUS = 0.19
MARGIN = 0.2
CHUNK = 4096
WINDOW = 27
_HEART_UNIT = RADIUS / 1.3
_HEART_CENTRE = 0.3


def _square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    half = RADIUS / math.sqrt(2.0)
    return (u.abs() <= half) & (v.abs() <= half)


def _ellipse(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u / RADIUS).square() + (v / (RADIUS / 2)).square() <= 1.0


def _heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    p = u / _HEART_UNIT
    q = v / _HEART_UNIT + _HEART_CENTRE
    return (p.square() + q.square() - 1.0).pow(3) <= p.square() * q.pow(3)


SHAPE_TESTS: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (_square, _ellipse, _heart)


def _window(centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices (n, WINDOW) of the window that holds a shape centred at `centre` (n,) frame units, and the
    offsets (n, WINDOW) float64 of their pixel centres from the shape's centre, in frame units."""
    start = (centre * SIZE - 0.5 - RADIUS * SIZE).floor().long().clamp(0, SIZE - WINDOW)
    pixels = start.unsqueeze(1) + torch.arange(WINDOW)
    return pixels, (pixels + 0.5) / SIZE - centre.unsqueeze(1)


def _rasterise(shape: int, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pixels inside `shape` for real factor values (n, 6) (see `factor_values`): (n, WINDOW, WINDOW) bool,
    with the rows (n, WINDOW) and columns (n, WINDOW) of the canvas that the window covers."""
    scale, angle, x, y = (values[:, k] for k in (2, 3, 4, 5))
    cols, dx = _window(MARGIN + (1 - 2 * MARGIN) * x)
    rows, down = _window(MARGIN + (1 - 2 * MARGIN) * y)
    cos, sin = (angle.cos() / scale).unsqueeze(1), (angle.sin() / scale).unsqueeze(1)
    dy = -down
    u = (cos * dx).float().unsqueeze(1) + (sin * dy).float().unsqueeze(2)
    v = (cos * dy).float().unsqueeze(2) - (sin * dx).float().unsqueeze(1)
    return SHAPE_TESTS[shape](u, v), rows, cols


def render(factors: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, 64, 64) float32 in {0, 1} (white shape on black) of factor indices (N, 6) or (N, 5).

    The batch is rendered in chunks of up to CHUNK images, one pass per shape; no Python loop runs per image.
    """
    factors = full_factors(factors)
    values = factor_values(factors)
    images = torch.zeros(len(factors), 1, SIZE, SIZE)
    for shape in range(len(SHAPE_TESTS)):
        members = (factors[:, 1] == shape).nonzero().flatten()
        for start in range(0, len(members), CHUNK):
            chunk = members[start : start + CHUNK]
            inside, rows, cols = _rasterise(shape, values[chunk])
            images[chunk.view(-1, 1, 1), 0, rows.unsqueeze(2), cols.unsqueeze(1)] = inside.float()
    return images
