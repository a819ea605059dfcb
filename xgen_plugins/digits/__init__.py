"""Dataset `digits`: scikit-learn's handwritten digits, upsampled, in the one-class protocol of the papers."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

import xgen


@functools.lru_cache(maxsize=4)
def _digits(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (N, 1, size, size) float32 in [0, 1] (bilinear upsampling of 8x8), and their classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def _split(classes: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """A boolean test mask: a seeded permutation within each class, the first `test_fraction` of it is test."""
    rng = np.random.RandomState(seed)
    is_test = np.zeros(len(classes), dtype=bool)
    for label in np.unique(classes):
        members = np.flatnonzero(classes == label)
        chosen = rng.permutation(members)[: round(test_fraction * len(members))]
        is_test[chosen] = True
    return is_test


class Digits(xgen.Dataset):
    """One-class digits: train on digit `normal`'s training split; test on every digit's test split with
    label = (digit != normal). The split is a seeded, per-class, deterministic partition of the 1,797 images."""

    name = "digits"
    description = "scikit-learn's 1,797 handwritten digits upsampled to 28x28; one-class (train on `normal`)."

    normal: int = 1
    size: int = 28
    test_fraction: float = 0.3
    split_seed: int = 0

    def validate(self) -> None:
        if not 0 <= self.normal <= 9:
            raise xgen.XgenError(f"digits option normal must be a digit 0-9, got {self.normal}.")
        if self.size < 8:
            raise xgen.XgenError(f"digits option size must be at least 8, got {self.size}.")
        if not 0 < self.test_fraction < 1:
            raise xgen.XgenError(f"digits option test_fraction must be in (0, 1), got {self.test_fraction}.")

    def _part(self, test: bool) -> xgen.ImageSet:
        images, classes = _digits(self.size)
        is_test = torch.from_numpy(_split(classes.numpy(), self.test_fraction, self.split_seed))
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
    register(Digits)
