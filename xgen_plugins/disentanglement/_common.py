"""What the model-and-data disentanglement metrics share: the dataset check, and rendering and encoding by factors."""

from __future__ import annotations

from typing import Any

import torch

import xgen


def factor_data(metric: str, data: xgen.Dataset) -> xgen.Factors:
    """`data` as an `xgen.Factors`, or one sentence saying that this dataset cannot draw images by factors."""
    if not isinstance(data, xgen.Factors):
        raise xgen.XgenError(
            f"metric '{metric}' draws images by their ground-truth factors, which dataset "
            f"'{getattr(data, 'name', '') or type(data).__name__}' cannot do; use a dataset with factors "
            "(an xgen.Factors) such as dsprites."
        )
    for name, size in zip(data.factor_names, data.factor_sizes, strict=True):
        if size < 2:
            raise xgen.XgenError(
                f"metric '{metric}' needs factors that vary, but factor '{name}' has one value; list only the "
                "factors that vary in factor_names and factor_sizes."
            )
    return data


def probe(metric: str, model: xgen.Model, data: xgen.Factors, logvar: bool) -> None:
    """Encode two images of the grid before any long work, so a model that does not fit fails in one sentence:
    images of the wrong size, or (with `logvar`) an encoder that gives no log-variance."""
    model.check_requires({"encode"}, f"metric '{metric}'")
    images = data.render_factors(data.grid_factors(torch.tensor([0, data.factor_count - 1])))
    if model.input_shape is not None and tuple(images.shape[1:]) != tuple(model.input_shape):
        raise xgen.XgenError(
            f"metric '{metric}' renders {'x'.join(map(str, images.shape[1:]))} (CxHxW) images but the model expects "
            f"{'x'.join(map(str, model.input_shape))}; use a model trained on this dataset."
        )
    with xgen.evaluation_mode(model), torch.no_grad():
        latent = model.encode(images.to(model.device))
    if logvar and latent.logvar is None:
        raise xgen.XgenError(
            f"metric '{metric}' needs q(z|x) as a Gaussian, but the model's encode gives no log-variance; return "
            "(mean, logvar) from encode, or use mig-binned on the encoder's codes."
        )


def encode_factors(
    model: xgen.Model, data: xgen.Factors, factors: torch.Tensor, chunk: int, bar: Any, task: Any
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Render factors (N, K) and encode them `chunk` images at a time: the latent mean (N, D) float32 and log-variance
    (N, D) or None, flattened, on the model's device. Advances `task` of the progress bar `bar` per chunk."""
    means, logvars = [], []
    with xgen.evaluation_mode(model), torch.no_grad():
        for start in range(0, len(factors), chunk):
            part = factors[start : start + chunk]
            latent = model.encode(data.render_factors(part).to(model.device))
            means.append(latent.mean.flatten(1).float())
            if latent.logvar is not None:
                logvars.append(latent.logvar.flatten(1).float())
            bar.advance(task, len(part))
    mean = torch.cat(means)
    return mean, torch.cat(logvars) if len(logvars) == len(means) else None
