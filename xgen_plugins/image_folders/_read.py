"""Decoding a list of image files into one tensor, with the size and channel checks both datasets share."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

import xgen
from xgen import images

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def _shown(path: Path, root: Path) -> str:
    """`path` relative to `root` when it lies inside it, as a POSIX string."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _convert(image: torch.Tensor, channels: int) -> torch.Tensor:
    """(C, H, W) -> (channels, H, W): grey repeated to RGB, or RGB to ITU-R 601 luma (as PIL's "L")."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1).clone()
    return (image * _LUMA).sum(0, keepdim=True).clamp_(0.0, 1.0)


def read_images(
    root: Path, paths: list[Path], size: int | None, channels: int | None
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Decode `paths` to (N, C, H, W) float32 in [0, 1], and return each file's original (H, W).

    C is `channels` (converted) or else the first image's; H = W = `size` (bilinear, antialiased) when set, else
    every image must share the first one's size. Mismatches are an XgenError naming both files.
    """
    shapes = [images.probe(p) for p in paths]
    first_c, first_h, first_w = shapes[0]
    for path, (c, h, w) in zip(paths, shapes, strict=True):
        if channels is None and c != first_c:
            raise xgen.XgenError(
                f"{_shown(path, root)} has {c} channel(s) but {_shown(paths[0], root)} has {first_c}; "
                "pass channels=1 or channels=3 to convert them all."
            )
        if size is None and (h, w) != (first_h, first_w):
            raise xgen.XgenError(
                f"{_shown(path, root)} is {w}x{h} pixels but {_shown(paths[0], root)} is {first_w}x{first_h}; "
                "pass size=N to resize every image to NxN."
            )
    target = channels or first_c
    decoded = []
    for path in paths:
        image = _convert(images.read(path, None, False), target)
        if size is not None and tuple(image.shape[1:]) != (size, size):
            image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            image = image[0].clamp_(0.0, 1.0)
        decoded.append(image)
    return torch.stack(decoded), [(h, w) for _, h, w in shapes]


def read_mask(root: Path, path: Path, image: Path, image_hw: tuple[int, int], size: int | None) -> torch.Tensor:
    """A ground-truth mask as (H, W) float32 in {0, 1}: any channel above one half is anomalous.

    The mask must have its image's original size `image_hw` (else an XgenError naming both files); it is then
    resized to size x size with nearest neighbour, so it stays binary.
    """
    _, h, w = images.probe(path)
    if (h, w) != image_hw:
        raise xgen.XgenError(
            f"{_shown(path, root)} is {w}x{h} pixels but its image {_shown(image, root)} is "
            f"{image_hw[1]}x{image_hw[0]}; a mask must match its image's size."
        )
    mask = (images.read(path, None, False).amax(0) > 0.5).float()
    if size is not None and (h, w) != (size, size):
        mask = F.interpolate(mask[None, None], size=(size, size), mode="nearest-exact")[0, 0]
    return mask


def read_masks(
    root: Path,
    masks: list[Path | None],
    paths: list[Path],
    shapes: list[tuple[int, int]],
    size: int | None,
) -> torch.Tensor:
    """(N, H, W) float32 in {0, 1}: each image's mask, or zeros where its entry in `masks` is None."""
    out = []
    for mask, path, hw in zip(masks, paths, shapes, strict=True):
        zeros = torch.zeros((size, size) if size is not None else hw)
        out.append(zeros if mask is None else read_mask(root, mask, path, hw, size))
    return torch.stack(out)
