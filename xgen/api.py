"""The library calls (`explain`, `score`, `fit_scorer`, `metric`, `list_plugins`) with the input checks every plugin
relies on."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from xgen.data import Dataset, ImageSet, parse_spec
from xgen.errors import InputError, XgenError
from xgen.methods import STATE_VALUES, Explanation, Metric, Scorer
from xgen.model import Model, wrap
from xgen.plugins import PluginInfo, get_registry, lookup, open_dataset


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def check_images(x: Any, model: Model | None = None) -> torch.Tensor:
    """Validate a batch of images and move it to the model's device. x: (N, C, H, W) or (C, H, W), floats in [0, 1]."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InputError(
            f"images must be a torch tensor or a numpy array of shape (N, C, H, W), got {type(x).__name__}."
        )
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise InputError(f"images must have shape (N, C, H, W), got {tuple(x.shape)}; add or remove dimensions.")
    if x.shape[0] == 0:
        raise InputError("the batch of images is empty; pass at least one image.")
    if not torch.is_floating_point(x):
        raise InputError(f"images are {x.dtype}; pass floats in [0, 1] (for 8-bit images: x.float() / 255).")
    x = x.float()
    low, high = (v.item() for v in torch.aminmax(x))
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = (~torch.isfinite(x)).sum().item()
        raise InputError(f"the images contain {bad} NaN or Inf values; clean or drop those images first.")
    if low < -1e-6 or high > 1 + 1e-6:
        raise InputError(f"image values span [{low:.3g}, {high:.3g}]; scale them to [0, 1] first.")
    if model is not None and model.input_shape is not None and model.any_size and x.shape[1] != model.input_shape[0]:
        raise InputError(
            f"images have {x.shape[1]} channels but the model expects {model.input_shape[0]}; convert them "
            "(grey to RGB: x.expand(-1, 3, -1, -1))."
        )
    if model is not None and model.input_shape is not None and not model.any_size and x.shape[1:] != model.input_shape:
        raise InputError(
            f"images are {shape_text(tuple(x.shape[1:]))} (CxHxW) but the model expects "
            f"{shape_text(model.input_shape)}; resize or convert them (the CLI's --resize does the size)."
        )
    if model is not None:
        x = x.to(model.device)
    return x


@contextlib.contextmanager
def evaluation_mode(model: Model) -> Iterator[None]:
    """Put every module of `model` in eval mode for the block, restoring those that were training."""
    training = [module for module in model.module.modules() if module.training]
    if training:
        model.module.eval()
    try:
        yield
    finally:
        for module in training:
            module.training = True


def explain(model: Model | nn.Module, x: Any, plugin: str | None = None, **options: Any) -> Explanation:
    """Explain images x: (N, C, H, W) float32 in [0, 1] with explainer `plugin` (default: the model's own).

    Equivalent to `registry[plugin](**options).explain(model, x)` plus checks: the options, the model's
    capabilities against the explainer's `requires` (before any work), the input, and the shape of the result.
    """
    model = wrap(model)
    name = plugin or model.default_explainer
    if name is None:
        raise XgenError(
            "this model names no default explainer; pass plugin=... (see xgen.list_plugins() for the choices)."
        )
    explainer_cls = lookup("explainer", name)
    explainer = explainer_cls(**options)
    model.check_requires(explainer_cls.requires, f"explainer '{name}'")
    x = check_images(x, model)
    with evaluation_mode(model):
        result = explainer.explain(model, x)
    if not isinstance(result, Explanation):
        raise XgenError(f"explainer '{name}' returned {type(result).__name__}, not an xgen.Explanation.")
    expected = (x.shape[0], x.shape[2], x.shape[3])
    if tuple(result.anomaly_map.shape) != expected:
        raise XgenError(
            f"explainer '{name}' returned maps of shape {tuple(result.anomaly_map.shape)}, expected {expected}."
        )
    return result


def score(model: Model | nn.Module, x: Any, plugin: str | None = None, **options: Any) -> torch.Tensor:
    """Image-level anomaly scores (N,) float32 of images x: (N, C, H, W) in [0, 1], higher = more anomalous, from
    scorer `plugin` (default: the model's own), with the same checks as `explain`. A scorer that learns uses the state
    `fit_scorer` kept in the model, and is refused before any work when there is none."""
    model = wrap(model)
    name = plugin or model.default_scorer
    if name is None:
        raise XgenError("this model names no default scorer; pass plugin=... (xgen.list_plugins() shows the choices).")
    scorer = _scorer(model, name, options)
    if scorer.learns():
        scorer.fitted(model)
    x = check_images(x, model)
    with evaluation_mode(model):
        result = scorer.score(model, x)
    if not isinstance(result, torch.Tensor) or result.numel() != x.shape[0]:
        shape = tuple(getattr(result, "shape", ()))
        raise XgenError(f"scorer '{name}' returned {type(result).__name__} {shape}, expected {x.shape[0]} scores.")
    return result.detach().float().reshape(-1)


def parse_scorer(spec: str) -> tuple[str, dict[str, Any]]:
    """A scorer spec "NAME" or "NAME:key=value,..." (the syntax of data and metric specs) as (name, options)."""
    name, options, bare = parse_spec(spec)
    if bare is not None:
        raise XgenError(f"scorer spec '{spec}' has a value without a key; write NAME:key=value.")
    return name, options


def _scorer(model: Model, name: str, options: dict[str, Any]) -> Scorer:
    """Scorer `name` built with `options` and checked against `model`, before any work."""
    scorer_cls = lookup("scorer", name)
    scorer = scorer_cls(**options)
    model.check_requires(scorer_cls.requires, f"scorer '{name}'")
    scorer.check_model(model)
    return scorer


def _normal_images(data: Any) -> tuple[Any, str]:
    """The normal images of `data` (a spec, an xgen.Dataset: its training split; an ImageSet; or an image tensor),
    those labelled anomalous left out, and a phrase saying where they came from."""
    if isinstance(data, str):
        data = open_dataset(data)
    if isinstance(data, Dataset):
        source, data = f"the training split of {data.spec()}", data.train()
    elif isinstance(data, ImageSet):
        source = "the images given"
    else:
        return data, "the images given"
    if data.labels is not None:
        data = data.subset(data.labels == 0)
    if len(data) == 0:
        raise InputError(f"{source} holds no normal images to fit on; pass data with normal training images.")
    return data.images, source


def fit_scorer(model: Model | nn.Module, data: Any, plugin: str, **options: Any) -> Model:
    """Fit scorer `plugin` (one that learns, such as `embedding-lof`) on normal images and keep what it learned in
    the model, which is returned (the same object when an `xgen.Model` is given): `xgen.score` then uses it, and
    `xgen.save` writes it.

    data: a data spec or an `xgen.Dataset` (its training split is used), an `xgen.ImageSet`, or images
    (N, C, H, W) in [0, 1]; images labelled anomalous are left out. Never pass test images.
    """
    model = wrap(model)
    scorer = _scorer(model, plugin, options)
    if not scorer.learns():
        raise XgenError(f"scorer '{plugin}' learns nothing from images, so it needs no fitting; call xgen.score.")
    images, source = _normal_images(data)
    x = check_images(images, model)
    with evaluation_mode(model):
        state = scorer.fit(model, x)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, STATE_VALUES) for k, v in state.items()
    ):
        raise XgenError(
            f"scorer '{plugin}' fit returned {type(state).__name__}, not a dict of tensors, numbers and strings; "
            "return only those, so the checkpoint stays loadable with weights_only=True."
        )
    model.metadata.setdefault("fitted_scorers", {})[scorer.key] = {
        "scorer": scorer.name,
        "options": scorer.config(),
        "state": {k: v.detach().cpu().contiguous() if isinstance(v, torch.Tensor) else v for k, v in state.items()},
        "fitted_on": f"{x.shape[0]} images of {source}",
    }
    return model


def metric(name: str, **options: Any) -> Metric:
    """The metric registered as `name`, ready to call: `xgen.metric("pixel-auroc")(maps=..., masks=...)`."""
    return lookup("metric", name)(**options)


def list_plugins() -> list[PluginInfo]:
    """Every registered explainer, scorer, metric, architecture and dataset, then the plugins that failed."""
    return get_registry().list()
