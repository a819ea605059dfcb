"""Resumable step-mode training: the batch stream whose position can be saved, and the state file `xgen.train`
writes at every log point (weights, optimisers, random streams, history), so that a run killed halfway (a session
ending, a lost machine) starts again where it stopped and ends with the weights an uninterrupted run would have."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from xgen.errors import XgenError
from xgen.files import atomic_path

FORMAT = "xgen-training-state/1"


class BatchStream:
    """Endless (batch, labels, last batch of a pass): fresh images from `sample` when the dataset renders any number,
    else passes over the fixed split (N, C, H, W), each in a new seeded order, the last short batch kept. Its position
    (the generator, and for a fixed split the pass's order and offset) can be saved and restored exactly."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        batch_size: int,
        generator: torch.Generator,
        sample: Callable[[int, torch.Generator], torch.Tensor] | None,
    ) -> None:
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator, self.sample = generator, sample
        self._order: torch.Tensor | None = None
        self._pass_state: torch.Tensor | None = None
        self._offset = 0

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        if self.sample is not None:
            return self.sample(self.batch_size, self.generator).to(self.images.device), None, False
        if self._order is None or self._offset >= len(self.images):
            self._new_pass()
        assert self._order is not None
        start = self._offset
        index = self._order[start : start + self.batch_size]
        self._offset = start + self.batch_size
        labels = None if self.labels is None else self.labels[index]
        return self.images[index], labels, self._offset >= len(self.images)

    def _new_pass(self) -> None:
        self._pass_state = self.generator.get_state()
        self._order = torch.randperm(len(self.images), generator=self.generator).to(self.images.device)
        self._offset = 0

    def state(self) -> dict[str, Any]:
        """Where the stream is: enough to continue it with the same batches."""
        return {"generator": self.generator.get_state(), "pass_state": self._pass_state, "offset": self._offset}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a `state()`: the same pass order, offset and generator."""
        if state["pass_state"] is not None:
            self.generator.set_state(state["pass_state"])
            self._new_pass()
            self._offset = int(state["offset"])
        self.generator.set_state(state["generator"])


def save_state(
    path: Path,
    identity: dict[str, Any],
    step: int,
    passes: int,
    seconds: float,
    module: torch.nn.Module,
    optimizers: list[torch.optim.Optimizer],
    architecture: dict[str, Any],
    batches: BatchStream,
    history: list[dict[str, Any]],
) -> None:
    """Write the training state after `step` optimiser steps to `path` in one rename (never a truncated file)."""
    payload = {
        "format": FORMAT,
        "identity": identity,
        "step": step,
        "passes": passes,
        "seconds": seconds,
        "module": module.state_dict(),
        "optimizers": [optimizer.state_dict() for optimizer in optimizers],
        "architecture": architecture,
        "batches": batches.state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "history": history,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_state(path: str | os.PathLike[str], identity: dict[str, Any]) -> dict[str, Any] | None:
    """The state saved at `path` for the run `identity` names; None when there is none. Read with
    `weights_only=True`, so loading it runs no code. A state of another run is refused: resuming it would mix two
    runs."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise XgenError(
            f"{path} is not a readable xgen training state ({type(exc).__name__}); delete it to train from the start."
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise XgenError(f"{path} is not an xgen training state ({FORMAT}); delete it or pass another state path.")
    saved = payload["identity"]
    if saved != identity:
        differ = sorted(key for key in identity.keys() | saved.keys() if saved.get(key) != identity.get(key))
        raise XgenError(
            f"the training state {path} belongs to another run (it differs in {', '.join(differ)}); delete it to "
            "train from the start, or pass another state path."
        )
    return payload


def restore_random_streams(payload: dict[str, Any], batches: BatchStream) -> None:
    """Put torch's global generators and the batch stream back where the saved run had them."""
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    batches.restore(payload["batches"])
