"""Kim & Mnih's (2018) FactorVAE networks for 64x64 dSprites: the conv VAE and the total-correlation discriminator."""

from __future__ import annotations

import itertools

import torch
from torch import nn


class FactorVAEModule(nn.Module):
    """The VAE of Kim & Mnih's Appendix A, with the discriminator of its total-correlation term as a submodule.

    Encoder: four 4x4 stride-2 convs (32, 32, 64, 64 channels, ReLU), FC 128 (ReLU), FC 2 * latent (mean and
    log-variance). Decoder: FC 128, FC 64 * h/16 * w/16 (ReLU), four 4x4 stride-2 transposed convs (64, 32, 32, C);
    its outputs are Bernoulli logits. x: (N, C, H, W) in [0, 1] with H and W divisible by 16 (64x64 in the paper).
    Layer names: `encoder.0` is the first conv (the attention disentanglement loss's default layer), `encoder.6` the
    last. `tc_discriminator` reads latents (N, latent) and is trained by its own optimiser.
    """

    def __init__(self, channels: int, height: int, width: int, latent: int = 10) -> None:
        super().__init__()
        self.latent = latent
        h16, w16 = height // 16, width // 16
        flat = 64 * h16 * w16
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, 128),
            nn.ReLU(),
            nn.Linear(128, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, 128),
            nn.ReLU(),
            nn.Linear(128, flat),
            nn.ReLU(),
            nn.Unflatten(1, (64, h16, w16)),
            nn.ConvTranspose2d(64, 64, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 4, 2, 1),
        )
        self.tc_discriminator = TCDiscriminator(latent)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, C, H, W) -> (mean, log-variance), each (N, latent)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, latent) -> Bernoulli logits (N, C, H, W)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, latent) -> pixel probabilities (N, C, H, W) in (0, 1)."""
        return torch.sigmoid(self.decoder(z))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (N, C, H, W) -> (logits of x's reconstruction, mu, logvar, z) with z a reparameterised sample."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decoder(z), mu, logvar, z


class TCDiscriminator(nn.Module):
    """D(z) -> 2 logits (column 0: z drawn from q(z), column 1: from the product of its marginals).

    Six linear layers, five of them 1000 wide with LeakyReLU(0.2), as in the most used PyTorch FactorVAE (Kim &
    Mnih's "6 layers, 1000 hidden units"; disentanglement_lib reads it as six hidden layers plus the output).
    """

    def __init__(self, latent: int, width: int = 1000, layers: int = 6) -> None:
        super().__init__()
        sizes = [latent] + [width] * (layers - 1)
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            blocks += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks, nn.Linear(sizes[-1], 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, latent) -> logits (N, 2)."""
        return self.net(z)
