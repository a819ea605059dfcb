"""The data contract: `Dataset` plugins return `ImageSet`s; specs look like `NAME:key=value,...`."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from xgen.errors import XgenError
from xgen.options import Configurable


@dataclass
class ImageSet:
    """A split of a dataset.

    images: (N, C, H, W) float32 in [0, 1]. labels: (N,) int64, 1 = anomalous, or None.
    masks: (N, H, W) float32 in {0, 1} (ground-truth anomalous pixels), or None.
    classes: (N,) int64 source class of each image (e.g. the digit or the defect type), or None.
    names: one file stem per image. class_names: the name of each class value, where the dataset has them.
    extras: other per-image tensors with N rows (e.g. dSprites' ground-truth factors), kept by `subset`.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    classes: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    class_names: dict[int, str] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dim() != 4:
            raise ValueError(f"ImageSet.images must be (N, C, H, W), got {tuple(self.images.shape)}.")
        if not self.names:
            width = len(str(max(n - 1, 0)))
            self.names = [f"{i:0{width}d}" for i in range(n)]
        for attr in ("labels", "masks", "classes"):
            value = getattr(self, attr)
            if value is not None and value.shape[0] != n:
                raise ValueError(f"ImageSet.{attr} has {value.shape[0]} rows for {n} images.")
        for key, value in self.extras.items():
            if value.shape[0] != n:
                raise ValueError(f"ImageSet.extras['{key}'] has {value.shape[0]} rows for {n} images.")
        if len(self.names) != n:
            raise ValueError(f"ImageSet.names has {len(self.names)} entries for {n} images.")

    def __len__(self) -> int:
        return self.images.shape[0]

    @classmethod
    def one_class(
        cls,
        images: torch.Tensor,
        classes: torch.Tensor,
        is_test: torch.Tensor,
        normal: int,
        *,
        test: bool,
        kind: str,
        class_names: dict[int, str] | None = None,
    ) -> ImageSet:
        """A split of a labelled collection under the one-class protocol of the papers: the test split is every image
        where `is_test` (N,) bool, labelled 1 where its class is not `normal`; the training split is the other images
        of class `normal`. images: (N, C, H, W); classes: (N,) int64. Names are `test_0042_digit7` for `kind="digit"`.
        """
        keep = is_test if test else (~is_test) & (classes == normal)
        index = keep.nonzero().flatten()
        split = "test" if test else "train"
        return cls(
            images=images[index].clone(),
            labels=(classes[index] != normal).long(),
            classes=classes[index].clone(),
            names=[f"{split}_{i:04d}_{kind}{classes[i].item()}" for i in index.tolist()],
            class_names=dict(class_names or {}),
        )

    def subset(self, index: torch.Tensor | list[int]) -> ImageSet:
        """The images at `index` (a list of positions or a boolean mask), with their labels, masks and names."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return ImageSet(
            self.images[index],
            pick(self.labels),
            pick(self.masks),
            pick(self.classes),
            [self.names[i] for i in index.tolist()],
            dict(self.class_names),
            {key: value[index] for key, value in self.extras.items()},
        )


class Dataset(Configurable, abc.ABC):
    """A named data source. Options are annotated class attributes; `positional` names the option that a bare
    value after the colon fills (`textures:brick` -> `category="brick"`)."""

    kind: ClassVar[str] = "dataset"
    positional: ClassVar[str | None] = None

    @abc.abstractmethod
    def train(self) -> ImageSet:
        """The training split (normal images only for one-class protocols)."""

    @abc.abstractmethod
    def test(self) -> ImageSet:
        """The test split, with labels (and masks where the dataset has them)."""

    def sample_train(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """n fresh training images (n, C, H, W) in [0, 1] drawn with `generator`, for datasets that can render any
        number (from sampled ground-truth factors, say); None, the default, for a fixed training split.
        `xgen train --steps` draws every batch from it when it gives images."""
        return None

    def spec(self) -> str:
        """The spec string that rebuilds this dataset: its first option (bare if it is the positional one), then any
        option changed from its default."""
        options = self.options()
        first = next(iter(options), None)
        shown = {k: v for k, v in self.config().items() if k == first or v != options[k].default}
        if not shown:
            return self.name
        return self.name + ":" + ",".join(str(v) if k == self.positional else f"{k}={v}" for k, v in shown.items())


class Factors(abc.ABC):
    """A dataset generated from discrete ground-truth factors that it can enumerate and render.

    Mix it into a `Dataset` (`class DSprites(xgen.Dataset, xgen.Factors)`) so that metrics which must draw images
    with chosen factors (the FactorVAE score, Chen et al.'s MIG) can use it. Factor k takes the indices
    0 .. factor_sizes[k] - 1; only factors that vary are listed (dSprites' single color is left out, as in
    disentanglement_lib). The grid of all combinations is numbered with the last factor varying fastest.
    """

    factor_names: ClassVar[tuple[str, ...]]
    factor_sizes: ClassVar[tuple[int, ...]]

    @abc.abstractmethod
    def render_factors(self, factors: torch.Tensor) -> torch.Tensor:
        """factors: (N, K) int64 indices -> images (N, C, H, W) float32 in [0, 1]."""

    @abc.abstractmethod
    def split_factors(self, split: ImageSet) -> torch.Tensor:
        """The factors (N, K) int64 of a split's images (an ImageSet from this dataset's `train` or `test`)."""

    @property
    def factor_count(self) -> int:
        """The number of factor combinations, i.e. of grid cells (737,280 for dSprites)."""
        return math.prod(self.factor_sizes)

    def grid_factors(self, index: torch.Tensor) -> torch.Tensor:
        """The factors (N, K) int64 of grid positions index: (N,) in [0, factor_count), last factor fastest."""
        index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.factor_count):
            raise XgenError(
                f"grid positions must lie in [0, {self.factor_count}); got {int(index.min())}-{int(index.max())}."
            )
        sizes = torch.tensor(self.factor_sizes, dtype=torch.int64)
        bases = torch.tensor([math.prod(self.factor_sizes[k + 1 :]) for k in range(len(sizes))], dtype=torch.int64)
        return index.unsqueeze(1) // bases % sizes

    def sample_factors(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n factor rows (n, K) int64, each factor drawn uniformly and independently (disentanglement_lib's
        `sample_factors`)."""
        sizes = torch.tensor(self.factor_sizes, dtype=torch.float64)
        return (torch.rand(n, len(sizes), generator=generator, dtype=torch.float64) * sizes).long()


def parse_spec(spec: str) -> tuple[str, dict[str, Any], str | None]:
    """Split "name:key=value,...,bare" into (name, options, bare value or None)."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise XgenError(f"data spec '{spec}' has no dataset name; write it as NAME or NAME:key=value,...")
    options: dict[str, Any] = {}
    bare: str | None = None
    if rest:
        for part in rest.split(","):
            if not part:
                continue
            key, eq, value = part.partition("=")
            if not eq:
                if bare is not None:
                    raise XgenError(f"data spec '{spec}' has two values without a key; write key=value.")
                bare = part
            else:
                options[key.strip()] = value.strip()
    return name, options, bare
