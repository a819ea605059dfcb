"""P-WAE's test-time errors (eq. 21-23): the per-pixel map, the whole-image error and the n x n tile errors, their
statistics over the training images, and the normalised scores and decision rule built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from xgen_plugins.pwae import tiles
from xgen_plugins.pwae.networks import PWAENet

Rule = Literal["image", "image+tiles"]


@dataclass
class PatchErrors:
    """pixel_map: (N, H, W) squared error (channel mean) at the input's size; image: (N,) its mean (eq. 22);
    tiles: (N, n, n) the mean squared error of each tile in the network's working space (eq. 23)."""

    pixel_map: torch.Tensor
    image: torch.Tensor
    tiles: torch.Tensor


def patch_errors(net: PWAENet, x: torch.Tensor) -> PatchErrors:
    """x: (N, C, H, W) in [0, 1], any size -> its errors, from the reconstruction of the unshuffled tiles (the test
    path never shuffles). Squared errors averaged, not the paper's l2 norms: monotone in them for a fixed size and
    comparable across sizes; the normalisation of eq. 21 removes the scale either way."""
    with torch.no_grad():
        fitted, recon = net.reconstruct_working(x)
        back = tiles.from_working(recon, net.input_size, (x.shape[2], x.shape[3]))
        pixel_map = (back - x).square().mean(dim=1)
        tile_errors = tiles.cut((recon - fitted).square(), net.n).flatten(2).mean(dim=2)
    return PatchErrors(pixel_map, pixel_map.flatten(1).mean(dim=1), tile_errors.view(-1, net.n, net.n))


def stacked(errors: PatchErrors) -> torch.Tensor:
    """(N, 1 + K): the whole-image error, then the K tile errors in row-major order."""
    return torch.cat([errors.image[:, None], errors.tiles.flatten(1)], dim=1)


def calibrate(net: PWAENet, images: torch.Tensor, batch_size: int = 64) -> None:
    """Set `net`'s error statistics (mean and std of the whole-image error and of each tile's error) over the
    defect-free training images (N, C, H, W), in eval mode, leaving the module's mode as it was."""
    was_training = net.training
    net.eval()
    device = net.error_mean.device
    errors = torch.cat(
        [stacked(patch_errors(net, images[i : i + batch_size].to(device))) for i in range(0, len(images), batch_size)]
    )
    net.error_mean.copy_(errors.mean(dim=0))
    net.error_std.copy_(errors.std(dim=0, unbiased=len(errors) > 1).nan_to_num(0.0).clamp_min(1e-12))
    net.calibrated.fill_(1)
    net.train(was_training)


def normalized(errors: PatchErrors, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(N, 1 + K) each error as standard deviations above its training mean: (e_k - mean_k) / std_k."""
    return (stacked(errors) - mean) / std


def score(z: torch.Tensor, rule: Rule) -> torch.Tensor:
    """z: (N, 1 + K) normalised errors -> (N,) the image score: the whole-image one (`image`, eq. 22 alone) or the
    largest of all (`image+tiles`, eq. 21-23), so that score > t exactly when some error exceeds its threshold
    eps_k = mean_k + t std_k."""
    return z[:, 0] if rule == "image" else z.amax(dim=1)


def decide(z: torch.Tensor, rule: Rule, threshold: float) -> torch.Tensor:
    """(N,) bool, eq. 21: anomalous when the whole-image error (or, with `image+tiles`, any tile error) exceeds its
    threshold mean_k + threshold * std_k."""
    return score(z, rule) > threshold
