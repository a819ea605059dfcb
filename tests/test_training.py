"""`xgen.train`'s defaults: epochs from the architecture, stretched to `min_steps` on small datasets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xgen


class Steps(xgen.Architecture):
    """A one-parameter model that counts its optimiser steps."""

    name = "steps"
    description = "Counts steps."
    epochs = 2
    min_steps = 9
    batch_size = 4

    def build(self, input_shape):
        module = nn.Linear(1, 1)
        module.register_buffer("steps", torch.zeros(()))
        return module

    def loss(self, module, x):
        module.steps += 1
        return module(x.mean(dim=(1, 2, 3))[:, None]).square().mean()


class Tiny(xgen.Dataset):
    name = "tiny"
    n: int = 10

    def train(self):
        return xgen.ImageSet(torch.rand(self.n, 1, 4, 4))

    def test(self):
        return self.train()


class Plugin:
    @staticmethod
    @xgen.hookimpl
    def xgen_register_models(register):
        register(Steps)


@pytest.mark.parametrize(
    ("n", "epochs", "expected_epochs"),
    [(10, None, 3), (40, None, 2), (10, 1, 1)],  # 3 batches/epoch: 3 epochs reach 9 steps; 10 batches: 2 epochs
)
def test_default_epochs_reach_min_steps_unless_epochs_are_given(registry, n, epochs, expected_epochs):
    registry.add_plugin(Plugin(), "steps")
    model = xgen.train("steps", Tiny(n=n), epochs=epochs, device="cpu")
    history = model.metadata["training"]["history"]
    assert len(history) == expected_epochs
    assert int(model.module.steps) == expected_epochs * -(-n // 4)
