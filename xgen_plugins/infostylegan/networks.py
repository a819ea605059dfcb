"""The generators and the discriminator with its Q head (Paul et al., ../seeds/004 Figure 1 and section 5.2).

Channels: `width` at the output resolution, doubled at every halving up to 8 x `width` (StyleGAN's fmap rule with a
CPU-sized base; the paper's is 512 at 4x4). Images are square, a power of two >= 8 pixels; the generators draw
pixels in [0, 1] through a sigmoid, and the discriminator reads 2x - 1.

- `StyleGenerator` (`styles=true`): StyleGAN-1's mapping network and synthesis network without progressive growing,
  blur, style mixing or truncation.
- `InfoGANGenerator` (`styles=false`): the DCGAN-style InfoGAN generator on (z', c) directly.
- `Discriminator`: convs down to 4x4, a last conv at 4x4, a dense layer, the real/fake logit, and Q on the dense
  features. No minibatch standard deviation and no batch norm: each image's features depend on that image only,
  which the detection embeddings (taps conv, dense, q) need.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

_SLOPE = 0.2


def channels_at(resolution: int, size: int, width: int) -> int:
    """Channels at a resolution of a `size`-pixel network: width * min(size / resolution, 8)."""
    return width * min(size // resolution, 8)


def resolutions(size: int) -> list[int]:
    """4, 8, ..., size."""
    return [2**k for k in range(2, int(math.log2(size)) + 1)]


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """StyleGAN's normalize_latents: z (N, D) scaled to unit root mean square per row."""
    return z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + eps)


def he_init(module: nn.Module) -> None:
    """He-normal weights for LeakyReLU(0.2) and zero biases in every conv and dense layer, the style affines as
    `NoiseStyle.reset_style` says: StyleGAN's initialisation without the equalised learning rate's runtime scaling.
    PyTorch's default shrinks the signal about 2.5 times per layer, so that a fresh discriminator's dense features
    hardly vary between images (about 1e-3 across a batch at 16x16) and Q has nothing to read the codes from."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=_SLOPE, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, NoiseStyle):
            m.reset_style()


class MappingNetwork(nn.Module):
    """f: Z -> W, `layers` dense layers with LeakyReLU(0.2) (StyleGAN: 8 of width 512); (N, latent) -> (N, w_dim)."""

    def __init__(self, latent: int, w_dim: int, layers: int, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(latent if i == 0 else w_dim, w_dim), nn.LeakyReLU(_SLOPE)]
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_norm(z) if self.normalize else z)


class NoiseStyle(nn.Module):
    """StyleGAN-1's layer epilogue: per-pixel noise times a learned per-channel scale (zero at start), bias,
    LeakyReLU, instance norm, then AdaIN's style y_s * x + y_b with (y_s, y_b) a learned affine of w (y_s starts
    at 1). In training mode the noise is fresh for every image; in eval mode it is the layer's fixed noise map
    (StyleGAN's randomize_noise=False), so that a latent decodes to one image, unless `fixed_noise` is False."""

    def __init__(self, channels: int, w_dim: int, resolution: int, seed: int) -> None:
        super().__init__()
        self.noise_scale = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.style = nn.Linear(w_dim, 2 * channels)
        self.reset_style()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("noise", torch.randn(1, 1, resolution, resolution, generator=generator))
        self.fixed_noise = True

    def reset_style(self) -> None:
        """StyleGAN's affine initialisation: weights of gain 1, bias 1 for y_s and 0 for y_b."""
        channels = self.style.out_features // 2
        with torch.no_grad():
            nn.init.normal_(self.style.weight, std=self.style.in_features**-0.5)
            self.style.bias[:channels].fill_(1.0)
            self.style.bias[channels:].zero_()

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: (N, C, r, r), w: (N, w_dim) -> (N, C, r, r)."""
        if self.training or not self.fixed_noise:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise
        x = x + self.noise_scale.view(1, -1, 1, 1) * noise
        x = F.leaky_relu(x + self.bias.view(1, -1, 1, 1), _SLOPE)
        x = F.instance_norm(x)
        scale, shift = self.style(w)[:, :, None, None].chunk(2, dim=1)
        return x * scale + shift


class StyleGenerator(nn.Module):
    """StyleGAN-1's generator at a CPU scale: mapping network, a learned constant 4x4 input, two 3x3 convs per
    resolution (the first after a nearest-neighbour x2 upsampling), each followed by `NoiseStyle` with its own
    affine of the one w (no style mixing), and a 1x1 toRGB at the last resolution. (N, latent) -> (N, C, size, size).
    """

    def __init__(
        self,
        latent: int,
        channels: int,
        size: int,
        width: int,
        w_dim: int,
        mapping_layers: int,
        normalize: bool = True,
        fixed_noise: bool = True,
    ) -> None:
        super().__init__()
        self.mapping = MappingNetwork(latent, w_dim, mapping_layers, normalize)
        res = resolutions(size)
        self.const = nn.Parameter(torch.ones(1, channels_at(4, size, width), 4, 4))
        self.convs = nn.ModuleList()
        self.styles = nn.ModuleList()
        previous = channels_at(4, size, width)
        for r in res:
            out = channels_at(r, size, width)
            if r == 4:
                self.convs.append(nn.Identity())
            else:
                self.convs.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(previous, out, 3, padding=1))
                )
            self.styles.append(NoiseStyle(out, w_dim, r, seed=len(self.styles)))
            self.convs.append(nn.Conv2d(out, out, 3, padding=1))
            self.styles.append(NoiseStyle(out, w_dim, r, seed=len(self.styles)))
            previous = out
        self.to_rgb = nn.Conv2d(previous, channels, 1)
        for style in self.styles:
            style.fixed_noise = fixed_noise

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.mapping(z)
        x = self.const.expand(z.shape[0], -1, -1, -1)
        for conv, style in zip(self.convs, self.styles, strict=True):
            x = style(conv(x), w)
        return torch.sigmoid(self.to_rgb(x))


class InfoGANGenerator(nn.Module):
    """InfoGAN's generator (Chen et al.'s DCGAN form): FC to a 4x4 map, batch norm and ReLU, then one 4x4 stride-2
    transposed conv per doubling (batch norm and ReLU after all but the last). (N, latent) -> (N, C, size, size)."""

    def __init__(self, latent: int, channels: int, size: int, width: int) -> None:
        super().__init__()
        first = channels_at(4, size, width)
        self.fc = nn.Sequential(
            nn.Linear(latent, first * 16, bias=False),
            nn.BatchNorm1d(first * 16),
            nn.ReLU(),
            nn.Unflatten(1, (first, 4, 4)),
        )
        blocks: list[nn.Module] = []
        previous = first
        for r in resolutions(size)[1:]:
            last = r == size
            out = channels if last else channels_at(r, size, width)
            blocks.append(nn.ConvTranspose2d(previous, out, 4, 2, 1, bias=last))
            if not last:
                blocks += [nn.BatchNorm2d(out), nn.ReLU()]
            previous = out
        self.up = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(self.fc(z)))


class NoCodes(nn.Module):
    """Q's output layer when there are no codes: (N, F) -> (N, 0)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, :0]


class Discriminator(nn.Module):
    """D and Q sharing one trunk (Figure 1): per resolution from `size` down to 8, a 3x3 conv and a 4x4 stride-2 conv
    (`trunk`; StyleGAN's conv and blurred downsampling conv without the blur); at 4x4 a last 3x3 conv (`conv`, the
    tap of section 4 (b)), a dense layer (`dense`, tap (c)), the real/fake logit (`out`) and Q (`q`: a hidden
    LeakyReLU layer of `q_hidden` units, or none when 0, then `q_dim` raw outputs, tap (a)). LeakyReLU(0.2)
    everywhere, no normalisation layers and no minibatch standard deviation."""

    def __init__(self, channels: int, size: int, width: int, q_dim: int, q_hidden: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(channels, channels_at(size, size, width), 1), nn.LeakyReLU(_SLOPE)]
        for r in reversed(resolutions(size)[1:]):
            c, down = channels_at(r, size, width), channels_at(r // 2, size, width)
            blocks += [
                nn.Conv2d(c, c, 3, padding=1),
                nn.LeakyReLU(_SLOPE),
                nn.Conv2d(c, down, 4, 2, 1),
                nn.LeakyReLU(_SLOPE),
            ]
        self.trunk = nn.Sequential(*blocks)
        c4 = channels_at(4, size, width)
        self.conv = nn.Sequential(nn.Conv2d(c4, c4, 3, padding=1), nn.LeakyReLU(_SLOPE))
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(c4 * 16, c4), nn.LeakyReLU(_SLOPE))
        self.out = nn.Linear(c4, 1)
        hidden: list[nn.Module] = [nn.Linear(c4, q_hidden), nn.LeakyReLU(_SLOPE)] if q_hidden > 0 else []
        head = nn.Linear(q_hidden if q_hidden > 0 else c4, q_dim) if q_dim > 0 else NoCodes()
        self.q = nn.Sequential(*hidden, head)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (N, C, H, W) in [0, 1] -> {"conv": (N, c4, 4, 4), "dense": (N, c4), "logit": (N,), "q": (N, q_dim)}."""
        conv = self.conv(self.trunk(2 * x - 1))
        dense = self.dense(conv)
        return {"conv": conv, "dense": dense, "logit": self.out(dense).squeeze(1), "q": self.q(dense)}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, C, H, W) in [0, 1] -> (real/fake logit (N,), Q's raw output (N, q_dim))."""
        f = self.features(x)
        return f["logit"], f["q"]


class InfoStyleGANModule(nn.Module):
    """The generator (`generator`) and the discriminator with Q (`discriminator`, Q at `discriminator.q`).

    Latents are flat: z = concat(z', c), (N, noise + codes width), with c laid out as `codes.Codes` says.
    `embedding_taps` names the three representations of section 4 for xgen's embedding scorers."""

    embedding_taps: ClassVar[dict[str, str]] = {
        "q": "auxiliary",
        "conv": "discriminator.conv",
        "dense": "discriminator.dense",
    }

    def __init__(
        self,
        channels: int,
        size: int,
        *,
        noise: int,
        code_width: int,
        q_dim: int,
        styles: bool,
        width: int,
        w_dim: int,
        mapping_layers: int,
        pixel_norm: bool,
        fixed_noise: bool,
        q_hidden: int,
    ) -> None:
        super().__init__()
        self.noise, self.code_width = noise, code_width
        latent = noise + code_width
        if styles:
            self.generator: nn.Module = StyleGenerator(
                latent, channels, size, width, w_dim, mapping_layers, pixel_norm, fixed_noise
            )
        else:
            self.generator = InfoGANGenerator(latent, channels, size, width)
        self.discriminator = Discriminator(channels, size, width, q_dim, q_hidden)
        he_init(self)

    @property
    def auxiliary_outputs(self) -> list[tuple[str, int | slice]]:
        """Where each code's prediction lives in Q's raw output, for `q-gradcam`: (name, column) for a Bernoulli
        logit or a uniform code's Gaussian mean, (name, slice) for a categorical code's logits. Empty without codes
        (`codes` is set by the architecture's `build`)."""
        codes = self.__dict__.get("codes")
        if codes is None:
            return []
        return [(v.name, v.q if v.kind == "cat" else v.q.start) for v in codes.variables]

    @property
    def traverse_dims(self) -> list[tuple[str, int | slice]]:
        """The rows `xgen traverse` draws by default, one per code: (name, column of z) for a Bernoulli or uniform
        code, (name, slice of z) for a categorical code's one-hot columns; the noise z' is not traversed."""
        codes = self.__dict__.get("codes")
        if codes is None:
            return []
        return [
            (
                v.name,
                slice(self.noise + v.c.start, self.noise + v.c.stop) if v.kind == "cat" else self.noise + v.c.start,
            )
            for v in codes.variables
        ]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z = concat(z', c): (N, noise + code width) -> images (N, C, H, W) in [0, 1]."""
        return self.generator(z)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1] -> D's real/fake logit (N,); D(x) = sigmoid of it."""
        return self.discriminator(x)[0]

    def auxiliary(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1] -> Q's raw output (N, q_dim) (see `codes.Codes` for its layout)."""
        return self.discriminator(x)[1]

    def embed(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        """The representations of section 4: tap `conv` (the last conv, flattened: (N, c4 * 16)), `dense` (N, c4) or
        `q` (Q's raw output with the log-variances, (N, q_dim)); x: (N, C, H, W) in [0, 1]."""
        if tap not in ("conv", "dense", "q"):
            raise ValueError(f"unknown tap '{tap}'; use conv, dense or q.")
        return self.discriminator.features(x)[tap].flatten(1)
