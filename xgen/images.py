"""Reading images for the CLI: collect files from folders, check them against the model before any work, decode."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from xgen.errors import InputError, XgenError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm", ".npy"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True)
class ImageFile:
    """An input image and the output stem (relative path without suffix) its maps are written under."""

    path: Path
    stem: PurePath


def collect(inputs: list[Path]) -> list[ImageFile]:
    """Files as given, and the images inside folders (recursively, sorted), with unique output stems."""
    found: list[ImageFile] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found_here = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            files = sorted(found_here, key=lambda p: p.parts)
            if not files:
                raise XgenError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
            found.extend(ImageFile(p, p.relative_to(path).with_suffix("")) for p in files)
        elif path.is_file():
            found.append(ImageFile(path, PurePath(path.stem)))
        else:
            raise XgenError(f"input {path} does not exist; pass image files or folders of images.")
    seen: dict[str, Path] = {}
    for item in found:
        stem = str(item.stem)
        if stem in seen:
            raise XgenError(
                f"{seen[stem]} and {item.path} would both write maps named '{item.stem}'; "
                "explain them in separate runs or rename one."
            )
        seen[stem] = item.path
    return found


def _channels(mode: str) -> int:
    return 1 if mode in _GRAY_MODES else 3


def probe(path: Path) -> tuple[int, int, int]:
    """(C, H, W) of an image from its header, without decoding the pixels (a PNG's from its first 26 bytes: grey
    and grey-alpha are one channel, the other colour types three, as when Pillow opens them)."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read {path} as a NumPy array ({exc}); replace or remove it.") from None
        if array.ndim == 2:
            return (1, *array.shape)
        if array.ndim == 3 and array.shape[0] in (1, 3):
            return tuple(array.shape)  # type: ignore[return-value]
        raise InputError(f"{path} has shape {array.shape}; an array image must be (H, W) or (C, H, W) with C 1 or 3.")
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
        if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return (1 if head[25] in (0, 4) else 3, height, width)
        with Image.open(path) as image:
            return (_channels(image.mode), image.height, image.width)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot decode {path} as an image ({type(exc).__name__}); replace or remove it.") from None


def check_fits(path: Path, shape: tuple[int, int, int], expected: tuple[int, int, int] | None, resize: bool) -> None:
    """Raise InputError if an image of `shape` cannot be fed to a model expecting `expected` (C, H, W)."""
    if expected is None:
        return
    channels, height, width = shape
    if channels != expected[0]:
        want = "grayscale" if expected[0] == 1 else "RGB"
        raise InputError(
            f"{path} has {channels} channel(s) but the model expects {expected[0]}; convert it to {want} first."
        )
    if (height, width) != tuple(expected[1:]) and not resize:
        raise InputError(
            f"{path} is {width}x{height} pixels but the model expects {expected[2]}x{expected[1]}; "
            "pass --resize to resize it."
        )


def read(path: Path, expected: tuple[int, int, int] | None, resize: bool) -> torch.Tensor:
    """Decode one image to (C, H, W) float32 in [0, 1], resized (bilinear) to `expected` when `resize` is set."""
    if path.suffix.lower() == ".npy":
        check_fits(path, probe(path), expected, resize)
        array = np.load(path, allow_pickle=False)
        if not np.issubdtype(array.dtype, np.number):
            raise InputError(f"{path} holds {array.dtype} values; an array image must be numeric.")
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if tensor.dim() == 2:
            tensor = tensor.unsqueeze(0)
        if not torch.isfinite(tensor).all():
            raise InputError(f"{path} contains NaN or Inf values; clean the array first.")
        if tensor.min() < 0 or tensor.max() > 1:
            raise InputError(f"{path} has values outside [0, 1]; scale the array to [0, 1] first.")
    else:
        try:
            with Image.open(path) as image:
                mode = image.mode
                check_fits(path, (_channels(mode), image.height, image.width), expected, resize)
                if mode in _SIXTEEN_BIT:
                    array = np.asarray(image, dtype=np.float32) / 65535.0
                elif mode == "F":
                    array = np.asarray(image, dtype=np.float32)
                else:
                    wanted = "L" if _channels(mode) == 1 else "RGB"
                    array = np.asarray(image if mode == wanted else image.convert(wanted), dtype=np.float32)
                    array /= np.float32(255.0)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InputError(f"cannot decode {path} as an image ({exc}); replace or remove it.") from None
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)
        exact = mode in _SIXTEEN_BIT or mode == "F"
        if exact and (not torch.isfinite(tensor).all() or tensor.min() < 0 or tensor.max() > 1):
            raise InputError(f"{path} has NaN, Inf or values outside [0, 1]; convert it to an 8-bit image first.")
    if expected is not None and tuple(tensor.shape[1:]) != tuple(expected[1:]):
        tensor = F.interpolate(tensor[None], size=tuple(expected[1:]), mode="bilinear", align_corners=False)[0]
        tensor = tensor.clamp_(0.0, 1.0)
    return tensor
