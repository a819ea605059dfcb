"""Shared fixtures: a fresh plugin registry per test, tiny models, and one small trained conv-vae checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import xgen
from xgen.plugins import new_registry, use_registry

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def registry():
    """A registry with the installed entry points loaded, made the process default for the test."""
    fresh = new_registry()
    with use_registry(fresh):
        yield fresh


@pytest.fixture
def metrics_registry():
    """A registry holding the metrics plugin (through its entry point once installed, else in-process), for the
    metric tests (`pytestmark = pytest.mark.usefixtures("metrics_registry")`)."""
    import xgen_plugins.metrics

    registry = new_registry()
    if "pixel-auroc" not in registry.names("metric"):
        registry.add_plugin(xgen_plugins.metrics, "metrics")
    with use_registry(registry):
        yield registry


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models (`pytestmark = pytest.mark.usefixtures("one_thread")`): one thread is faster,
    and immune to OpenMP spin-waits when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def conv_vae_checkpoint(tmp_path_factory) -> Path:
    """A conv-vae trained for 3 epochs on digits:normal=1 (seed 0), saved once per test session."""
    path = tmp_path_factory.mktemp("ckpt") / "conv-vae.pt"
    xgen.train("conv-vae", "digits:normal=1", epochs=3, seed=0, out=path, device="cpu")
    return path
