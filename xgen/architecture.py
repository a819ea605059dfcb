"""The `Architecture` contract: what `xgen train ARCH` builds, how one training step runs, its default explainer."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn

from xgen.data import Dataset, ImageSet
from xgen.model import Model
from xgen.options import Configurable


class Architecture(Configurable, abc.ABC):
    """A trainable model family. Options (annotated class attributes) are its config, saved in checkpoints.

    Implement `build` and either `loss` (one optimiser, the default `training_step`) or `training_step` and
    `configure_optimizers` (e.g. alternating GAN updates). `default_explainer` names the explainer
    `xgen explain` uses for its checkpoints when no `--plugin` is given; `default_dimension_explainer` the one whose
    per-dimension maps `xgen traverse` draws beside each latent dimension or code (default: `default_explainer`;
    a GAN's anomaly explainer and its per-code one differ); `default_scorer` the scorer that gives
    `xgen evaluate` its image scores when the explainer gives none; `any_input_size` lets `xgen.explain` pass
    images of any height and width (channels still checked) to models that resize internally. `default_metrics`
    are metric specs (`NAME` or `NAME:key=value,...`, as `--metric` takes them) that `xgen evaluate` adds to its
    default selection for this architecture's checkpoints when the data supports them: a metric that is off by
    default for everyone because it is slow (`by_default = False`) is then on for the models it is meant for, with
    options that may preset it for them; `--metric` still runs only what it names. `epochs`, `batch_size` and
    `min_steps` (the fewest optimiser steps the default epochs may give, so tiny datasets still train) are training
    defaults.
    """

    kind: ClassVar[str] = "architecture"
    default_explainer: ClassVar[str | None] = None
    default_dimension_explainer: ClassVar[str | None] = None
    default_scorer: ClassVar[str | None] = None
    default_metrics: ClassVar[tuple[str, ...]] = ()
    any_input_size: ClassVar[bool] = False
    epochs: ClassVar[int] = 10
    min_steps: ClassVar[int] = 0
    batch_size: ClassVar[int] = 64

    @abc.abstractmethod
    def build(self, input_shape: tuple[int, int, int]) -> nn.Module:
        """The untrained module for images of shape (C, H, W)."""

    def loss(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The scalar training loss of a batch x: (N, C, H, W) in [0, 1]."""
        raise NotImplementedError(f"architecture '{self.name}' implements neither loss() nor training_step().")

    def configure_optimizers(self, module: nn.Module) -> list[torch.optim.Optimizer]:
        """The optimisers `training_step` receives; by default Adam at the `lr` option (or 1e-3)."""
        return [torch.optim.Adam(module.parameters(), lr=float(getattr(self, "lr", 1e-3)))]

    def training_set(self, dataset: Dataset) -> tuple[ImageSet, list[str]]:
        """The images to train on, and the names of any test images among them (which `xgen evaluate` then leaves
        out). By default the training split, unlabelled; a weakly supervised architecture may add labelled
        anomalies taken from the test split. When the returned set has labels, `training_step` gets them."""
        return dataset.train(), []

    def phases(self, epochs: int) -> list[tuple[str, int]]:
        """How `epochs` split into named phases run in order, each with its own progress bar, e.g. one per layer of
        a greedily trained stack; `begin_phase` is called before each. By default one phase."""
        return [("", epochs)]

    def begin_phase(self, index: int, optimizers: list[torch.optim.Optimizer]) -> None:
        """Called before phase `index` (0-based) of `phases`."""

    def after_training(self, module: nn.Module, train_set: ImageSet) -> None:
        """Called once after the last epoch, before the model is saved: e.g. statistics of the training images
        under the final weights, kept in the module's buffers so that checkpoints carry them."""

    def end_epoch(self, epoch: int, optimizers: list[torch.optim.Optimizer]) -> None:
        """Called after each epoch (1-based), e.g. to decay learning rates on a schedule."""

    def training_state(self) -> dict[str, Any]:
        """What this instance keeps between training steps outside the module and optimisers (a schedule's step
        count, persistent chains), saved with a resumable run's state. By default every attribute made of numbers,
        strings, tensors, lists and dicts of them; override when the state lives elsewhere."""
        return {name: value for name, value in vars(self).items() if _plain(value)}

    def load_training_state(self, state: dict[str, Any], device: torch.device) -> None:
        """Put back what `training_state` saved, tensors on `device`."""
        for name, value in state.items():
            setattr(self, name, _to_device(value, device))

    def training_step(
        self,
        module: nn.Module,
        x: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        labels: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One update on batch x: (B, C, H, W) in [0, 1] (labels: (B,) 1 = anomalous, when `training_set` gives
        them); returns the losses to log, averaged over the epoch's images by the loop."""
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(module, x)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}

    def wrap_arguments(self, module: nn.Module) -> dict[str, Any]:
        """Extra `xgen.wrap` arguments for this architecture's modules (e.g. `layer=` or heads)."""
        return {}

    def wrap(self, module: nn.Module, input_shape: tuple[int, int, int]) -> Model:
        """Wrap a module this architecture built, recording the name, config and default explainer."""
        return Model(
            module,
            input_shape=input_shape,
            architecture=self.name,
            config=self.config(),
            default_explainer=self.default_explainer,
            default_dimension_explainer=self.default_dimension_explainer,
            default_scorer=self.default_scorer,
            any_size=self.any_input_size,
            **self.wrap_arguments(module),
        )


def _plain(value: Any) -> bool:
    """Whether `value` is built of None, numbers, strings, tensors, lists, tuples and str-keyed dicts only: what a
    training state file holds and reads back without running code."""
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and _plain(v) for k, v in value.items())
    return False


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list | tuple):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value
