"""`xgen.wrap`: turn any torch module into the interface explainers use (encode, decode, layers, heads)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from xgen.errors import WrapError, did_you_mean
from xgen.methods import MODEL_REQUIREMENTS

#: A model's prior: (n, generator) -> n latents (n, D...) that `decode` accepts, drawn with `generator` if given.
Prior = Callable[[int, torch.Generator | None], torch.Tensor]


class StandardNormal:
    """The prior N(0, I) of a VAE with `latent` dimensions, as `wrap(prior=...)` takes it: (n, generator) -> z
    (n, latent), drawn on the CPU so that a seed gives the same latents on any device."""

    def __init__(self, latent: int) -> None:
        self.latent = latent

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent, generator=generator)


#: The optional heads `wrap` accepts, and the module method used when the argument is not given.
_HEADS = {"classifier": "classify", "discriminator": "discriminate", "auxiliary": "auxiliary"}


@dataclass
class Latent:
    """The latent distribution from `Model.encode`: mean (N, D...) and, for a VAE, log-variance."""

    mean: torch.Tensor
    logvar: torch.Tensor | None = None

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterised sample mean + exp(logvar / 2) * eps; the mean when there is no log-variance."""
        if self.logvar is None:
            return self.mean
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * eps


def _is_torchscript(module: nn.Module) -> bool:
    return isinstance(module, torch.jit.ScriptModule)


class Model:
    """A wrapped generative model. Build it with `xgen.wrap` or `xgen.load`, not directly."""

    def __init__(
        self,
        module: nn.Module,
        *,
        encode: Callable[[torch.Tensor], Any] | None = None,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
        layer: str | None = None,
        classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
        discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
        auxiliary: Callable[[torch.Tensor], torch.Tensor] | None = None,
        prior: Prior | None = None,
        input_shape: tuple[int, int, int] | None = None,
        architecture: str | None = None,
        config: dict[str, Any] | None = None,
        default_explainer: str | None = None,
        default_scorer: str | None = None,
        any_size: bool = False,
        default_dimension_explainer: str | None = None,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise WrapError(
                f"xgen.wrap needs a torch.nn.Module, got {type(module).__name__}; "
                "wrap the module that holds the weights."
            )
        self.module = module
        self._encode = encode if encode is not None else getattr(module, "encode", None)
        self._decode = decode if decode is not None else getattr(module, "decode", None)
        explicit = {"classifier": classifier, "discriminator": discriminator, "auxiliary": auxiliary}
        self._heads = {
            head: fn if fn is not None else getattr(module, method, None)
            for (head, method), fn in zip(_HEADS.items(), explicit.values(), strict=True)
        }
        self._prior = prior
        for role, fn in [("encode", self._encode), ("decode", self._decode), ("prior", prior), *self._heads.items()]:
            if fn is not None and not callable(fn):
                raise WrapError(f"wrap argument {role}= must be callable, got {type(fn).__name__}.")
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.any_size = any_size
        self.architecture = architecture
        self.config = dict(config or {})
        self.default_explainer = default_explainer
        self.default_dimension_explainer = default_dimension_explainer
        self.default_scorer = default_scorer
        self.metadata: dict[str, Any] = {}
        self._default_layer: str | None = None
        if layer is not None:
            self.layer(layer)
            self._default_layer = layer

    def __repr__(self) -> str:
        arch = self.architecture or type(self.module).__name__
        return f"<xgen.Model {arch} provides={sorted(self.capabilities)}>"

    @property
    def capabilities(self) -> set[str]:
        """What this model provides, in the vocabulary of an explainer's `requires`."""
        provided = {"encode"} if self._encode is not None else set()
        if self._decode is not None:
            provided.add("decode")
            if self._prior is not None:
                provided.add("generate")
        if not _is_torchscript(self.module):
            provided.add("layers")
        provided.update(head for head, fn in self._heads.items() if fn is not None)
        return provided

    def check_requires(self, requires: Iterable[str], who: str) -> None:
        """Raise WrapError, before any work, if this model lacks something `who` requires."""
        missing = sorted(set(requires) - self.capabilities)
        if not missing:
            return
        need = missing[0]
        if need == "generate" and self._prior is not None:
            need = "decode"
        if need == "layers":
            raise WrapError(
                f"{who} hooks a layer, which a TorchScript model does not allow; "
                "wrap the original torch.nn.Module with xgen.wrap(module) instead."
            )
        argument = MODEL_REQUIREMENTS.get(need, f"{need}=")
        raise WrapError(
            f"{who} requires '{need}', which this model does not provide; "
            f"pass it to xgen.wrap as {argument} (a callable)."
        )

    @property
    def device(self) -> torch.device:
        for tensor in self.module.parameters():
            return tensor.device
        for tensor in self.module.buffers():
            return tensor.device
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> Model:
        self.module.to(device)
        return self

    def encode(self, x: torch.Tensor) -> Latent:
        """x: (N, C, H, W) -> the latent distribution. Accepts encoders returning a tensor or (mean, logvar)."""
        if self._encode is None:
            self.check_requires({"encode"}, "encode()")
        out = self._encode(x)
        if isinstance(out, torch.Tensor):
            return Latent(out)
        if isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) for t in out):
            return Latent(out[0], out[1] if len(out) > 1 else None)
        raise WrapError(
            f"encode returned {type(out).__name__}; it must return a tensor or a (mean, logvar) tuple, "
            "so pass wrap(encode=...) a function that does."
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: a latent sample -> (N, C, H, W) reconstruction in [0, 1]."""
        if self._decode is None:
            self.check_requires({"decode"}, "decode()")
        return self._decode(z)

    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n new images (n, C, H, W) in [0, 1]: decode(prior(n, generator)), the latents moved to the model's device
        (a prior drawing on the CPU gives the same images on any device for the same seed)."""
        if self._prior is None or self._decode is None:
            self.check_requires({"generate"}, "generate()")
        return self.decode(self.sample_prior(n, generator))

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents (n, D...) drawn from the model's prior with `generator`, on the model's device."""
        if self._prior is None:
            self.check_requires({"generate"}, "sample_prior()")
        return self._prior(n, generator).to(self.device)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the latent mean of x: the deterministic reconstruction used at test time."""
        return self.decode(self.encode(x).mean)

    def head(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """The optional head `classifier`, `discriminator` or `auxiliary`."""
        fn = self._heads.get(name)
        if fn is None:
            self.check_requires({name}, f"head('{name}')")
        return fn

    def layer(self, name: str) -> nn.Module:
        """The sub-module at dotted path `name` (e.g. "encoder.2")."""
        if _is_torchscript(self.module):
            self.check_requires({"layers"}, f"layer('{name}')")
        try:
            if not name:
                raise AttributeError(name)
            return self.module.get_submodule(name)
        except AttributeError:
            names = [n for n, _ in self.module.named_modules() if n]
            convs = [n for n, m in self.module.named_modules() if isinstance(m, nn.Conv2d)]
            hint = did_you_mean(name, names)
            raise WrapError(
                f"the model has no layer '{name}'.{hint} Its Conv2d layers are: {', '.join(convs) or 'none'}."
            ) from None

    def attention_layer(self, x: torch.Tensor) -> str:
        """The dotted name of the default attention layer: the last Conv2d that runs when encoding x.

        Found once by running `encode` on the first image of x with hooks on every Conv2d, then cached.
        """
        if self._default_layer is not None:
            return self._default_layer
        self.check_requires({"layers", "encode"}, "finding the attention layer")
        order: list[str] = []
        handles = [
            module.register_forward_hook(lambda *_, name=name: order.append(name))
            for name, module in self.module.named_modules()
            if isinstance(module, nn.Conv2d)
        ]
        try:
            with torch.no_grad():
                self.encode(x[:1])
        finally:
            for handle in handles:
                handle.remove()
        if not order:
            raise WrapError("no Conv2d layer runs when this model encodes; pass layer= naming the layer to explain.")
        self._default_layer = order[-1]
        return self._default_layer


def wrap(
    module: nn.Module,
    *,
    encode: Callable[[torch.Tensor], Any] | None = None,
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    layer: str | None = None,
    classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    auxiliary: Callable[[torch.Tensor], torch.Tensor] | None = None,
    prior: Prior | None = None,
    input_shape: tuple[int, int, int] | None = None,
) -> Model:
    """Wrap a module for explaining. Modules with `encode`/`decode` methods need no other argument.

    encode: x (N, C, H, W) -> mean or (mean, logvar). decode: z -> (N, C, H, W) in [0, 1].
    layer: dotted name of the default attention layer (default: the last Conv2d run by encode).
    classifier / discriminator / auxiliary: optional heads, for methods that require them.
    prior: (n, generator) -> n latents drawn from the model's prior, which `decode` turns into images; with decode
    it gives the model `generate(n)`, which FID and precision/recall sample from.
    input_shape: (C, H, W) the model expects, so bad inputs are refused with a clear message.
    """
    if isinstance(module, Model):
        return module
    return Model(
        module,
        encode=encode,
        decode=decode,
        layer=layer,
        classifier=classifier,
        discriminator=discriminator,
        auxiliary=auxiliary,
        prior=prior,
        input_shape=input_shape,
    )
