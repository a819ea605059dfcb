"""Dataset `textures`: crops of scikit-image's texture photographs, with seeded synthetic defects and exact masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

import xgen
from xgen.errors import did_you_mean
from xgen_plugins.textures.defects import DEFECTS, plant
from xgen_plugins.textures.photos import CATEGORIES, TEST_ROWS, TRAIN_ROWS, crop, origins, photograph

_TRAIN, _TEST, _DEFECT = 0, 1, 2
MIN_SIZE = 16
MAX_SIZE = TEST_ROWS[1] - TEST_ROWS[0]
CLASS_NAMES = {0: "good", **{i + 1: kind for i, kind in enumerate(DEFECTS)}}


class Textures(xgen.Dataset):
    """xgen's stand-in for MVTec AD's texture categories: square crops of one of scikit-image's 512x512 grey
    photographs `brick`, `grass` or `gravel` (bundled with scikit-image, no download).

    Train: `train_n` defect-free crops from rows [0, 384) of the photograph. Test: `test_n` crops from the held-out
    rows [384, 512); even indices are defect-free, odd ones carry one synthetic defect, the defect types of `defects`
    taking turns (image 2k + 1 gets type k mod len(types)), so a split is half good, half defective and balanced.
    Images are (N, 1, size, size) float32 in [0, 1] (grey level / 255); test masks (N, size, size) float32 in {0, 1}
    are exactly the changed pixels: mask == (test image != clean crop), and every masked pixel differs from the
    clean crop by at least 2/255. `clean_test()` returns the same test crops without their defects.

    Defects (classes 1-5; 0 is good), sized as fractions of the crop side so that size=128 looks like size=64
    enlarged: `scratch` a thin bright or dark polyline; `stain` a soft-edged darker or lighter blob; `hole` a dark
    blob; `paste` a rectangle cut from another category's held-out rows; `blur` a Gaussian-blurred blob.
    `defects` picks a subset, joined by "+" (`defects=scratch+hole`), or "all".

    Determinism: crop i of a split uses the generator `default_rng([seed, split, i])` and its defect
    `default_rng([seed, 2, i])`, so the same options give bit-identical data in any process, and a smaller `train_n`
    or `test_n` gives a prefix of a larger one. `extras["origin"]` holds each crop's (row, col) in the photograph.
    """

    name = "textures"
    description = "crops of scikit-image's brick, grass or gravel photograph; test crops carry synthetic defects."
    positional = "category"

    category: str = "brick"
    size: int = 64
    train_n: int = 1000
    test_n: int = 200
    defects: str = "all"
    seed: int = 0

    def validate(self) -> None:
        if self.category not in CATEGORIES:
            if self.category in DEFECTS:
                raise xgen.XgenError(
                    f"textures got the defect type '{self.category}' as its category; join defect types with '+', "
                    "as in defects=scratch+hole, since commas separate options."
                )
            raise xgen.XgenError(
                f"textures has no category '{self.category}'.{did_you_mean(self.category, CATEGORIES)}"
            )
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise xgen.XgenError(
                f"textures option size must be between {MIN_SIZE} and {MAX_SIZE} (test crops come from the "
                f"{MAX_SIZE} held-out rows), got {self.size}."
            )
        if self.train_n < 1 or self.test_n < 2:
            raise xgen.XgenError(
                f"textures needs train_n >= 1 and test_n >= 2, got train_n={self.train_n}, test_n={self.test_n}."
            )
        if self.seed < 0:
            raise xgen.XgenError(f"textures option seed must be a non-negative integer, got {self.seed}.")
        for kind in self.defect_types():
            if kind not in DEFECTS:
                raise xgen.XgenError(f"textures has no defect type '{kind}'.{did_you_mean(kind, DEFECTS)}")

    def defect_types(self) -> list[str]:
        """The defect types in use, in the canonical order of DEFECTS (the order they take turns in the test split)."""
        if self.defects.strip() == "all":
            return list(DEFECTS)
        chosen = {part.strip() for part in self.defects.split("+")}
        return [kind for kind in DEFECTS if kind in chosen] + sorted(chosen - set(DEFECTS))

    def train(self) -> xgen.ImageSet:
        corners = origins(self.seed, _TRAIN, self.train_n, TRAIN_ROWS, self.size)
        zeros = torch.zeros(self.train_n, dtype=torch.int64)
        width = self._width(self.train_n)
        return xgen.ImageSet(
            images=crop(photograph(self.category), corners, self.size),
            labels=zeros,
            classes=zeros.clone(),
            names=[f"train_{i:0{width}d}" for i in range(self.train_n)],
            class_names=dict(CLASS_NAMES),
            extras={"origin": corners},
        )

    def clean_test(self) -> xgen.ImageSet:
        """The test crops without their defects: same names, classes and origins; labels 0 and no masks."""
        corners = origins(self.seed, _TEST, self.test_n, TEST_ROWS, self.size)
        types = self.defect_types()
        classes = [0 if i % 2 == 0 else DEFECTS.index(types[(i // 2) % len(types)]) + 1 for i in range(self.test_n)]
        width = self._width(self.test_n)
        return xgen.ImageSet(
            images=crop(photograph(self.category), corners, self.size),
            labels=torch.zeros(self.test_n, dtype=torch.int64),
            classes=torch.tensor(classes, dtype=torch.int64),
            names=[f"test_{i:0{width}d}_{CLASS_NAMES[c]}" for i, c in enumerate(classes)],
            class_names=dict(CLASS_NAMES),
            extras={"origin": corners},
        )

    def test(self) -> xgen.ImageSet:
        split = self.clean_test()
        images = split.images.clone()
        masks = torch.zeros(self.test_n, self.size, self.size)
        donors = [photograph(c)[TEST_ROWS[0] : TEST_ROWS[1]].numpy() for c in CATEGORIES if c != self.category]
        for i in range(1, self.test_n, 2):
            rng = np.random.default_rng([self.seed, _DEFECT, i])
            kind = CLASS_NAMES[int(split.classes[i])]
            image, mask = plant(kind, images[i, 0].numpy(), rng, donors)
            images[i, 0] = torch.from_numpy(image)
            masks[i] = torch.from_numpy(mask)
        return dataclasses.replace(split, images=images, labels=(split.classes > 0).long(), masks=masks)

    @staticmethod
    def _width(n: int) -> int:
        return max(4, len(str(n - 1)))


@xgen.hookimpl
def xgen_register_datasets(register):
    register(Textures)
