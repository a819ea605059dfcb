"""Gradients of a model's outputs with respect to a layer's activations: the machinery of every Grad-CAM.

Plugins call these instead of managing hooks: `layer_gradients` for one per-sample score in one backward pass,
`channel_weights` for the spatially averaged gradients of K outputs at once (the Grad-CAM weights alpha of every
output), computed without a Python loop over the outputs, and `output_jacobian` for the same from tensors a plugin
captured itself (e.g. inside a training step, where the maps must stay differentiable).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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


def cam_maps(
    cam: torch.Tensor, size: tuple[int, int], sign: str = "none", normalize: str = "none", rtol: float = 1e-5
) -> torch.Tensor:
    """Class-activation maps at input resolution: cam (N, K, h, w) -> (N, K, H, W) by bilinear upsampling to `size`,
    then the sign rule (`abs`, `relu` or `none`), then per-map min-max scaling to [0, 1] (`normalize="minmax"`).

    A flat map (range within `rtol` of its largest magnitude: float32 rounding of sums done in different orders)
    scales to 0, never to NaN nor to stretched noise, so an output that does not depend on the image has a flat map.
    """
    up = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    if sign == "abs":
        up = up.abs()
    elif sign == "relu":
        up = up.clamp_min(0.0)
    if normalize == "minmax":
        flat = up.flatten(2)
        low = flat.min(dim=2, keepdim=True).values
        span = flat.max(dim=2, keepdim=True).values - low
        is_flat = span <= rtol * flat.abs().max(dim=2, keepdim=True).values
        up = torch.where(is_flat, torch.zeros_like(flat), (flat - low) / span.clamp_min(1e-12)).view_as(up)
    return up


def check_spatial(activations: torch.Tensor, layer: str) -> None:
    """Raise WrapError unless the layer's output is a spatial map (N, C, h, w), as channel weighting needs."""
    if activations.dim() != 4:
        raise WrapError(
            f"Grad-CAM weights the channels of a spatial map, but layer '{layer}' outputs shape "
            f"{tuple(activations.shape)}, not (N, C, h, w); choose a convolutional layer with layer=."
        )


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


def _check_outputs(outputs: torch.Tensor, n: int) -> None:
    if outputs.dim() != 2 or outputs.shape[0] != n:
        raise WrapError(f"the outputs must have shape (N, K), got {tuple(outputs.shape)}.")


def output_jacobian(
    outputs: torch.Tensor, inputs: torch.Tensor, *, create_graph: bool = False, retain_graph: bool | None = None
) -> torch.Tensor:
    """d outputs[:, k] / d inputs for every k at once: outputs (N, K) -> (K, *inputs.shape).

    One backward pass vmapped over the K one-hot cotangents (autograd's `is_grads_batched`), not K passes. Each row
    of `outputs` must depend on its own row of `inputs` only (per-sample outputs), so that summing over the batch
    mixes nothing. create_graph=True keeps the result differentiable (second order), for losses built on Grad-CAM
    weights; retain_graph defaults to create_graph, as in `torch.autograd.grad`.
    """
    k = outputs.shape[1]
    eye = torch.eye(k, dtype=outputs.dtype, device=outputs.device).unsqueeze(1).expand(k, *outputs.shape)
    (grads,) = torch.autograd.grad(
        outputs,
        inputs,
        grad_outputs=eye,
        is_grads_batched=True,
        retain_graph=retain_graph,
        create_graph=create_graph,
    )
    return grads


def layer_jacobian(
    model: Model, layer: str, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor]
) -> LayerGradients:
    """Gradients of each of K outputs `forward(x)`: (N, K) w.r.t. the layer, as gradients of shape (K, N, C, h, w).

    One batched backward pass (autograd's vmap over the K one-hot cotangents), not K passes in a loop.
    """
    activations, outputs = _run(model, layer, x, forward, cut=True)
    _check_outputs(outputs, x.shape[0])
    return LayerGradients(activations, output_jacobian(outputs, activations), outputs)


def channel_weights(
    model: Model,
    layer: str,
    x: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor],
    *,
    create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grad-CAM weights of every output: alpha[n, k, c] = mean over (h, w) of d forward(x)[n, k] / dA[n, c].

    Returns (activations A: (N, C, h, w), alpha: (N, K, C), outputs: (N, K)). With create_graph=True, A, alpha
    and the outputs stay attached to the model's weights (alpha to second order), so a loss on the maps trains
    them; the fast path below is first-order only and is then skipped.

    Fast path: when the first nn.Linear run after the layer reads phi(A) flattened, with phi elementwise (a
    ReLU, say), alpha = (1/hw) G (W * phi'(A)) summed over space, where G: (K, N, J) are the gradients of the K
    outputs at that Linear's output (one batched backward through the small head) and W its (J, C, h, w)
    weight. This costs about one forward of the Linear instead of K backward passes through it. Both
    assumptions are checked on every call (a random probe of phi's Jacobian, and a random combination of the
    K outputs against a full backward pass); if either fails, the batched backward of `layer_jacobian` is used.
    """
    target = model.layer(layer)
    linears: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
    state = {"after": False}

    def after_layer(*_: object) -> None:
        state["after"] = True

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if state["after"] and not linears and inputs and isinstance(inputs[0], torch.Tensor):
            linears.append((module, inputs[0], output))

    handles = [target.register_forward_hook(after_layer)]
    handles += [m.register_forward_hook(record) for m in model.module.modules() if isinstance(m, nn.Linear)]
    try:
        activations, outputs = _run(model, layer, x, forward, cut=not create_graph)
    finally:
        for handle in handles:
            handle.remove()
    _check_outputs(outputs, x.shape[0])
    check_spatial(activations, layer)
    alpha = None if create_graph else _linear_head_alpha(activations, outputs, linears[0] if linears else None)
    if alpha is None:
        grads = output_jacobian(outputs, activations, create_graph=create_graph)
        alpha = grads.mean(dim=(-2, -1)).transpose(0, 1)
    return activations, alpha, outputs


def _linear_head_alpha(
    activations: torch.Tensor, outputs: torch.Tensor, linear: tuple[nn.Module, torch.Tensor, torch.Tensor] | None
) -> torch.Tensor | None:
    """alpha (N, K, C) through the structure described in `channel_weights`, or None when it does not hold."""
    if linear is None:
        return None
    module, flat, hidden = linear
    n, c, h, w = activations.shape
    if type(module).forward is not nn.Linear.forward or flat.shape != (n, c * h * w) or not flat.requires_grad:
        return None
    generator = torch.Generator(device=flat.device).manual_seed(0)
    (phi_prime,) = torch.autograd.grad(flat, activations, torch.ones_like(flat), retain_graph=True)
    probe = torch.rand(flat.shape, generator=generator, device=flat.device, dtype=flat.dtype)
    (probed,) = torch.autograd.grad(flat, activations, probe, retain_graph=True)
    if not torch.allclose(probed, phi_prime * probe.view_as(activations), rtol=1e-4, atol=1e-6):
        return None
    try:
        head = output_jacobian(outputs, hidden, retain_graph=True)
    except RuntimeError:
        return None
    weight = module.weight.detach().view(-1, c, h * w)
    pooled = torch.einsum("jcs,ncs->njc", weight, phi_prime.view(n, c, h * w))
    alpha = torch.einsum("knj,njc->nkc", head, pooled) / (h * w)
    mix = torch.rand(outputs.shape, generator=generator, device=outputs.device, dtype=outputs.dtype)
    (full,) = torch.autograd.grad(outputs, activations, mix, retain_graph=True)
    expected = full.mean(dim=(-2, -1))
    got = torch.einsum("nk,nkc->nc", mix, alpha)
    scale = expected.abs().max().clamp_min(1e-12)
    if not torch.allclose(got / scale, expected / scale, rtol=1e-4, atol=1e-5):
        return None
    return alpha
