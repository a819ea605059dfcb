"""Helpers for testing plugins: tiny seeded models, a factor dataset a model can read exactly, and a conformance
check every explainer should pass.

from xgen.testing import TinyVAE, check_explainer
check_explainer("my-explainer", xgen.wrap(TinyVAE()), torch.rand(4, 1, 16, 16))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xgen.api import explain
from xgen.data import Dataset, Factors, ImageSet
from xgen.errors import WrapError
from xgen.methods import Explanation
from xgen.model import Model, wrap
from xgen.plugins import lookup


class TinyVAE(nn.Module):
    """A small seeded convolutional VAE with `encode` -> (mu, logvar) and `decode`; input (N, C, S, S), S % 4 == 0."""

    def __init__(self, channels: int = 1, size: int = 16, latent: int = 4, seed: int = 0) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        flat = 8 * (size // 4) ** 2
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 4, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, 16),
            nn.ReLU(),
        )
        self.fc_mu = nn.Linear(16, latent)
        self.fc_logvar = nn.Linear(16, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, flat),
            nn.ReLU(),
            nn.Unflatten(1, (8, size // 4, size // 4)),
            nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(4, channels, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )
        torch.random.set_rng_state(generator_state)

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)[0])


class EncoderOnly(nn.Module):
    """A module with no encode/decode methods: a bare conv encoder, for testing `wrap(encode=...)`."""

    def __init__(self, channels: int = 1, latent: int = 4, seed: int = 0) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, latent))
        torch.random.set_rng_state(generator_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def check_explainer(name: str, model: Model | nn.Module, x: torch.Tensor, **options: Any) -> Explanation:
    """Assert the contract of explainer `name` on (model, x): shapes, dtype, determinism, batch independence.

    x: (N, C, H, W) in [0, 1] with N >= 2. Returns the explanation of the whole batch.
    """
    model = wrap(model)
    first = explain(model, x, plugin=name, **options)
    n, _, h, w = x.shape
    assert first.anomaly_map.shape == (n, h, w), f"maps have shape {tuple(first.anomaly_map.shape)}"
    assert first.anomaly_map.dtype == torch.float32
    assert torch.isfinite(first.anomaly_map).all(), "maps contain NaN or Inf"
    if first.score is not None:
        assert first.score.shape == (n,), f"scores have shape {tuple(first.score.shape)}"
    again = explain(model, x, plugin=name, **options)
    torch.testing.assert_close(again.anomaly_map, first.anomaly_map, msg="maps are not deterministic")
    single = explain(model, x[1:2], plugin=name, **options)
    torch.testing.assert_close(
        single.anomaly_map[0], first.anomaly_map[1], atol=1e-5, rtol=1e-4, msg="a batch of one differs from its row"
    )
    requires = set(lookup("explainer", name).requires)
    if requires - {"layers"}:
        bare = Model(nn.Identity(), layer=None)
        try:
            explain(bare, x, plugin=name, **options)
        except WrapError:
            pass
        else:
            raise AssertionError(f"explainer '{name}' ran on a model lacking {sorted(requires)}")
    return first


class PixelFactors(Dataset, Factors):
    """Every combination of the factors, the image of factors v being 1 x 1 x K with pixels v / 100: a model can read
    the factors back exactly, so a disentanglement metric's value for a known encoder is known. Both splits are the
    whole grid. Subclass to choose `factor_names` and `factor_sizes`."""

    name = "pixel-factors"
    description = "Every combination of the factors, written into the pixels (for tests)."
    factor_names = ("a", "b", "c")
    factor_sizes = (6, 8, 10)

    def render_factors(self, factors: torch.Tensor) -> torch.Tensor:
        return factors.float().div(100).view(-1, 1, 1, factors.shape[1])

    def split_factors(self, split: ImageSet) -> torch.Tensor:
        return split.extras["factors"]

    def train(self) -> ImageSet:
        factors = self.grid_factors(torch.arange(self.factor_count))
        return ImageSet(self.render_factors(factors), extras={"factors": factors})

    def test(self) -> ImageSet:
        return self.train()
