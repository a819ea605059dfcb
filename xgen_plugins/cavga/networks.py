"""CAVGA's networks (supplement Tables 9-10): an encoder to a convolutional or flat latent z, a decoder, the DC-GAN
discriminator and, weakly supervised, a binary classifier on z, held together by `CAVGANet`.

The paper's sizes are for 256x256 images with base width 64. `dcgan` keeps the paper's 8x8 latent grid at any input
size by using log2(H / grid) stride-2 stages (5 at 256x256, 3 at 64x64), with the channel widths of Table 10
(width, 2 width, 4 width, 8 width, 8 width) truncated to the stages used. `resnet18` is torchvision's ResNet-18
trunk (stride 32, 512 channels) and Table 9's residual decoder.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

import xgen

RESNET_STRIDE = 32
RESNET_CHANNELS = 512


def stage_widths(width: int, stages: int) -> list[int]:
    """Channels of the stride-2 stages: width * 2^i capped at 8 * width (Table 10 at width 64: 64 128 256 512 512)."""
    return [width * 2 ** min(i, 3) for i in range(stages)]


def dcgan_stages(height: int, width: int, grid: int) -> int:
    """How many stride-2 stages bring an image of height x width to a latent `grid` rows high; raises XgenError when
    none does exactly."""
    ratio = height // grid if grid > 0 else 0
    stages = int(math.log2(ratio)) if ratio >= 2 else 0
    if height % grid or ratio < 2 or 2**stages != ratio or width % ratio:
        raise xgen.XgenError(
            f"cavga (backbone=dcgan) needs the image height divided by grid={grid} to be a power of two >= 2 that "
            f"also divides the width, got {height}x{width}; resize the images or choose another grid."
        )
    return stages


def _conv_stack(channels: int, widths: list[int], last: str) -> list[nn.Module]:
    """Conv 4x4 stride 2 stages of Table 10: LeakyReLU(0.2) after the first, BatchNorm + LeakyReLU(0.2) after the
    others; the last stage ends in BatchNorm + ReLU (`last="relu"`, the encoder) or nothing (`"logits"`, the
    discriminator, whose sigmoid lives in the loss)."""
    layers: list[nn.Module] = []
    previous = channels
    for i, out in enumerate(widths):
        final = i == len(widths) - 1
        normed = i > 0 and not (final and last == "logits")
        layers.append(nn.Conv2d(previous, out, kernel_size=4, stride=2, padding=1, bias=not normed))
        if final and last == "logits":
            break
        if normed:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU() if final else nn.LeakyReLU(0.2))
        previous = out
    return layers


def dcgan_encoder(channels: int, width: int, stages: int) -> nn.Sequential:
    """Table 10 encoder, layers 1-14: x (N, channels, H, W) -> features (N, 8 width at most, H / 2^s, W / 2^s)."""
    return nn.Sequential(*_conv_stack(channels, stage_widths(width, stages), last="relu"))


def dcgan_decoder(latent_channels: int, channels: int, width: int, stages: int) -> nn.Sequential:
    """Table 10 decoder: ConvTranspose 4x4 stride 2 + BatchNorm + ReLU per stage (the encoder's widths reversed),
    then ConvTranspose 1x1 to the image channels and a sigmoid."""
    layers: list[nn.Module] = []
    previous = latent_channels
    for out in reversed(stage_widths(width, stages)):
        layers += [nn.ConvTranspose2d(previous, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        previous = out
    layers += [nn.ConvTranspose2d(previous, channels, kernel_size=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def discriminator(channels: int, width: int, stages: int) -> nn.Sequential:
    """Tables 9-10 DC-GAN discriminator: the encoder's conv stages, the last one giving a map of real/fake logits
    (N, 8 width at most, H / 2^s, W / 2^s); the tables' final sigmoid is applied by the losses and `discriminate`."""
    return nn.Sequential(*_conv_stack(channels, stage_widths(width, stages), last="logits"))


def resnet_trunk(channels: int) -> nn.Sequential:
    """Table 9 encoder, layers 1-19: torchvision's ResNet-18 without its pooling and fc (random initialisation; see
    `weights.load_backbone_weights`), then a ReLU. Its children carry torchvision's names, so a torchvision
    state_dict loads into it as is. A first conv for `channels` != 3 inputs replaces torchvision's."""
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    if channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(OrderedDict([*((name, getattr(net, name)) for name in names), ("out_relu", nn.ReLU())]))


class ResidualUp(nn.Module):
    """Table 9 decoder block: u = ReLU(BN(ConvTranspose 4x4 s2 (x))); out = u + ReLU(BN(Conv 3x3 (u))).
    x: (N, C_in, h, w) -> (N, C_out, 2h, 2w)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
        )
        self.conv = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.up(x)
        return u + self.conv(u)


def residual_decoder(latent_channels: int, channels: int, width: int) -> nn.Sequential:
    """Table 9 decoder: four residual up-blocks of 8, 4, 2 and 1 times `width` channels (512 256 128 64 at width 64),
    then ConvTranspose 4x4 stride 2 to the image channels and a sigmoid: 32 times the latent's size."""
    widths = [8 * width, 4 * width, 2 * width, width]
    blocks = [ResidualUp(a, b) for a, b in zip([latent_channels, *widths[:-1]], widths, strict=True)]
    return nn.Sequential(*blocks, nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Sigmoid())


class CAVGANet(nn.Module):
    """Encoder, latent heads, decoder, discriminator and (weakly supervised) classifier of CAVGA.

    `encoder(x)`: the encoder's last feature map F (N, C, h, w), where the attention A is computed. `encode(x)` ->
    (mu, logvar) of z: (N, C, h, w) from 1x1 convs of F for the convolutional z, (N, flat) from linear layers of the
    flattened F for the flat z (the ablation's 100-d vector). `decode(z)` -> (N, channels, H, W) in (0, 1).
    `class_logits(x)` -> (N, 2) logits [normal, anomalous] of the classifier C on the flattened latent mean (section
    3.2, Table 10 W.S. layers); `discriminate(x)` -> (N,) mean probability over D's patch map that x is real.
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_shape: tuple[int, int, int],
        decoder: nn.Module,
        discriminator: nn.Module,
        latent: str,
        flat_size: int,
        weak: bool,
    ) -> None:
        super().__init__()
        c, h, w = feature_shape
        self.encoder = encoder
        if latent == "conv":
            self.to_mu = nn.Conv2d(c, c, kernel_size=1)
            self.to_logvar = nn.Conv2d(c, c, kernel_size=1)
            self.from_latent: nn.Module = nn.Identity()
            latent_size = c * h * w
        else:
            self.to_mu = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, flat_size))
            self.to_logvar = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, flat_size))
            self.from_latent = nn.Sequential(nn.Linear(flat_size, c * h * w), nn.Unflatten(1, (c, h, w)))
            latent_size = flat_size
        self.decoder = decoder
        self.discriminator = discriminator
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(latent_size, 2)) if weak else None

    def latent(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features F: (N, C, h, w) -> (mu, logvar) of z."""
        return self.to_mu(features), self.to_logvar(features)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.latent(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z))

    def classify_latent(self, mu: torch.Tensor) -> torch.Tensor:
        """mu: the latent mean -> (N, 2) classifier logits [normal, anomalous]."""
        if self.classifier is None:
            raise xgen.XgenError("this cavga model has no classifier; train it with --set weak=true.")
        return self.classifier(mu)

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify_latent(self.encode(x)[0])

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.discriminator(x)).flatten(1).mean(dim=1)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the discriminator's: what the generator's optimiser updates."""
        return [p for name, p in self.named_parameters() if not name.startswith("discriminator.")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction decode(mu(x))."""
        return self.decode(self.encode(x)[0])


def build_network(
    input_shape: tuple[int, int, int], *, backbone: str, latent: str, width: int, grid: int, flat_size: int, weak: bool
) -> CAVGANet:
    """The untrained CAVGANet for images of shape (C, H, W); raises XgenError for sizes the backbone cannot take."""
    channels, height, width_px = input_shape
    if backbone == "dcgan":
        stages = dcgan_stages(height, width_px, grid)
        encoder = dcgan_encoder(channels, width, stages)
        feature_channels = stage_widths(width, stages)[-1]
        decoder = dcgan_decoder(feature_channels, channels, width, stages)
    else:
        if height % RESNET_STRIDE or width_px % RESNET_STRIDE:
            raise xgen.XgenError(
                f"cavga (backbone=resnet18) needs image sides divisible by {RESNET_STRIDE}, got {height}x{width_px}; "
                "resize the images or use backbone=dcgan."
            )
        stages = int(math.log2(RESNET_STRIDE))
        encoder = resnet_trunk(channels)
        feature_channels = RESNET_CHANNELS
        decoder = residual_decoder(feature_channels, channels, width)
    scale = 2**stages
    feature_shape = (feature_channels, height // scale, width_px // scale)
    return CAVGANet(encoder, feature_shape, decoder, discriminator(channels, width, stages), latent, flat_size, weak)
