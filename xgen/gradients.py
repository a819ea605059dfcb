"""Gradients of a model's outputs with respect to a layer's activations: the machinery of every Grad-CAM.

Plugins call these instead of managing hooks: `layer_gradients` for one per-sample score in one backward pass,
`channel_weights` for the spatially averaged gradients of K outputs at once (the Grad-CAM weights alpha of every
output), computed without a Python loop over the outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from xgen.errors import WrapError
from xgen.model import Model


@dataclass
class LayerGradients:
    """activations A: (N, C, h, w); gradients dS/dA: (N, C, h, w); outputs S: what `forward` returned."""

    activations: torch.Tensor
    gradients: torch.Tensor
    outputs: torch.Tensor


@contextlib.contextmanager
def capture(layer: nn.Module, *, cut: bool) -> Iterator[list[torch.Tensor]]:
    """Record the output of `layer` in the forward passes run inside the block.

    cut=True replaces the output by a detached leaf that requires grad: gradients stop at the layer, so nothing
    upstream is kept for backward and frozen weights do not matter. cut=False keeps the graph (for losses that
    train through the map, with create_graph=True).
    """
    seen: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor):
            raise WrapError(f"layer {type(_module).__name__} returns {type(output).__name__}, not a tensor.")
        if cut:
            output = output.detach().requires_grad_(True)
            seen.append(output)
            return output
        seen.append(output)
        return None

    handle = layer.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _run(model: Model, layer: str, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor], cut: bool):
    with capture(model.layer(layer), cut=cut) as seen, torch.enable_grad():
        outputs = forward(x)
    if len(seen) != 1:
        raise WrapError(
            f"layer '{layer}' ran {len(seen)} times in one forward pass; choose a layer that runs exactly once "
            "with layer=."
        )
    activations = seen[0]
    if activations.shape[0] != x.shape[0]:
        raise WrapError(
            f"layer '{layer}' output has batch size {activations.shape[0]} for {x.shape[0]} images; "
            "choose a layer whose first dimension is the batch."
        )
    if not activations.requires_grad:
        raise WrapError(
            f"the output of layer '{layer}' does not require grad, so it cannot be explained; "
            "make sure the model's weights or input take part in autograd."
        )
    return activations, outputs


def layer_gradients(
    model: Model,
    layer: str,
    x: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor],
    *,
    create_graph: bool = False,
) -> LayerGradients:
    """Gradients of the per-sample scores `forward(x)`: (N,) with respect to the output of `layer`.

    All N scores are independent, so one backward pass of their sum gives every image's gradient.
    """
    activations, outputs = _run(model, layer, x, forward, cut=not create_graph)
    if outputs.dim() != 1 or outputs.shape[0] != x.shape[0]:
        raise WrapError(f"the score must have shape (N,) = ({x.shape[0]},), got {tuple(outputs.shape)}.")
    (gradients,) = torch.autograd.grad(outputs.sum(), activations, create_graph=create_graph)
    return LayerGradients(activations, gradients, outputs)


def layer_jacobian(
    model: Model, layer: str, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor]
) -> LayerGradients:
    """Gradients of each of K outputs `forward(x)`: (N, K) w.r.t. the layer, as gradients of shape (K, N, C, h, w).

    One batched backward pass (autograd's vmap over the K one-hot cotangents), not K passes in a loop.
    """
    activations, outputs = _run(model, layer, x, forward, cut=True)
    if outputs.dim() != 2 or outputs.shape[0] != x.shape[0]:
        raise WrapError(f"the outputs must have shape (N, K), got {tuple(outputs.shape)}.")
    k = outputs.shape[1]
    cotangents = torch.eye(k, dtype=outputs.dtype, device=outputs.device).unsqueeze(1).expand(k, *outputs.shape)
    (gradients,) = torch.autograd.grad(outputs, activations, grad_outputs=cotangents, is_grads_batched=True)
    return LayerGradients(activations, gradients, outputs)


def channel_weights(
    model: Model, layer: str, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grad-CAM weights of every output: alpha[n, k, c] = mean over (h, w) of d forward(x)[n, k] / dA[n, c].

    Returns (activations A: (N, C, h, w), alpha: (N, K, C), outputs: (N, K)).
    """
    result = layer_jacobian(model, layer, x, forward)
    alpha = result.gradients.mean(dim=(-2, -1)).transpose(0, 1)
    return result.activations, alpha, result.outputs
