"""Per-latent-dimension Grad-CAM maps that stay differentiable, so that a loss on them trains the encoder."""

from __future__ import annotations

from typing import Literal

import torch

import xgen
from xgen_plugins.factor_vae.losses import attention_disentanglement

Gradient = Literal["full", "activations"]


def latent_gradcams(mu: torch.Tensor, activations: torch.Tensor, gradient: Gradient = "full") -> torch.Tensor:
    """Grad-CAM of every latent mean at a layer: maps[n, d] = ReLU(sum_c alpha[n, d, c] A[n, c]) (Liu et al.'s eq. 2
    for the score mu_d), alpha[n, d, c] = the spatial mean of d mu[n, d] / d A[n, c].

    mu: (N, D), computed from activations A: (N, C, h, w) with the graph kept -> maps (N, D, h, w) at the layer's
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
    return torch.einsum("dnc,nchw->ndhw", alpha, activations).clamp_min(0.0)


def latent_gradcams_loop(mu: torch.Tensor, activations: torch.Tensor, gradient: Gradient = "full") -> torch.Tensor:
    """The same maps as `latent_gradcams`, one backward pass per latent dimension: the reference it is tested against
    and the baseline of benchmarks/factorvae_step.py."""
    full = gradient == "full"
    alphas = []
    for d in range(mu.shape[1]):
        (g,) = torch.autograd.grad(mu[:, d].sum(), activations, create_graph=full, retain_graph=True)
        alphas.append(g.mean(dim=(-2, -1)))
    alpha = torch.stack(alphas, dim=1)
    if not full:
        alpha = alpha.detach()
    return torch.einsum("ndc,nchw->ndhw", alpha, activations).clamp_min(0.0)


def dimension_overlap(
    model: xgen.Model, x: torch.Tensor, layer: str = "encoder.0", pairs: str = "top2", batch_size: int = 256
) -> torch.Tensor:
    """The eq. 1 overlap of each image's per-dimension maps at `layer`, under `pairs` (see
    `losses.attention_disentanglement`): x (N, C, H, W) in [0, 1] -> (N,), for held-out images of a trained model
    (claim (v) of Liu et al.: the high-response regions of different dimensions separate)."""
    out = []
    module = model.layer(layer)
    with xgen.evaluation_mode(model):
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(model.device)
            with xgen.gradients.capture(module, cut=True) as seen, torch.enable_grad():
                mu = model.encode(batch).mean.flatten(1)
            maps = latent_gradcams(mu, seen[0], gradient="activations").detach()
            out.append(attention_disentanglement(maps, pairs, reduction="none"))
    return torch.cat(out).cpu()
