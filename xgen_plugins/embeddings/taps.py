"""Where an embedding is read from a model: `mean`, a head's output, or any layer's output, flattened.

Taps: `mean` (the encoder's latent mean), `discriminator` and `auxiliary` (the raw output of those heads, e.g.
InfoGAN's Q), any dotted layer name (its output captured with a forward hook while the model encodes, or while its
discriminator runs when it has no encoder), and aliases a module declares in a dict attribute `embedding_taps`
(`{"q": "auxiliary", "conv": "discriminator.b4.conv", "dense": "discriminator.b4.dense0"}`), which is how a GAN
architecture names the heads of seed 004 section 4.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import nn

import xgen

#: Images per forward pass. Layers that mix a batch (minibatch-stddev) make a tap depend on it; xgen fixes it here.
BATCH = 64

HEADS = ("discriminator", "auxiliary")


def aliases(model: xgen.Model) -> dict[str, str]:
    """The tap names the model's module declares in `embedding_taps`, each mapped to a tap of the other kinds."""
    declared = getattr(model.module, "embedding_taps", None)
    return {str(k): str(v) for k, v in declared.items()} if isinstance(declared, dict) else {}


def _layers(model: xgen.Model) -> list[str]:
    if isinstance(model.module, torch.jit.ScriptModule):
        return []
    return [name for name, _ in model.module.named_modules() if name]


def _running_layers(model: xgen.Model) -> list[str]:
    """The layers that run when the model encodes (or runs its discriminator), found by running one blank image
    with hooks when the model knows its input shape; otherwise every layer."""
    runner, layers = _runner(model), _layers(model)
    if runner is None or model.input_shape is None or not layers:
        return layers if runner is not None else []
    ran: set[str] = set()
    handles = [
        model.module.get_submodule(name).register_forward_hook(lambda *_, name=name: ran.add(name)) for name in layers
    ]
    try:
        with torch.no_grad():
            runner[1](torch.zeros(1, *model.input_shape, device=model.device))
    except Exception:
        return layers
    finally:
        for handle in handles:
            handle.remove()
    return [name for name in layers if name in ran]


def _runner(model: xgen.Model) -> tuple[str, Callable[[torch.Tensor], object]] | None:
    """What runs to capture a layer: the encoder, else the discriminator, else the auxiliary head."""
    if "encode" in model.capabilities:
        return "encodes", model.encode
    for head in HEADS:
        if head in model.capabilities:
            return f"runs its {head}", model.head(head)
    return None


def resolve(model: xgen.Model, tap: str, who: str) -> str:
    """The tap `tap` names on `model` (an alias followed), or XgenError listing the taps the model has."""
    target = aliases(model).get(tap, tap)
    if target == "mean" and "encode" in model.capabilities:
        return target
    if target in HEADS and target in model.capabilities:
        return target
    layers = _layers(model)
    if target in layers and _runner(model) is not None:
        return target
    named = (["mean"] if "encode" in model.capabilities else []) + [h for h in HEADS if h in model.capabilities]
    named += list(aliases(model))
    choices = named + _running_layers(model)
    close = difflib.get_close_matches(tap, choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise xgen.XgenError(
        f"{who} reads tap={tap}, which this model does not have{hint}; its taps are {', '.join(choices) or 'none'}."
    )


def embed(model: xgen.Model, x: torch.Tensor, tap: str) -> torch.Tensor:
    """x: (N, C, H, W) in [0, 1] -> (N, F) float64: the tap's output for each image, flattened; batched, no grad.

    `tap` must come from `resolve`."""
    rows = []
    with torch.no_grad():
        for batch in x.split(BATCH):
            rows.append(_one_batch(model, batch, tap).flatten(1).double())
    return torch.cat(rows)


def _one_batch(model: xgen.Model, x: torch.Tensor, tap: str) -> torch.Tensor:
    if tap == "mean":
        return model.encode(x).mean
    if tap in HEADS:
        return _tensor(model.head(tap)(x), tap)
    runner = _runner(model)
    assert runner is not None
    what, run = runner
    captured: list[torch.Tensor] = []
    module: nn.Module = model.module.get_submodule(tap)
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(_tensor(out, tap)))
    try:
        run(x)
    finally:
        handle.remove()
    if not captured:
        raise xgen.XgenError(f"layer '{tap}' does not run when the model {what}; choose a layer that does.")
    return captured[-1]


def _tensor(out: object, tap: str) -> torch.Tensor:
    """A tap's output as one tensor: the first tensor of a tuple or list."""
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise xgen.XgenError(f"tap '{tap}' gives {type(out).__name__}, not a tensor; choose a layer that outputs one.")
    return out
