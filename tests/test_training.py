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
        labels = torch.arange(6) % 2
        return xgen.ImageSet(torch.rand(6, 1, 4, 4), labels=labels)


class Weak(Steps):
    """Trains on the normal images plus the first two test images, labelled anomalous, and counts the labels."""

    name = "weak"

    def build(self, input_shape):
        module = super().build(input_shape)
        module.register_buffer("anomalies_seen", torch.zeros(()))
        return module

    def training_set(self, dataset):
        train, test = dataset.train(), dataset.test()
        images = torch.cat([train.images, test.images[:2]])
        labels = torch.cat([torch.zeros(len(train)), torch.ones(2)]).long()
        return xgen.ImageSet(images, labels=labels), test.names[:2]

    def training_step(self, module, x, optimizers, labels=None):
        module.anomalies_seen += labels.sum()
        return super().training_step(module, x, optimizers)


class Brightness(xgen.Explainer):
    name = "brightness"
    description = "The image itself."

    def explain(self, model, x):
        return xgen.Explanation(anomaly_map=x.mean(dim=1), score=x.flatten(1).mean(dim=1))


class Plugin:
    @staticmethod
    @xgen.hookimpl
    def xgen_register_models(register):
        register(Steps)
        register(Weak)

    @staticmethod
    @xgen.hookimpl
    def xgen_register_explainers(register):
        register(Brightness)


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


def test_a_training_set_with_borrowed_test_images_gets_labels_and_evaluate_leaves_them_out(registry):
    registry.add_plugin(Plugin(), "steps")
    model = xgen.train("weak", Tiny(), epochs=1, device="cpu")
    assert int(model.module.anomalies_seen) == 2
    training = model.metadata["training"]
    assert training["test_images_used"] == ["0", "1"] and training["train_images"] == 12
    result = xgen.evaluate(model, Tiny(), "brightness", metrics=["image-auroc"])
    assert result.test.names == ["2", "3", "4", "5"]
    assert result.warnings == ["2 test images of tiny:n=10 were used in training and are left out"]
    other = xgen.evaluate(model, Tiny(n=11), "brightness", metrics=["image-auroc"])
    assert len(other.test) == 6, "only the data the model was trained on loses its borrowed images"


def test_cli_threads_are_used_for_training_and_restored(registry, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import xgen.cli  # registers the commands
    import xgen.training
    from xgen.cli.app import app

    seen = []
    original = xgen.training.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(xgen.training, "train", spy)
    before = torch.get_num_threads()
    out = tmp_path / "m.pt"
    args = ["train", "conv-vae", "--data", "digits:normal=1,size=16", "--steps", "2", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [1] and torch.get_num_threads() == before and out.exists()
    refused = CliRunner().invoke(app, [*args, "--threads", "0"])
    assert isinstance(refused.exception, xgen.XgenError) and "--threads must be at least 1" in str(refused.exception)
