"""Feature extractors for the metrics that compare image sets (FID, precision/recall): a spec string in, (N, F) out.

    features="inception:PATH"   torchvision's Inception-v3 with the weights in the local file PATH: the 2,048-d
                                average-pool features before `fc`
    features="CKPT"             the encoder mean of any xgen checkpoint, flattened: a domain-specific extractor

Nothing downloads: Inception weights must already be on disk. Every report names the extractor (`describe()`),
since FID and precision/recall values mean nothing without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xgen.errors import XgenError

INCEPTION = "inception:"
INCEPTION_SIZE = 299
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HOW_TO_GET = (
    "on a machine with internet run `import torch, torchvision; torch.save(torchvision.models.inception_v3("
    'weights="IMAGENET1K_V1").state_dict(), "{path}")` and copy the file here (xgen downloads nothing)'
)


class Extractor:
    """A loaded feature extractor. `extractor(images)` maps (N, C, H, W) in [0, 1] to (N, F) float32 on the CPU."""

    def __init__(self, spec: str, name: str, forward: Callable[[torch.Tensor], torch.Tensor], device: torch.device):
        self.spec = spec
        self.name = name
        self.device = device
        self._forward = forward

    def describe(self) -> str:
        """What the features are, for reports: the network, the layer, the input handling and the weights file."""
        return self.name

    def __repr__(self) -> str:
        return f"<xgen.features.Extractor {self.name}>"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 64, bar: Any = None, what: str = "") -> torch.Tensor:
        """images: (N, C, H, W) in [0, 1] -> (N, F) float32, in batches of batch_size (advancing a progress `bar`
        task named `what` when given)."""
        task = bar.add_task(what or f"features ({self.spec})", total=len(images), status="") if bar else None
        out = []
        for x in images.split(batch_size):
            out.append(self._forward(x.to(self.device)).flatten(1).float().cpu())
            if bar is not None:
                bar.advance(task, len(x))
        return torch.cat(out)


def inception_input(x: torch.Tensor) -> torch.Tensor:
    """x: (N, 1 or 3, H, W) in [0, 1] -> (N, 3, 299, 299) as torchvision's IMAGENET1K_V1 Inception expects: grey
    repeated to RGB, resized bilinearly (align_corners=False, no antialiasing, as pytorch-fid), then normalised with
    the ImageNet mean and standard deviation (the network's `transform_input=True` maps that to 2x - 1)."""
    if x.shape[1] not in (1, 3):
        raise XgenError(f"inception features need grey or RGB images, got {x.shape[1]} channels; convert them.")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False, antialias=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def inception_network(path: str | Path) -> nn.Module:
    """torchvision's `inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)` with the
    state dict in the local file `path` and `fc` replaced by the identity, in eval mode: (N, 3, 299, 299) ->
    (N, 2048). Torchvision's port, so FID values are close to but not bit-identical with pytorch-fid's TF-Inception."""
    from torchvision.models import inception_v3

    path = Path(path)
    if not path.is_file():
        raise XgenError(f"Inception weights file {path} does not exist; {_HOW_TO_GET.format(path=path)}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise XgenError(
            f"{path} could not be read as an Inception-v3 state dict ({detail}); {_HOW_TO_GET.format(path=path)}."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise XgenError(f"{path} does not hold a state dict of tensors; {_HOW_TO_GET.format(path=path)}.")
    network = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = (str(exc).splitlines()[1:2] or [str(exc)])[0].strip()[:160]
        raise XgenError(
            f"{path} is not a torchvision Inception-v3 state dict ({first}); {_HOW_TO_GET.format(path=path)}."
        ) from None
    network.fc = nn.Identity()
    return network.eval()


def open_extractor(spec: str, device: str | torch.device = "cpu") -> Extractor:
    """The extractor named by `spec`: `inception:PATH` or the path of an xgen checkpoint (its encoder mean)."""
    device = torch.device(device)
    if spec.startswith(INCEPTION) or spec == INCEPTION.rstrip(":"):
        path = spec[len(INCEPTION) :]
        if not path:
            raise XgenError(
                "features=inception needs the weights file, features=inception:PATH; "
                + _HOW_TO_GET.format(path="inception_v3.pt")
                + "."
            )
        network = inception_network(path).to(device)
        name = (
            f"inception-v3 (torchvision) 2048-d pool features, bilinear 299x299, ImageNet normalisation, weights {path}"
        )
        return Extractor(spec, name, lambda x: network(inception_input(x)), device)
    path = Path(spec)
    if not path.is_file():
        raise XgenError(
            f"features '{spec}' is neither inception:PATH nor an existing checkpoint file; pass inception:PATH (a "
            "torchvision Inception-v3 state dict) or an xgen checkpoint whose encoder mean serves as features."
        )
    from xgen.api import check_images
    from xgen.checkpoint import load

    model = load(path, device=device)
    model.check_requires({"encode"}, f"features={spec}")
    name = f"encoder mean of {path}" + (f" ({model.architecture})" if model.architecture else "")
    return Extractor(spec, name, lambda x: model.encode(check_images(x, model)).mean, device)


def extract(spec: str, images: torch.Tensor, batch_size: int = 64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Features (N, F) float32 of images (N, C, H, W) in [0, 1] by the extractor `spec` (see `open_extractor`)."""
    return open_extractor(spec, device)(images, batch_size)
