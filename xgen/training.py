"""`xgen.train`: build an architecture, fit it on a dataset's training split, and (optionally) save it."""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from xgen.architecture import Architecture
from xgen.checkpoint import save
from xgen.data import Dataset
from xgen.errors import XgenError
from xgen.model import Model
from xgen.plugins import lookup, open_dataset
from xgen.progress import progress_bar
from xgen.training_state import BatchStream, load_state, restore_random_streams, save_state


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


def _train_steps(
    arch: Architecture,
    module: torch.nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor | None, bool]],
    optimizers: list[torch.optim.Optimizer],
    steps: int,
    log_every: int,
    on_log: Callable[[dict[str, Any]], None],
    bar: Any,
    resume: tuple[int, int, Callable[[], None]] | None = None,
    on_point: Callable[[int, int], None] | None = None,
) -> None:
    """`steps` optimiser steps, split into the architecture's phases; every `log_every` steps (and at the end of each
    phase) the step's logged values, averaged over the window's images, go to `on_log` with the step number, then
    `on_point(step, passes)` (where a resumable run saves its state). `resume` = (steps done, passes done, restore)
    continues a saved run: the phases begin as they did, `restore()` puts back the saved state at the point of the
    sequence where it was saved (after `begin_phase` inside a phase, before it at a phase boundary), and the loop
    goes on from the next step."""
    done, passes, restore = resume if resume is not None else (0, 0, None)
    first = 0
    for index, (phase, count) in enumerate((p, c) for p, c in arch.phases(steps) if c > 0):
        if first + count <= done:
            arch.begin_phase(index, optimizers)
            first += count
            continue
        if restore is not None and done == first:
            restore()
            restore = None
        arch.begin_phase(index, optimizers)
        if restore is not None:
            restore()
            restore = None
        task = bar.add_task(f"train {arch.name} {phase}".rstrip(), total=count, status="", completed=done - first)
        totals: dict[str, float] = {}
        seen = 0
        for local in range(done - first + 1, count + 1):
            batch, labels, pass_ended = next(batches)
            given = {} if labels is None else {"labels": labels}
            for key, value in arch.training_step(module, batch, optimizers, **given).items():
                totals[key] = totals.get(key, 0.0) + value * batch.shape[0]
            seen += batch.shape[0]
            done += 1
            if pass_ended:
                passes += 1
                arch.end_epoch(passes, optimizers)
            if done % log_every == 0 or local == count:
                record = {key: value / seen for key, value in totals.items()}
                if any(not math.isfinite(v) for v in record.values()):
                    raise XgenError(
                        f"training diverged at step {done} (a loss is not finite); lower the learning rate "
                        "with --set lr=... or check the data."
                    )
                on_log({"step": done, **({"phase": phase} if phase else {}), **record})
                if on_point is not None:
                    on_point(done, passes)
                bar.update(task, status=" ".join(f"{k} {v:.4g}" for k, v in record.items()))
                totals, seen = {}, 0
            bar.update(task, advance=1)
        first += count


def train(
    architecture: str,
    data: str | Dataset,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    options: dict[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    log_every: int | None = None,
    on_log: Callable[[dict[str, Any], Model], dict[str, Any] | None] | None = None,
    state: str | os.PathLike[str] | None = None,
) -> Model:
    """Train architecture `architecture` (e.g. "conv-vae") on the training split of `data` ("digits:normal=1").

    Without `epochs` or `steps`, trains for the architecture's `epochs`, or more when that many epochs would take
    fewer than its `min_steps` optimiser steps (small datasets). `steps` counts optimiser steps instead, the unit of
    the disentanglement papers: every batch is freshly drawn when the dataset can render any number of training
    images (`Dataset.sample_train`, e.g. dSprites from uniformly sampled factors), else batches cycle over the
    training split. In step mode the history has one record per `log_every` steps (default: steps // 100), and
    `on_log(record, model)`, if given, sees each record with the model as it is at that step (in eval mode, put
    back into training mode afterwards), e.g. to measure metric curves; a dict it returns is added to the record,
    so it is kept in the history. Seeded: the same seed, data and options give the same weights on the same machine.
    With `out`, the checkpoint is written atomically when training ends, so an interrupted run never leaves a
    truncated file. With `state` (step mode), the whole training state (weights, optimisers, the architecture's own
    state, random streams, history) is written to that file at every log point; started again with the same
    arguments, training resumes from it and ends with the weights an uninterrupted run gives on the same machine.
    The file is removed when training ends.
    """
    arch = lookup("architecture", architecture)(**(options or {}))
    dataset = open_dataset(data) if isinstance(data, str) else data
    if epochs is not None and steps is not None:
        raise XgenError("give --epochs or --steps, not both.")
    if steps is not None and steps < 1:
        raise XgenError("--steps must be at least 1.")
    if log_every is not None and log_every < 1:
        raise XgenError("log_every must be at least 1.")
    if state is not None and steps is None:
        raise XgenError("a resumable training state needs step mode: give --steps.")
    train_set, borrowed = arch.training_set(dataset)
    n = len(train_set)
    if n == 0:
        raise XgenError(f"dataset '{dataset.spec()}' has no training images; check its options.")
    batch_size = arch.batch_size if batch_size is None else batch_size
    if batch_size < 1:
        raise XgenError("--batch-size must be at least 1.")
    if epochs is None and steps is None:
        epochs = max(arch.epochs, math.ceil(arch.min_steps / math.ceil(n / batch_size)))
    if epochs is not None and epochs < 1:
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
    units = epochs if steps is None else steps
    phases = [(name, count) for name, count in arch.phases(units) if count > 0]
    if sum(count for _, count in phases) != units:
        raise XgenError(f"architecture '{arch.name}' split {units} epochs into phases of another total.")
    sample = getattr(dataset, "sample_train", lambda n, g: None)
    streams = steps is not None and not borrowed and sample(1, torch.Generator().manual_seed(seed)) is not None

    def log(record: dict[str, Any]) -> None:
        history.append(record)
        if on_log is not None:
            module.eval()
            try:
                extra = on_log(record, arch.wrap(module, input_shape))
            finally:
                module.train()
            if extra:
                record.update(extra)

    epoch = 0
    resumed_at = 0
    earlier_seconds = 0.0
    with progress_bar(progress) as bar:
        if steps is not None:
            batches = BatchStream(images, labels, batch_size, generator, sample if streams else None)
            every = log_every or max(1, steps // 100)
            resume, on_point = None, None
            if state is not None:
                identity = {
                    "architecture": architecture,
                    "options": arch.config(),
                    "data": dataset.spec(),
                    "seed": seed,
                    "steps": steps,
                    "batch_size": batch_size,
                    "log_every": every,
                }
                saved = load_state(state, identity)
                if saved is not None:
                    history[:] = saved["history"]
                    resumed_at, earlier_seconds = int(saved["step"]), float(saved["seconds"])

                    def restore(saved: dict[str, Any] = saved) -> None:
                        module.load_state_dict(saved["module"])
                        arch.load_training_state(saved["architecture"], device)
                        for optimizer, optimizer_state in zip(optimizers, saved["optimizers"], strict=True):
                            optimizer.load_state_dict(optimizer_state)
                        restore_random_streams(saved, batches)

                    resume = (resumed_at, int(saved["passes"]), restore)
                    bar.console.print(
                        f"Resuming from {state} at step {resumed_at} of {steps}.", soft_wrap=True, markup=False
                    )

                def on_point(step: int, passes: int) -> None:
                    seconds = earlier_seconds + time.perf_counter() - started
                    parts = (module, optimizers, arch.training_state(), batches, history)
                    save_state(Path(state), identity, step, passes, seconds, *parts)

            _train_steps(arch, module, batches, optimizers, steps, every, log, bar, resume, on_point)
            phases = []
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
            **({"epochs": epochs} if steps is None else {"steps": steps, "fresh_batches": streams}),
            "batch_size": batch_size,
            "seed": seed,
            "device": str(device),
            "train_images": n,
            "test_images_used": borrowed,
            "seconds": round(earlier_seconds + time.perf_counter() - started, 3),
            "history": history,
            **({"resumed_at_step": resumed_at} if resumed_at else {}),
        }
    }
    if out is not None:
        save(model, out)
    if state is not None:
        Path(state).unlink(missing_ok=True)
    return model
