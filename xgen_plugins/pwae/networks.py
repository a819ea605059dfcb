"""P-WAE's networks (Fig. 2-3): the siamese tile encoder f_phi shared by all tiles, the decoder f_theta that
reconstructs the image from the tile codes put back in place, and the jigsaw head h_j, held by `PWAENet` with the
permutation set and the training-error statistics of eq. 21-23 as buffers."""

from __future__ import annotations

import math

import torch
from torch import nn

from xgen_plugins.pwae import backbones, tiles


class TileEncoder(nn.Module):
    """f_phi: tiles (T, C, h, w) -> codes (T, D), or (mean, log-variance) for the Gaussian ablation (`logvar`)."""

    def __init__(self, trunk: nn.Module, features: int, code: int, logvar: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.mean = nn.Linear(features, code)
        self.logvar = nn.Linear(features, code) if logvar else None

    def forward(self, tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.trunk(tiles)
        return self.mean(h), None if self.logvar is None else self.logvar(h)


class Decoder(nn.Module):
    """f_theta: codes (N, K, D) in place order -> (N, C, H', W') in (0, 1). Each code becomes an r x r feature
    patch (a linear layer) pasted at its tile's place, then Upsample-Conv-BN-ReLU blocks (the paper's) double the
    grid twice and a last upsampling to (H', W') and 3x3 conv give the image."""

    def __init__(self, code: int, n: int, tile: tuple[int, int], channels: int, width: int) -> None:
        super().__init__()
        self.n = n
        self.cell = (math.ceil(tile[0] / 4), math.ceil(tile[1] / 4))
        self.base = 4 * width
        self.project = nn.Linear(code, self.base * self.cell[0] * self.cell[1])
        blocks: list[nn.Module] = []
        previous = self.base
        for out in (2 * width, width):
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(previous, out, 3, 1, 1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            previous = out
        size = (n * tile[0], n * tile[1])
        blocks += [nn.Upsample(size=size, mode="bilinear", align_corners=False), nn.Conv2d(previous, channels, 3, 1, 1)]
        self.blocks = nn.Sequential(*blocks, nn.Sigmoid())

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        batch, k, _ = codes.shape
        patches = self.project(codes).view(batch, k, self.base, *self.cell)
        return self.blocks(tiles.paste(patches, self.n))


class PWAENet(nn.Module):
    """The P-WAE model for images of shape (C, H, W) cut into an n x n grid.

    `tile_codes(x)` -> (mean, logvar or None), each (N, n*n, D) in place order, for x (N, C, H_any, W_any) (fitted
    to the training size and padded to a multiple of n, never shuffled). `encode(x)` -> the same flattened to
    (N, n*n*D); `decode(z)` -> (N, C, H, W) at the training size; `reconstruct_working(x)` -> (x in working space,
    its reconstruction), both (N, C, H', W'). `jigsaw(codes)` -> (N, P) logits from codes (N, K, D) in slot order.
    Buffers: `permutations` (P, K) and `error_mean`, `error_std` (1 + K,) of the whole-image and tile errors over
    the training images (eq. 21-23; `calibrated` is 1 once they are set).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        *,
        n: int,
        code: int,
        width: int,
        backbone: str,
        permutations: torch.Tensor,
        logvar: bool,
    ) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        self.n = n
        self.code = code
        self.input_size = (height, width_px)
        working = tiles.working_size(height, width_px, n)
        tile = (working[0] // n, working[1] // n)
        trunk, features = (
            backbones.small_trunk(channels, width)
            if backbone == "small"
            else backbones.resnet_trunk(backbone, channels)
        )
        self.encoder = TileEncoder(trunk, features, code, logvar)
        self.decoder = Decoder(code, n, tile, channels, width)
        k = n * n
        self.jigsaw_head = nn.Linear(k * code, len(permutations))
        self.register_buffer("permutations", permutations.clone())
        self.register_buffer("error_mean", torch.zeros(1 + k))
        self.register_buffer("error_std", torch.ones(1 + k))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.uint8))

    @property
    def tiles(self) -> int:
        return self.n * self.n

    def working(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H_any, W_any) -> (N, C, H', W') the network's input space."""
        return tiles.to_working(x, self.input_size, self.n)

    def encode_slots(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """slots: (N, K, C, h, w) tiles -> (mean, logvar or None) each (N, K, D): all N*K tiles in one batch
        through the shared encoder."""
        batch, k = slots.shape[:2]
        mean, logvar = self.encoder(slots.flatten(0, 1))
        return mean.view(batch, k, -1), None if logvar is None else logvar.view(batch, k, -1)

    def tile_codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.encode_slots(tiles.cut(self.working(x), self.n))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        mean, logvar = self.tile_codes(x)
        return mean.flatten(1) if logvar is None else (mean.flatten(1), logvar.flatten(1))

    def decode_working(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (N, K, D) in place order -> (N, C, H', W')."""
        return self.decoder(codes)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decode_working(z.view(z.shape[0], self.tiles, self.code))
        return tiles.from_working(out, self.input_size, self.input_size)

    def reconstruct_working(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fitted = self.working(x)
        mean, _ = self.encode_slots(tiles.cut(fitted, self.n))
        return fitted, self.decode_working(mean)

    def jigsaw(self, codes: torch.Tensor) -> torch.Tensor:
        return self.jigsaw_head(codes.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x (N, C, H, W) at the training size, from the unshuffled tiles' code means."""
        return tiles.from_working(self.reconstruct_working(x)[1], self.input_size, self.input_size)
