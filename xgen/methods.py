"""The base classes plugins subclass: Explainer, Scorer, Metric, and the Explanation an explainer returns."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from xgen.errors import XgenError
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
}

#: What a metric may require of its inputs.
METRIC_REQUIREMENTS: frozenset[str] = frozenset({"maps", "masks", "scores", "labels"})


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


class Scorer(Method, abc.ABC):
    """Produces image-level anomaly scores only (higher = more anomalous)."""

    kind: ClassVar[str] = "scorer"

    @abc.abstractmethod
    def score(self, model: Model, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) float32 in [0, 1]. Returns (N,) float32."""


class Metric(Configurable, abc.ABC):
    """Compares maps or scores with ground truth. `requires` names the inputs it needs."""

    kind: ClassVar[str] = "metric"
    requires: ClassVar[set[str] | frozenset[str]] = frozenset()

    @abc.abstractmethod
    def compute(
        self,
        *,
        maps: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        scores: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> float:
        """maps: (N, H, W); masks: (N, H, W) in {0, 1}; scores: (N,); labels: (N,) in {0, 1}, 1 = anomalous."""

    def __call__(
        self,
        *,
        maps: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        scores: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> float:
        """Check that the inputs this metric `requires` are given and agree in shape, then `compute`."""
        given = {"maps": maps, "masks": masks, "scores": scores, "labels": labels}
        missing = sorted(name for name in self.requires if given[name] is None)
        if missing:
            raise XgenError(
                f"metric '{self.name}' needs {' and '.join(missing)}, which were not given; "
                "choose data that has them or another metric."
            )
        if maps is not None and masks is not None and tuple(maps.shape) != tuple(masks.shape):
            raise XgenError(
                f"metric '{self.name}' got maps of shape {tuple(maps.shape)} and masks of shape "
                f"{tuple(masks.shape)}; they must match, one mask per map at the map's resolution."
            )
        if scores is not None and labels is not None and scores.shape[0] != labels.shape[0]:
            raise XgenError(
                f"metric '{self.name}' got {scores.shape[0]} scores for {labels.shape[0]} labels; give one per image."
            )
        return float(self.compute(maps=maps, masks=masks, scores=scores, labels=labels))
