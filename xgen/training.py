"""`xgen.train`: build an architecture, fit it on a dataset's training split, and (optionally) save it."""

from __future__ import annotations

import inspect
import math
import os
import time
from typing import Any

import torch

from xgen.architecture import Architecture
from xgen.checkpoint import save
from xgen.data import Dataset
from xgen.errors import XgenError
from xgen.model import Model
from xgen.plugins import lookup, open_dataset
from xgen.progress import progress_bar


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" picks CUDA when present, else the CPU; anything else is passed to torch.device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise XgenError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise XgenError(f"device '{device}' was asked for but no CUDA GPU is available; use --device cpu.")
    return resolved


def _epoch(
    arch: Architecture,
    module: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    optimizers: list[torch.optim.Optimizer],
    batch_size: int,
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass over images (N, C, H, W) in a seeded random order; the step's logged values averaged per image."""
    n = len(images)
    totals: dict[str, float] = {}
    order = torch.randperm(n, generator=generator).to(images.device)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        batch = images[index]
        given = {} if labels is None else {"labels": labels[index]}
        for key, value in arch.training_step(module, batch, optimizers, **given).items():
            totals[key] = totals.get(key, 0.0) + value * batch.shape[0]
    return {key: value / n for key, value in totals.items()}


def train(
    architecture: str,
    data: str | Dataset,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    options: dict[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Model:
    """Train architecture `architecture` (e.g. "conv-vae") on the training split of `data` ("digits:normal=1").

    Without `epochs`, trains for the architecture's `epochs`, or more when that many epochs would take fewer than
    its `min_steps` optimiser steps (small datasets). Seeded: the same seed, data and options give the same weights
    on the same machine. With `out`, the checkpoint is written atomically when training ends, so an interrupted run
    never leaves a truncated file.
    """
    arch = lookup("architecture", architecture)(**(options or {}))
    dataset = open_dataset(data) if isinstance(data, str) else data
    train_set, borrowed = arch.training_set(dataset)
    n = len(train_set)
    if n == 0:
        raise XgenError(f"dataset '{dataset.spec()}' has no training images; check its options.")
    batch_size = arch.batch_size if batch_size is None else batch_size
    if batch_size < 1:
        raise XgenError("--batch-size must be at least 1.")
    if epochs is None:
        epochs = max(arch.epochs, math.ceil(arch.min_steps / math.ceil(n / batch_size)))
    if epochs < 1:
        raise XgenError("--epochs must be at least 1.")
    device = resolve_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    input_shape = tuple(train_set.images.shape[1:])
    module = arch.build(input_shape).to(device)
    module.train()
    optimizers = arch.configure_optimizers(module)
    images = train_set.images.to(device)
    wants_labels = "labels" in inspect.signature(arch.training_step).parameters
    labels = train_set.labels.to(device) if wants_labels and train_set.labels is not None else None
    history: list[dict[str, Any]] = []
    started = time.perf_counter()
    phases = [(name, count) for name, count in arch.phases(epochs) if count > 0]
    if sum(count for _, count in phases) != epochs:
        raise XgenError(f"architecture '{arch.name}' split {epochs} epochs into phases of another total.")
    epoch = 0
    with progress_bar(progress) as bar:
        for index, (phase, count) in enumerate(phases):
            arch.begin_phase(index, optimizers)
            task = bar.add_task(f"train {arch.name} {phase}".rstrip(), total=count, status="")
            for _ in range(count):
                epoch += 1
                record = _epoch(arch, module, images, labels, optimizers, batch_size, generator)
                if any(not math.isfinite(v) for v in record.values()):
                    raise XgenError(
                        f"training diverged at epoch {epoch} (a loss is not finite); lower the learning rate "
                        "with --set lr=... or check the data."
                    )
                arch.end_epoch(epoch, optimizers)
                history.append({"epoch": epoch, **({"phase": phase} if phase else {}), **record})
                bar.update(task, advance=1, status=" ".join(f"{k} {v:.4g}" for k, v in record.items()))
    module.eval()
    arch.after_training(module, train_set)
    model = arch.wrap(module, input_shape)
    model.metadata = {
        "training": {
            "data": dataset.spec(),
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "device": str(device),
            "train_images": n,
            "test_images_used": borrowed,
            "seconds": round(time.perf_counter() - started, 3),
            "history": history,
        }
    }
    if out is not None:
        save(model, out)
    return model
