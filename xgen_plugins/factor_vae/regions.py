"""Where each image's two most responding latent dimensions look: the reading of claim (v) that eq. 1 alone cannot
give, since eq. 1 on maps scaled to a maximum of 1 also falls when two maps sharpen on the same region."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xgen_plugins.factor_vae.losses import attention_disentanglement, top2_pair

#: A map's high-response region: where it reaches at least this fraction of its maximum.
HIGH = (0.5, 0.7)


def region_iou(pair: torch.Tensor, level: float) -> torch.Tensor:
    """pair: (N, 2, h, w), each map scaled to a maximum of 1 -> (N,): the IoU of the two maps' regions >= `level`
    (two empty regions count as 0)."""
    high = pair >= level
    both = (high[:, 0] & high[:, 1]).flatten(1).sum(1)
    either = (high[:, 0] | high[:, 1]).flatten(1).sum(1)
    return both / either.clamp_min(1)


def region_measures(maps: torch.Tensor, images: torch.Tensor) -> dict[str, float]:
    """maps: (N, D, h, w) >= 0, each scaled to a maximum of 1 (`attention_maps`' default); images: (N, 1, H, W) in
    [0, 1], a bright object on a dark ground (dSprites). Means over the images of: eq. 1 between the top-2 maps; their
    mean value (near 1 for flat maps); the IoU of their high-response regions at each `HIGH` level; the share of the
    regions >= 0.5 on the object and the share of the maps' mass on it; and the object's share of the image (what a
    uniform map puts on it). The object is the image area-averaged to the maps' size and thresholded at 0.5."""
    pair = top2_pair(maps)
    sprite = F.interpolate(images, size=maps.shape[2:], mode="area") > 0.5
    high = pair >= HIGH[0]
    on_sprite = (high & sprite).flatten(2).sum(2) / high.flatten(2).sum(2).clamp_min(1)
    mass = (pair * sprite).flatten(2).sum(2) / pair.flatten(2).sum(2).clamp_min(1e-8)
    return {
        "overlap_top2": float(attention_disentanglement(maps, "top2")),
        "map_mean": float(pair.mean()),
        **{f"region_iou_{level}": float(region_iou(pair, level).mean()) for level in HIGH},
        "region_on_sprite": float(on_sprite.mean()),
        "mass_on_sprite": float(mass.mean()),
        "sprite_area": float(sprite.float().mean()),
    }
