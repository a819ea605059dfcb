"""The supplement's training augmentation: a random rotation of each image within +-15 degrees."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rotate(x: torch.Tensor, radians: torch.Tensor) -> torch.Tensor:
    """x: (N, C, H, W) -> each image turned about its centre by its angle in radians (N,), anticlockwise as displayed
    (rows down), like torch.rot90; bilinear, so values stay in the input's range.

    Borders are reflected rather than filled with black as torchvision's RandomRotation does: on a texture, black
    corners would teach the model that dark corners are normal. The sampling grid corrects for the aspect ratio,
    so a non-square image turns rigidly."""
    _, _, height, width = x.shape
    cos, sin, zero = radians.cos(), radians.sin(), torch.zeros_like(radians)
    theta = torch.stack(
        [torch.stack([cos, -sin * height / width, zero], dim=1), torch.stack([sin * width / height, cos, zero], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_rotation(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """x: (N, C, H, W) in [0, 1] -> `rotate` by an angle per image, uniform in [-degrees, degrees], drawn from torch's
    global generator (which `xgen.train` seeds)."""
    if degrees <= 0:
        return x
    angles = (torch.rand(x.shape[0], device=x.device) * 2 - 1) * math.radians(degrees)
    return rotate(x, angles)
