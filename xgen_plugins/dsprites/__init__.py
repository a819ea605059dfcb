"""Dataset `dsprites`: dSprites' 737,280 factor combinations, rendered on demand, with their ground-truth factors."""

from __future__ import annotations

import numpy as np
import torch

import xgen
from xgen.errors import did_you_mean
from xgen_plugins.dsprites.factors import (
    COUNT,
    NAMES,
    SHAPES,
    SIZES,
    factor_values,
    factors_to_index,
    index_to_factors,
)
from xgen_plugins.dsprites.raster import render

__all__ = ["SHAPES", "DSprites", "factor_values", "factors_to_index", "index_to_factors", "render"]

PER_SHAPE = COUNT // len(SHAPES)


class DSprites(xgen.Dataset, xgen.Factors):
    """dSprites (Matthey et al. 2017) drawn procedurally by `render`: binary 64x64 white shapes on black.

    A seeded permutation of the 737,280 indices (NumPy's RandomState, whose stream never changes) gives test = its
    first `test_n` entries and train = the next `train_n` (of shape `normal` only, when set), so the test images
    depend on neither `train_n` nor `normal`.
    Each split carries `extras["factors"]` (N, 6) int64 factor indices and `extras["values"]` (N, 6) float32 real
    values (color, shape, scale, orientation, posX, posY; see `factor_values`); classes are the shape index.
    With `normal` empty the splits are unlabelled; with `normal=heart` test labels are 1 where shape != heart.

    As an `xgen.Factors` it has the five factors that vary (shape, scale, orientation, posX, posY; sizes 3, 6, 40,
    32, 32): color, which has one value, is left out as in disentanglement_lib, so grid positions are the dataset
    indices of the original file.
    """

    name = "dsprites"
    description = "dSprites' shapes (square, ellipse, heart) at 64x64, rendered from their factors; one-class by shape."
    positional = "normal"

    train_n: int = 10_000
    test_n: int = 2_000
    normal: str = ""
    split_seed: int = 0

    factor_names = NAMES[1:]
    factor_sizes = SIZES[1:]

    def validate(self) -> None:
        if self.normal and self.normal not in SHAPES:
            raise xgen.XgenError(
                f"dsprites has no shape '{self.normal}'; set normal to square, ellipse or heart, or leave it "
                f"empty for unlabelled splits.{did_you_mean(self.normal, SHAPES)}"
            )
        if self.train_n < 1 or self.test_n < 1:
            raise xgen.XgenError(
                f"dsprites needs train_n >= 1 and test_n >= 1, got train_n={self.train_n}, test_n={self.test_n}."
            )
        limit = PER_SHAPE if self.normal else COUNT
        if self.train_n + self.test_n > limit:
            raise xgen.XgenError(
                f"dsprites{' with normal=' + self.normal if self.normal else ''} can give train_n + test_n <= "
                f"{limit} images, got {self.train_n + self.test_n}; ask for fewer."
            )

    def indices(self, test: bool) -> torch.Tensor:
        """The dataset indices (N,) int64 of a split, in the seeded order the split lists them."""
        order = torch.from_numpy(np.random.RandomState(self.split_seed).permutation(COUNT))
        if test:
            return order[: self.test_n]
        rest = order[self.test_n :]
        if self.normal:
            rest = rest[index_to_factors(rest)[:, 1] == SHAPES.index(self.normal)]
        return rest[: self.train_n]

    def _part(self, test: bool) -> xgen.ImageSet:
        index = self.indices(test)
        factors = index_to_factors(index)
        shapes = factors[:, 1]
        split = "test" if test else "train"
        width = len(str(COUNT - 1))
        return xgen.ImageSet(
            images=render(factors),
            labels=(shapes != SHAPES.index(self.normal)).long() if self.normal else None,
            classes=shapes.clone(),
            names=[f"{split}_{i:0{width}d}_{SHAPES[s]}" for i, s in zip(index.tolist(), shapes.tolist(), strict=True)],
            class_names=dict(enumerate(SHAPES)),
            extras={"factors": factors, "values": factor_values(factors).float()},
        )

    def train(self) -> xgen.ImageSet:
        return self._part(test=False)

    def test(self) -> xgen.ImageSet:
        return self._part(test=True)

    def sample_train(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n images (n, 1, 64, 64) of uniformly drawn factors (the shape fixed to `normal` when set), the on-the-fly
        training data of the disentanglement papers. Draws can repeat test images: with 2,000 of 737,280 cells
        held out, about 0.3% of draws are test cells, and the disentanglement metrics sample fresh images anyway."""
        factors = self.sample_factors(n, generator)
        if self.normal:
            factors[:, 0] = SHAPES.index(self.normal)
        return render(factors)

    def render_factors(self, factors: torch.Tensor) -> torch.Tensor:
        """factors: (N, 5) int64 (shape, scale, orientation, posX, posY) -> (N, 1, 64, 64) float32 in {0, 1}."""
        factors = torch.as_tensor(factors)
        if factors.dim() != 2 or factors.shape[1] != len(self.factor_sizes):
            raise xgen.XgenError(
                f"dsprites renders factors of shape (N, 5) (shape, scale, orientation, posX, posY), got "
                f"{tuple(factors.shape)}."
            )
        return render(factors)

    def split_factors(self, split: xgen.ImageSet) -> torch.Tensor:
        """The factors (N, 5) int64 of a dsprites split, from its `extras["factors"]` without the color column."""
        if "factors" not in split.extras:
            raise xgen.XgenError("this split has no dsprites factors; pass a split from dsprites' train() or test().")
        return split.extras["factors"][:, 1:]


@xgen.hookimpl
def xgen_register_datasets(register):
    register(DSprites)
