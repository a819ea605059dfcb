"""The base classes plugins subclass: Explainer, Scorer, Metric, and the Explanation an explainer returns."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from xgen.errors import XgenError, did_you_mean
from xgen.options import Configurable

if TYPE_CHECKING:
    from xgen.model import Model

#: What a method may require of a model, and the `xgen.wrap` argument that supplies each.
MODEL_REQUIREMENTS: dict[str, str] = {
    "encode": "encode=",
    "decode": "decode=",
    "layers": "a torch.nn.Module (not TorchScript) so that layer= can name a hookable layer",
    "classifier": "classifier=",
    "discriminator": "discriminator=",
    "auxiliary": "auxiliary=",
    "generate": "prior=",
}

#: Every input a metric may take, with what it is. Array inputs accept torch tensors (any device), numpy arrays and
#: (nested) sequences of numbers, and reach `Metric.compute` as torch tensors.
METRIC_INPUTS: dict[str, str] = {
    "maps": "(N, H, W) anomaly maps",
    "masks": "(N, H, W) ground-truth masks in {0, 1}",
    "scores": "(N,) image-level anomaly scores",
    "labels": "(N,) image labels in {0, 1}, 1 = anomalous",
    "codes": "(N, D) latent codes",
    "factors": "(N, K) integer ground-truth factors",
    "real": "(N, F) features of real images",
    "fake": "(M, F) features of generated images",
    "model": "an xgen.Model (or a module xgen.wrap accepts)",
    "data": "an xgen.Dataset or a data spec such as 'dsprites'",
}

#: The inputs that are arrays (the others are a model and a dataset).
ARRAY_INPUTS: frozenset[str] = frozenset(METRIC_INPUTS) - {"model", "data"}

#: What a metric may require of its inputs.
METRIC_REQUIREMENTS: frozenset[str] = frozenset(METRIC_INPUTS)

#: Pairs of array inputs that must agree: (first, second, which dimensions, what to tell the user).
_AGREEING = (
    ("maps", "masks", "shape", "one mask per map at the map's resolution"),
    ("scores", "labels", "rows", "give one label per image"),
    ("codes", "factors", "rows", "give one row of factors per code"),
    ("real", "fake", "width", "extract both with the same feature extractor"),
)


@dataclass
class Explanation:
    """What an explainer returns for a batch of N images of size H x W.

    anomaly_map: (N, H, W) float32 at input resolution, higher = more anomalous (or more attended).
    score: (N,) image-level anomaly score, or None where the method defines none.
    details: method-specific extras (e.g. `per_dim` maps), documented by each plugin.
    """

    anomaly_map: torch.Tensor
    score: torch.Tensor | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.anomaly_map, torch.Tensor) or self.anomaly_map.dim() != 3:
            shape = tuple(getattr(self.anomaly_map, "shape", ()))
            raise ValueError(f"Explanation.anomaly_map must be an (N, H, W) tensor, got shape {shape}.")
        self.anomaly_map = self.anomaly_map.detach().float()
        if self.score is not None:
            self.score = self.score.detach().float().reshape(-1)
            if self.score.shape[0] != self.anomaly_map.shape[0]:
                raise ValueError(
                    f"Explanation.score has {self.score.shape[0]} entries for {self.anomaly_map.shape[0]} maps."
                )

    def __len__(self) -> int:
        return self.anomaly_map.shape[0]

    def cpu(self) -> Explanation:
        """A copy with every tensor on the CPU."""
        details = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in self.details.items()}
        score = None if self.score is None else self.score.cpu()
        return Explanation(self.anomaly_map.cpu(), score, details)


class Method(Configurable):
    """Shared by Explainer and Scorer: a name, a description and what the model must provide."""

    requires: ClassVar[set[str] | frozenset[str]] = frozenset()


class Explainer(Method, abc.ABC):
    """Produces anomaly (or attention) maps, and image-level scores where the method defines them.

    Subclass it, set `name`, `description` and `requires`, declare options as annotated class attributes with
    defaults, and implement `explain`. `xgen.explain(model, x, plugin=name, **options)` builds
    `Subclass(**options)` and calls `explain(model, x)` after checking `x` and `requires`.
    """

    kind: ClassVar[str] = "explainer"

    @abc.abstractmethod
    def explain(self, model: Model, x: torch.Tensor) -> Explanation:
        """x: (N, C, H, W) float32 in [0, 1] on the model's device. Returns maps of shape (N, H, W)."""


#: The values a fitted scorer's state may hold: what `torch.load(weights_only=True)` reads back without running code.
STATE_VALUES: tuple[type, ...] = (torch.Tensor, bool, int, float, str)


class Scorer(Method, abc.ABC):
    """Produces image-level anomaly scores only (higher = more anomalous).

    Subclass it, set `name`, `description` and `requires`, declare options as annotated class attributes and
    implement `score`. `xgen.score(model, x, plugin=name, **options)` builds `Subclass(**options)`, calls
    `check_model(model)` and then `score(model, x)` after checking `x` and `requires`.

    A scorer that learns from normal images (a one-class detector on embeddings, say) also implements `fit`, which
    returns what it learned as a dict of plain values (`STATE_VALUES`: tensors, bools, ints, floats, strings; never a
    pickled object). `xgen.fit_scorer(model, data, name, **options)` calls `fit` on the normal images and keeps the
    state in `model.metadata["fitted_scorers"][scorer.key]`, so `xgen.save` writes it and `xgen.load` reads it back
    with `weights_only=True`; `score` reads it with `self.fitted(model)`. The key holds every option, so a state is
    only ever used with the options it was fitted with, and an unfitted scorer is refused before any work.
    """

    kind: ClassVar[str] = "scorer"

    @abc.abstractmethod
    def score(self, model: Model, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) float32 in [0, 1]. Returns (N,) float32."""

    def fit(self, model: Model, x: torch.Tensor) -> dict[str, Any]:
        """x: (N, C, H, W) float32 in [0, 1], normal images only. Returns the state `score` needs, as a dict of
        `STATE_VALUES`. Only scorers that learn implement it."""
        raise XgenError(f"scorer '{self.name}' learns nothing from images; call xgen.score without fitting it.")

    @classmethod
    def learns(cls) -> bool:
        """Whether this scorer must be fitted (it implements `fit`) before it can score."""
        return cls.fit is not Scorer.fit

    def check_model(self, model: Model) -> None:
        """Raise XgenError, before any work, if this scorer with these options cannot run on `model` (a layer or tap
        the model lacks). `requires` covers the fixed needs; this covers the ones options decide."""

    @property
    def key(self) -> str:
        """The name and every option in alphabetical order, `NAME:key=value,...`: where the fitted state is kept."""
        config = self.config()
        return self.name + "".join((":" if i == 0 else ",") + f"{k}={config[k]}" for i, k in enumerate(sorted(config)))

    @property
    def spec(self) -> str:
        """The name and the options changed from their defaults, as the CLI's `--scorer NAME:key=value` takes it."""
        declared = self.options()
        changed = {k: v for k, v in self.config().items() if v != declared[k].default}
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in changed.items()) if changed else "")

    def is_fitted(self, model: Model) -> bool:
        """Whether `model` holds a state fitted for this scorer with these options."""
        return self.key in model.metadata.get("fitted_scorers", {})

    def fitted(self, model: Model) -> dict[str, Any]:
        """The state `fit` returned for these options, tensors on the model's device; XgenError saying how to fit
        it when the model holds none."""
        record = model.metadata.get("fitted_scorers", {}).get(self.key)
        if record is None:
            others = [key for key in model.metadata.get("fitted_scorers", {}) if key.partition(":")[0] == self.name]
            held = f" (this model holds it fitted as {', '.join(others)})" if others else ""
            raise XgenError(
                f"scorer '{self.spec}' has not been fitted on this model{held}; fit it on normal images first with "
                f"xgen.fit_scorer(model, data, '{self.name}', ...) or 'xgen fit-scorer --model CKPT --scorer "
                f"{self.spec} --data SPEC'."
            )
        device = model.device
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in record["state"].items()}


def as_array_input(metric: str, name: str, value: Any) -> torch.Tensor:
    """`value` (a torch tensor, a numpy array or a nested sequence of numbers) as a tensor; anything else is an
    XgenError naming the input and the types accepted. Tensors keep their device; numpy arrays share memory."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (np.ndarray, np.generic, list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError:
            array = np.empty(0, dtype=object)
        if array.dtype.kind in "biuf":
            if not array.flags.writeable:
                array = array.copy()
            return torch.from_numpy(np.ascontiguousarray(array))
        what = f"a {type(value).__name__} of {array.dtype}" if array.dtype.kind != "O" else "a ragged or mixed sequence"
    else:
        what = type(value).__name__
    raise XgenError(
        f"metric '{metric}' got {name} as {what}; pass {METRIC_INPUTS[name]} as a numpy array, a torch tensor "
        "or a sequence of numbers."
    )


class Metric(Configurable, abc.ABC):
    """Compares maps, scores, codes or features with ground truth. `requires` names the inputs it needs (keys of
    `METRIC_INPUTS`); `optional` names inputs it uses when given."""

    kind: ClassVar[str] = "metric"
    requires: ClassVar[set[str] | frozenset[str]] = frozenset()
    optional: ClassVar[set[str] | frozenset[str]] = frozenset()
    #: Whether `xgen evaluate` computes it when no metric is named. False for metrics that sample a model over a
    #: dataset (minutes to hours on a CPU), which it then names in a note so the user can ask for them.
    by_default: ClassVar[bool] = True

    @abc.abstractmethod
    def compute(self, **inputs: Any) -> float:
        """The value, from the inputs named in `requires` (and those of `optional` that were given), arrays as torch
        tensors: maps (N, H, W); masks (N, H, W) in {0, 1}; scores (N,); labels (N,) in {0, 1}, 1 = anomalous;
        codes (N, D); factors (N, K) int; real (N, F); fake (M, F); model an `xgen.Model`; data an `xgen.Dataset`."""

    def partial(self, **inputs: Any) -> dict[str, np.ndarray]:
        """Optional, for metrics that can be computed from shards (disjoint sets of whole images) without gathering
        them: what `finish` needs of one shard, from the same inputs as `compute`, as named numpy arrays (0-d for
        numbers), so a partial can be stored as `.npy` files and shipped between processes without pickle.

        A metric implements `partial` and `finish` together (`shardable()` then says True). `metric.shard(**inputs)`
        checks and converts the inputs as calling the metric does, then calls `partial`; `metric.merged(partials)`
        calls `finish`. `xgen evaluate --engine ray` has each worker return the partials of its batches, stores them
        as `.npy` files and merges them in bounded memory: `finish` receives every shard's partial, its arrays
        possibly memory-mapped, and must return what `compute` returns on all shards together. A map metric without
        them is refused on Ray (or left out of the default selection with a warning). The built-in pixel metrics
        keep per-value count tables (positives and negatives per distinct map value, region weights for AUPRO),
        which add up exactly across shards.

        Example::

            import numpy as np
            import xgen

            class AnomalousShare(xgen.Metric):
                name = "anomalous-share"
                description = "Fraction of the test pixels that the masks mark anomalous."
                requires = {"maps", "masks"}

                def compute(self, *, maps, masks):
                    return int(masks.sum()) / masks.numel()

                def partial(self, *, maps, masks):
                    return {"anomalous": np.int64(masks.sum()), "pixels": np.int64(masks.numel())}

                def finish(self, partials):
                    anomalous = sum(int(p["anomalous"]) for p in partials)
                    return anomalous / sum(int(p["pixels"]) for p in partials)
        """
        raise XgenError(
            f"metric '{self.name}' cannot be computed from shards; evaluate it with --engine local or drop it."
        )

    def finish(self, partials: Sequence[Mapping[str, np.ndarray]]) -> float:
        """The value from the partials of every shard, equal to `compute` on all the shards' inputs together. Arrays
        may be memory-mapped files as large as the data: read them a slice at a time to keep memory bounded."""
        raise XgenError(
            f"metric '{self.name}' cannot be computed from shards; evaluate it with --engine local or drop it."
        )

    @classmethod
    def shardable(cls) -> bool:
        """Whether this metric implements `partial` and `finish`."""
        return cls.partial is not Metric.partial and cls.finish is not Metric.finish

    def shard(self, **inputs: Any) -> dict[str, np.ndarray]:
        """Check and convert the inputs of one shard as `__call__` does, then `partial`."""
        return {key: np.asarray(value) for key, value in self.partial(**self._checked(inputs)).items()}

    def merged(self, partials: Iterable[Mapping[str, np.ndarray]]) -> float:
        """`finish` of the shards' partials, as a float."""
        return float(self.finish(list(partials)))

    def __call__(self, **inputs: Any) -> float:
        """Check the inputs (names, types, agreeing shapes), convert arrays to tensors and models and data specs to
        `xgen.Model` and `xgen.Dataset`, then `compute`."""
        return float(self.compute(**self._checked(inputs)))

    def _checked(self, inputs: dict[str, Any]) -> dict[str, Any]:
        given = {key: value for key, value in inputs.items() if value is not None}
        accepted = set(self.requires) | set(self.optional)
        for key in given:
            if key not in accepted:
                hint = "" if key in METRIC_INPUTS else did_you_mean(key, accepted)
                raise XgenError(f"metric '{self.name}' takes {_and(sorted(accepted))}, not {key}.{hint}")
        missing = sorted(name for name in self.requires if name not in given)
        if missing:
            raise XgenError(
                f"metric '{self.name}' needs {_and(missing)}, which {'was' if len(missing) == 1 else 'were'} not "
                "given; choose data that has them or another metric."
            )
        converted = {
            key: as_array_input(self.name, key, value) if key in ARRAY_INPUTS else value for key, value in given.items()
        }
        if "model" in converted:
            from xgen.model import wrap

            converted["model"] = wrap(converted["model"])
        if isinstance(converted.get("data"), str):
            from xgen.plugins import open_dataset

            converted["data"] = open_dataset(converted["data"])
        _check_agreement(self.name, converted)
        return converted


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _check_agreement(metric: str, inputs: dict[str, Any]) -> None:
    """Raise XgenError where two related array inputs disagree in shape."""
    for first, second, how, remedy in _AGREEING:
        a, b = inputs.get(first), inputs.get(second)
        if a is None or b is None:
            continue
        if how == "shape":
            bad, shown = tuple(a.shape) != tuple(b.shape), (tuple(a.shape), tuple(b.shape))
            words = f"{first} of shape {shown[0]} and {second} of shape {shown[1]}"
        elif how == "rows":
            bad = a.dim() == 0 or b.dim() == 0 or a.shape[0] != b.shape[0]
            words = f"{_rows(a)} {first} for {_rows(b)} {second}"
        else:
            bad = a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]
            words = f"{first} of shape {tuple(a.shape)} and {second} of shape {tuple(b.shape)}"
        if bad:
            raise XgenError(f"metric '{metric}' got {words}; they must match: {remedy}.")


def _rows(t: torch.Tensor) -> str:
    return str(t.shape[0]) if t.dim() else "a scalar of"
