"""Architecture `infostylegan`: Paul et al.'s InfoStyleGAN (../seeds/004), and InfoGAN, StyleGAN and
InfoStyleGAN-Discrete as settings of it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from torch import nn

import xgen
from xgen_plugins.infostylegan import losses
from xgen_plugins.infostylegan.codes import Codes, Kind
from xgen_plugins.infostylegan.networks import InfoStyleGANModule


class LatentPrior:
    """The prior of z = concat(z', c): (n, generator) -> (n, noise + codes width), z' ~ N(0, I) and c ~ p(c), drawn
    on the CPU with `generator`."""

    def __init__(self, noise: int, codes: Codes) -> None:
        self.noise = noise
        self.codes = codes

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.noise, generator=generator)
        return torch.cat([z, self.codes.sample(n, generator)], dim=1)


def discriminator_parameters(module: InfoStyleGANModule) -> list[nn.Parameter]:
    """D's own parameters: the shared trunk (`trunk`, `conv`, `dense`) and the real/fake output, not Q."""
    return [p for name, p in module.discriminator.named_parameters() if not name.startswith("q.")]


def generator_parameters(module: InfoStyleGANModule) -> list[nn.Parameter]:
    """The parameters of the G + Q player: the generator and Q's head."""
    return [*module.generator.parameters(), *module.discriminator.q.parameters()]


@contextlib.contextmanager
def frozen(parameters: list[nn.Parameter]) -> Iterator[None]:
    """Parameters that gradients pass through without being computed for them, for the duration of a step."""
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in parameters:
            p.requires_grad_(True)


class InfoStyleGANArchitecture(xgen.Architecture):
    """Eq. 3 of Paul et al.: min_{G,Q} max_D V(D, G) - beta L_info(G, Q), with V the GAN value (eq. 1, 4) and
    L_info = E[log Q(c|G(z', c)) - log p(c)] (eq. 2, 5); Q is a head on D's trunk (Figure 1, section 5.2).

    The paper's four variants are settings: InfoGAN `styles=false` (beta 1); StyleGAN `styles=true beta=0`;
    InfoStyleGAN `styles=true` (beta 1, the default); InfoStyleGAN-Discrete `styles=true` with discrete codes only
    (e.g. `codes=bern:7,cat:3`, the paper's CelebA codes without the uniform ones).

    Each training step draws z = (z', c) from the prior and generates x_hat = G(z', c) once, then:
    1. D step (optimiser 0, Adam `d_lr`; owns the shared trunk and D's output): -V(D, G) on the real batch and on
       x_hat (detached), plus beta (-L_info) on x_hat, so that the information term trains the shared trunk as the
       official InfoGAN does (the popular PyTorch ports leave it out, and their codes end up controlling nothing),
       plus `r1` R1 on the real images when > 0. Q's weights pass the gradient to the trunk but are not updated.
    2. G + Q step (optimiser 1, Adam `lr`; owns G and Q): the generator loss (`generator_loss`) of x_hat under the
       updated D, plus beta (-L_info), through which G and Q learn; the trunk is frozen for this step.
    Logged: `d` (-V), `g` (the generator loss), `info` (L_info, the MI lower bound of eq. 10 in nats, from the G
    step, whatever beta) and `info_<kind>` per code kind.

    Where the paper is silent (see docs/methods/infostylegan.md): the network sizes (`width`, `w_dim`,
    `mapping_layers`, `q_hidden`; paper: StyleGAN-1's at 128x128 and 512x512), the uniform codes' range [-1, 1],
    the Q variance (`q_variance`), the weight of each code kind (`*_weight`, default 1), the optimisers (DCGAN's
    Adam 2e-4, (0.5, 0.999) for both players and all variants; StyleGAN's is 1e-3, (0, 0.99) with an equalised
    learning rate this implementation does not have) and the generator's loss (non-saturating, see
    `losses.generator_loss`).
    """

    name = "infostylegan"
    description = (
        "Paul et al.'s InfoStyleGAN: a style-based GAN whose Q head on D's trunk recovers latent codes "
        "(InfoGAN and StyleGAN as settings)."
    )
    default_explainer: ClassVar[str | None] = "disc-gradcam"
    default_dimension_explainer: ClassVar[str | None] = "q-gradcam"
    default_scorer: ClassVar[str | None] = "disc-score"
    epochs: ClassVar[int] = 20
    min_steps: ClassVar[int] = 2000
    batch_size: ClassVar[int] = 64

    codes: str = "cat:3,unif:4"
    noise: int = 32
    styles: bool = True
    mapping_layers: int = 4
    w_dim: int = 128
    pixel_norm: bool = True
    eval_noise: Literal["fixed", "random"] = "fixed"
    width: int = 16
    q_hidden: int = 128
    q_variance: Literal["learned", "fixed"] = "learned"
    beta: float = 1.0
    bern_weight: float = 1.0
    cat_weight: float = 1.0
    unif_weight: float = 1.0
    generator_loss: losses.GeneratorLoss = "non-saturating"
    r1: float = 0.0
    lr: float = 2e-4
    d_lr: float = 2e-4
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999

    def validate(self) -> None:
        self.code_set = Codes(self.codes, learned_variance=self.q_variance == "learned")
        if self.noise < 0 or self.noise + self.code_set.width < 1:
            raise xgen.XgenError("infostylegan needs noise >= 0 and at least one latent dimension (noise or codes).")
        if min(self.width, self.w_dim, self.mapping_layers) < 1 or self.q_hidden < 0:
            raise xgen.XgenError("infostylegan needs width, w_dim and mapping_layers >= 1 and q_hidden >= 0.")
        weights = {"beta": self.beta, "r1": self.r1, **self.weights()}
        negative = [k for k, v in weights.items() if v < 0]
        if negative:
            raise xgen.XgenError(f"infostylegan needs {negative[0]} >= 0, got {weights[negative[0]]}.")
        if self.lr <= 0 or self.d_lr <= 0 or not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1):
            raise xgen.XgenError("infostylegan needs lr, d_lr > 0 and adam_beta1, adam_beta2 in [0, 1).")

    def weights(self) -> dict[Kind, float]:
        """The weight of each code kind in L_info."""
        return {"bern": self.bern_weight, "cat": self.cat_weight, "unif": self.unif_weight}

    def build(self, input_shape: tuple[int, int, int]) -> nn.Module:
        channels, height, width = input_shape
        if height != width or height < 8 or height & (height - 1):
            raise xgen.XgenError(
                f"infostylegan needs square images whose side is a power of two >= 8 (16, 32, 64, ...), got "
                f"{height}x{width}; resize the images (digits, faces and textures take e.g. size=32 in --data)."
            )
        module = InfoStyleGANModule(
            channels,
            height,
            noise=self.noise,
            code_width=self.code_set.width,
            q_dim=self.code_set.q_dim,
            styles=self.styles,
            width=self.width,
            w_dim=self.w_dim,
            mapping_layers=self.mapping_layers,
            pixel_norm=self.pixel_norm,
            fixed_noise=self.eval_noise == "fixed",
            q_hidden=self.q_hidden,
        )
        module.codes = self.code_set
        return module

    def configure_optimizers(self, module: nn.Module) -> list[torch.optim.Optimizer]:
        """[D (trunk and output), G + Q], Adam with betas (`adam_beta1`, `adam_beta2`) at `d_lr` and `lr`."""
        betas = (self.adam_beta1, self.adam_beta2)
        return [
            torch.optim.Adam(discriminator_parameters(module), lr=self.d_lr, betas=betas),
            torch.optim.Adam(generator_parameters(module), lr=self.lr, betas=betas),
        ]

    def sample_latent(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """n latents z = concat(z', c) (n, noise + codes width) from torch's global generator, on `device`."""
        z = torch.randn(n, self.noise, device=device)
        return torch.cat([z, self.code_set.sample(n, device=device)], dim=1)

    def discriminator_step(
        self,
        module: InfoStyleGANModule,
        x: torch.Tensor,
        fake: torch.Tensor,
        c: torch.Tensor,
        optimizer: torch.optim.Optimizer,
    ) -> dict[str, float]:
        """Step 1: real x and generated `fake` (B, C, H, W) in [0, 1] (fake from codes c (B, width), detached
        here) -> one update of D's own parameters on -V + beta (-L_info) (+ r1 R1)."""
        real = x.detach().requires_grad_(self.r1 > 0)
        with frozen(list(module.discriminator.q.parameters())):
            real_logits, _ = module.discriminator(real)
            fake_logits, q = module.discriminator(fake.detach())
            d = losses.discriminator_loss(real_logits, fake_logits)
            loss = d
            if self.beta > 0:
                loss = loss + self.beta * losses.information_loss(self.code_set, q, c, self.weights())[0]
            logged = {"d": float(d.detach())}
            if self.r1 > 0:
                penalty = losses.r1_penalty(real_logits, real)
                loss = loss + self.r1 * penalty
                logged["r1"] = float(penalty.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()
        return logged

    def generator_step(
        self, module: InfoStyleGANModule, fake: torch.Tensor, c: torch.Tensor, optimizer: torch.optim.Optimizer
    ) -> dict[str, float]:
        """Step 2: `fake` = G(z', c) (B, C, H, W) with its graph -> one update of G and Q on the generator loss +
        beta (-L_info), D's own parameters frozen."""
        with frozen(discriminator_parameters(module)):
            fake_logits, q = module.discriminator(fake)
            g = losses.generator_loss(fake_logits, self.generator_loss)
            info, logged = losses.information_loss(self.code_set, q, c, self.weights())
            loss = g + self.beta * info if self.beta > 0 else g
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()
        return {"g": float(g.detach()), **logged}

    def training_step(
        self, module: nn.Module, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, float]:
        """x: (B, C, H, W) in [0, 1]: one D step, then one G + Q step on the same generated batch."""
        assert isinstance(module, InfoStyleGANModule)
        d_optimizer, g_optimizer = optimizers
        z = self.sample_latent(x.shape[0], device=x.device)
        c = z[:, self.noise :]
        fake = module.decode(z)
        return {
            **self.discriminator_step(module, x, fake, c, d_optimizer),
            **self.generator_step(module, fake, c, g_optimizer),
        }

    def wrap_arguments(self, module: nn.Module) -> dict[str, Any]:
        """decode (the generator on flat z = (z', c)), its prior, the discriminator and Q heads, and D's last conv
        as the attention layer. No encoder."""
        assert isinstance(module, InfoStyleGANModule)
        return {
            "decode": module.decode,
            "prior": LatentPrior(self.noise, self.code_set),
            "discriminator": module.discriminate,
            "auxiliary": module.auxiliary,
            "layer": "discriminator.conv",
        }
