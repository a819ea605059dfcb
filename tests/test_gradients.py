"""channel_weights equals the spatial mean of the full per-output Jacobian, whichever path computes it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xgen
from xgen.testing import TinyVAE


class SkipHead(nn.Module):
    """The latent also reads the conv output past the Linear: the fast path's final check must reject it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        self.side = nn.Linear(4, 3, bias=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        return self.fc(torch.relu(a).flatten(1)) + self.side(a.pow(2).mean((2, 3)))


class PermutedHead(nn.Module):
    """The Linear reads the activations in (h, w, c) order: the fast path's elementwise probe must reject it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).permute(0, 2, 3, 1).flatten(1))


@pytest.mark.parametrize(
    ("module", "layer", "size"),
    [(TinyVAE(size=16), "encoder.2", 16), (SkipHead(), "conv", 8), (PermutedHead(), "conv", 8)],
    ids=["fast-path", "skip-connection", "permuted"],
)
def test_channel_weights_equal_the_mean_of_the_jacobian(module, layer, size):
    model = xgen.wrap(module)
    x = torch.rand(3, 1, size, size, generator=torch.Generator().manual_seed(1))

    def latent(inputs: torch.Tensor) -> torch.Tensor:
        return model.encode(inputs).mean

    _, alpha, _ = xgen.gradients.channel_weights(model, layer, x, latent)
    jacobian = xgen.gradients.layer_jacobian(model, layer, x, latent).gradients
    torch.testing.assert_close(alpha, jacobian.mean(dim=(-2, -1)).transpose(0, 1), rtol=1e-5, atol=1e-7)
