"""The convolutional VAE of Liu et al.'s MNIST experiments, for any channel count and size divisible by 4."""

from __future__ import annotations

import torch
from torch import nn


class ConvVAE(nn.Module):
    """conv 64 s2 -> conv 128 s2 -> FC `hidden` -> (mu, logvar) of size `latent`; the decoder mirrors it.

    x: (N, C, H, W) in [0, 1] with H and W divisible by 4. encode(x) -> (mu, logvar), each (N, latent);
    decode(z) -> (N, C, H, W) in (0, 1). Layer names follow the reference code: `encoder.2` is the last conv.
    """

    def __init__(self, channels: int, height: int, width: int, latent: int = 32, hidden: int = 1024) -> None:
        super().__init__()
        h4, w4 = height // 4, width // 4
        flat = 128 * h4 * w4
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 64, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
        )
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            nn.Linear(hidden, flat),
            nn.ReLU(),
            nn.Unflatten(1, (128, h4, w4)),
            nn.ConvTranspose2d(128, 64, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(64, channels, kernel_size=4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return self.decode(z), mu, logvar
