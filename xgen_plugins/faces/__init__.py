"""Dataset `faces`: scikit-image's LFW subset (100 faces, 100 non-face patches, 25x25); faces are normal."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

import xgen

FACES = 100
NATIVE_SIZE = 25
CLASS_NAMES = {0: "face", 1: "nonface"}


@functools.lru_cache(maxsize=4)
def _lfw(size: int) -> torch.Tensor:
    """All 200 images as (200, 1, size, size) float32 in [0, 1]: the first 100 are faces, the rest non-faces.

    `skimage.data.lfw_subset` ships float64 already in [0, 1] (its docstring says uint8; integers are rescaled)."""
    from skimage.data import lfw_subset

    raw = lfw_subset()
    scaled = raw / np.iinfo(raw.dtype).max if np.issubdtype(raw.dtype, np.integer) else raw
    images = torch.from_numpy(scaled.astype(np.float32)).unsqueeze(1)
    if size != NATIVE_SIZE:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return images.clamp_(0.0, 1.0)


class Faces(xgen.Dataset):
    """One-class faces: train on a seeded split of the 100 faces; test on the held-out faces (label 0) and all 100
    non-face background patches (label 1). All non-faces are kept because none is ever trained on and AUROC, the
    protocol's metric, does not depend on the class ratio; taking fewer would only make it noisier (average
    precision does depend on it: its chance level is 100 / (100 + held-out faces), 0.77 by default)."""

    name = "faces"
    description = "scikit-image's LFW subset: 100 faces (normal) and 100 non-face patches, 25x25 grey; one-class."

    size: int = NATIVE_SIZE
    test_fraction: float = 0.3
    split_seed: int = 0

    def validate(self) -> None:
        if self.size < 8:
            raise xgen.XgenError(f"faces option size must be at least 8, got {self.size}.")
        if not 1 <= round(self.test_fraction * FACES) <= FACES - 1:
            raise xgen.XgenError(
                f"faces option test_fraction must hold out 1 to 99 of the 100 faces (0.01 to 0.99), "
                f"got {self.test_fraction}."
            )

    def _held_out(self) -> np.ndarray:
        """The sorted indices of the faces held out for test: the first `test_fraction` of a seeded permutation."""
        chosen = np.random.RandomState(self.split_seed).permutation(FACES)[: round(self.test_fraction * FACES)]
        return np.sort(chosen)

    def _part(self, index: np.ndarray, split: str) -> xgen.ImageSet:
        index_t = torch.from_numpy(index.astype(np.int64))
        classes = (index_t >= FACES).long()
        return xgen.ImageSet(
            images=_lfw(self.size)[index_t].clone(),
            labels=classes.clone(),
            classes=classes,
            names=[f"{split}_{i:04d}_{CLASS_NAMES[int(i >= FACES)]}" for i in index.tolist()],
            class_names=dict(CLASS_NAMES),
        )

    def train(self) -> xgen.ImageSet:
        return self._part(np.setdiff1d(np.arange(FACES), self._held_out()), "train")

    def test(self) -> xgen.ImageSet:
        return self._part(np.concatenate([self._held_out(), np.arange(FACES, 2 * FACES)]), "test")


@xgen.hookimpl
def xgen_register_datasets(register):
    register(Faces)
