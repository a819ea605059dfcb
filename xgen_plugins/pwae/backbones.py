"""The siamese tile encoder's trunk: a small conv net (the CPU default) or torchvision's ResNet-18/50 (the paper's
ImageNet ResNet-50), whose ImageNet weights are read from a local file only (nothing is downloaded)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

import xgen

RANDOM_NOTICE = (
    "pwae: backbone={} starts from random weights (xgen downloads nothing); the paper starts from ImageNet: pass "
    "backbone_weights=PATH to a local torchvision {} state_dict to do the same."
)


def small_trunk(channels: int, width: int) -> tuple[nn.Module, int]:
    """Three Conv 3x3 stride 2 + BatchNorm + ReLU stages (width, 2 width, 4 width) and a 2x2 average pool:
    tiles (T, channels, h, w) of any size >= 1 -> (T, 16 width) features."""
    widths = [width, 2 * width, 4 * width]
    layers: list[nn.Module] = []
    previous = channels
    for out in widths:
        layers += [nn.Conv2d(previous, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        previous = out
    layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
    return nn.Sequential(*layers), 4 * previous


def resnet_trunk(kind: str, channels: int) -> tuple[nn.Module, int]:
    """torchvision's resnet18 or resnet50 with its fc removed (the penultimate layer is the feature, as in the
    paper) and conv1 replaced for `channels` != 3: tiles (T, channels, h, w) -> (T, 512 or 2048)."""
    from torchvision import models

    net = getattr(models, kind)(weights=None)
    features = net.fc.in_features
    net.fc = nn.Identity()
    if channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net, features


def adapt_first_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """The RGB conv1 weight (64, 3, 7, 7) for `channels` inputs: summed over RGB for grey images (a grey image
    repeated three times gives the same response), otherwise RGB repeated and scaled by 3 / channels."""
    if channels == weight.shape[1]:
        return weight
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def load_weights(trunk: nn.Module, kind: str, path: str) -> None:
    """Copy a torchvision `kind` state_dict saved at `path` into `trunk` (fc ignored, conv1 adapted); raises
    XgenError when the file is missing, unreadable or of another network. Without a path, warns that the weights
    are random."""
    if not path:
        warnings.warn(RANDOM_NOTICE.format(kind, kind), UserWarning, stacklevel=3)
        return
    file = Path(path)
    if not file.is_file():
        raise xgen.XgenError(f"backbone_weights file {file} does not exist; pass a torchvision {kind} state_dict.")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception:
        raise xgen.XgenError(
            f"backbone_weights file {file} is not a readable tensor file; save it with torch.save({kind}.state_dict())."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise xgen.XgenError(f"backbone_weights file {file} holds no state_dict; save {kind}.state_dict().")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    if isinstance(state.get("conv1.weight"), torch.Tensor):
        state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], trunk.conv1.in_channels)
    expected = trunk.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise xgen.XgenError(
            f"backbone_weights file {file} does not fit torchvision's {kind}; pass the state_dict of "
            f"torchvision.models.{kind}."
        )
    trunk.load_state_dict(state)
