"""ImageNet weights for the resnet18 backbone, from a local file only (nothing is downloaded)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch import nn

import xgen

RANDOM_NOTICE = (
    "cavga: backbone=resnet18 starts from random weights (xgen downloads nothing); the paper fine-tunes ImageNet "
    "weights: pass backbone_weights=PATH to a local torchvision resnet18 state_dict to do the same."
)


def adapt_first_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """The RGB conv1 weight (64, 3, 7, 7) for `channels` input channels: summed over RGB for grey images (a grey image
    repeated three times gives the same response); otherwise RGB repeated and scaled by 3 / channels."""
    if channels == weight.shape[1]:
        return weight
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(channels / weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise xgen.XgenError(
            f"backbone_weights file {path} does not exist; pass the path of a resnet18 state_dict saved with "
            "torch.save, or leave backbone_weights empty to start from random weights."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise xgen.XgenError(
            f"backbone_weights file {path} is not a readable tensor file ({detail}); save the weights with "
            "torch.save(resnet18.state_dict(), path)."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise xgen.XgenError(
            f"backbone_weights file {path} holds no state_dict of tensors; save it with "
            "torch.save(resnet18.state_dict(), path)."
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_backbone_weights(trunk: nn.Sequential, path: str) -> None:
    """Copy the torchvision ResNet-18 weights in file `path` into `networks.resnet_trunk`'s trunk (the `fc.*` entries
    are ignored; conv1 is adapted to the trunk's input channels). Raises XgenError if the file is missing,
    unreadable, or does not fit ResNet-18."""
    state = {k: v for k, v in _read(Path(path)).items() if not k.startswith("fc.")}
    if "conv1.weight" in state:
        state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], trunk.conv1.in_channels)
    expected = trunk.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        problems = [
            f"{len(found)} {what} such as '{found[0]}'"
            for found, what in ((missing, "missing"), (unexpected, "unexpected"), (wrong, "of another shape"))
            if found
        ]
        raise xgen.XgenError(
            f"backbone_weights file {path} does not fit torchvision's resnet18 ({', '.join(problems)}); pass the "
            "state_dict of torchvision.models.resnet18."
        )
    trunk.load_state_dict(state)


def initialise_backbone(trunk: nn.Sequential, path: str) -> None:
    """At the start of training: load the weights in `path`, or, with no path, warn once that they are random."""
    if path:
        load_backbone_weights(trunk, path)
    else:
        warnings.warn(RANDOM_NOTICE, UserWarning, stacklevel=3)
