"""Per-latent-dimension Grad-CAM maps that stay differentiable, so that a loss on them trains the encoder."""

from __future__ import annotations

from typing import Literal

import torch

import xgen

Gradient = Literal["full", "activations"]
Sign = Literal["abs", "relu"]
Normalize = Literal["max", "sum", "none"]


def latent_gradcams(mu: torch.Tensor, activations: torch.Tensor, gradient: Gradient = "full") -> torch.Tensor:
    """Signed Grad-CAM of every latent mean at a layer: cam[n, d] = sum_c alpha[n, d, c] A[n, c] (Liu et al.'s eq. 2
    for the score mu_d, before its sign rule), alpha[n, d, c] = the spatial mean of d mu[n, d] / d A[n, c].

    mu: (N, D), computed from activations A: (N, C, h, w) with the graph kept -> cams (N, D, h, w) at the layer's
    resolution (a loss on them needs no upsampling). All D dimensions come from one batched backward pass
    (`xgen.gradients.output_jacobian`), not a loop over them. `gradient="full"` builds alpha with create_graph, so
    a loss on the maps reaches the weights both through A and through alpha (second order); `"activations"`
    treats alpha as a constant, the other public reproduction's choice, where the loss flows through A only.
    """
    full = gradient == "full"
    grads = xgen.gradients.output_jacobian(mu, activations, create_graph=full, retain_graph=True)
    alpha = grads.mean(dim=(-2, -1))
    if not full:
        alpha = alpha.detach()
    return torch.einsum("dnc,nchw->ndhw", alpha, activations)


def latent_gradcams_loop(mu: torch.Tensor, activations: torch.Tensor, gradient: Gradient = "full") -> torch.Tensor:
    """The same cams as `latent_gradcams`, one backward pass per latent dimension: the reference it is tested against
    and the baseline of benchmarks/factorvae_step.py."""
    full = gradient == "full"
    alphas = []
    for d in range(mu.shape[1]):
        (g,) = torch.autograd.grad(mu[:, d].sum(), activations, create_graph=full, retain_graph=True)
        alphas.append(g.mean(dim=(-2, -1)))
    alpha = torch.stack(alphas, dim=1)
    if not full:
        alpha = alpha.detach()
    return torch.einsum("ndc,nchw->ndhw", alpha, activations)


def attention_maps(cams: torch.Tensor, sign: Sign = "abs", normalize: Normalize = "max", eps: float = 1e-8):
    """The maps eq. 1 compares, from signed cams (N, D, h, w): the sign rule, then a per-map scale (N, D, h, w) >= 0.

    sign: `abs`, the official expVAE code's rule (and `vae-gradcam`'s default), or `relu`, the paper's eq. 2.
    normalize: eq. 1 is not scale-free per map: shrinking one map towards zero drives the ratio to 0 without moving
    anything apart. `max` (default) divides each map by its maximum, so the ratio compares where the maps respond,
    as the [0, 1] attention maps of the paper's figures; `sum` makes each map sum to one (then eq. 1 is one minus
    the total-variation distance); `none` keeps raw Grad-CAM values, the literal reading. With `relu`, a dimension
    whose cam is negative everywhere gives an empty map, and any pair containing it scores 0 under every scale.
    """
    maps = cams.abs() if sign == "abs" else cams.clamp_min(0.0)
    if normalize == "max":
        return maps / (maps.flatten(2).amax(dim=2)[..., None, None] + eps)
    if normalize == "sum":
        return maps / (maps.flatten(2).sum(dim=2)[..., None, None] + eps)
    return maps


def dimension_cams(model: xgen.Model, x: torch.Tensor, layer: str = "encoder.0", batch_size: int = 256) -> torch.Tensor:
    """The signed per-dimension Grad-CAMs at `layer` of a trained model, without gradients kept: x (N, C, H, W) in
    [0, 1] -> cams (N, D, h, w) on the CPU. `attention_maps` turns them into the maps eq. 1 compares, e.g. to measure
    on held-out images how much the dimensions' high-response regions overlap (claim (v) of Liu et al.)."""
    out = []
    module = model.layer(layer)
    with xgen.evaluation_mode(model):
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(model.device)
            with xgen.gradients.capture(module, cut=True) as seen, torch.enable_grad():
                mu = model.encode(batch).mean.flatten(1)
            out.append(latent_gradcams(mu, seen[0], gradient="activations").detach().cpu())
    return torch.cat(out)
