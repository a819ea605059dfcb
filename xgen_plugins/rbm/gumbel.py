"""Relaxed samples of binary units (the Gumbel trick), and the one-hot relaxation that must not be used here.

A Bernoulli unit with log-odds l is on exactly when l + L > 0, L ~ Logistic(0, 1) (the difference of two Gumbel
variables). The binary concrete (Gumbel-sigmoid) sample sigmoid((l + L) / tau) relaxes that indicator: it is
differentiable in l and tends to the hard sample 1[l + L > 0] as tau -> 0 (Maddison, Mnih and Teh, 2017,
section 3.3; Jang, Gu and Poole, 2017).

Why not the relaxed one-hot (categorical) sample: softmax((l + G) / tau) over the K hidden units treats the
layer as ONE categorical variable with K outcomes. Its entries sum to 1 for every input, so a score that sums them
is constant, and its gradient is zero up to rounding: Grad-CAM then draws float noise. The report's public code
did this (section 3.4.2 names the Gumbel-max trick); K independent binary units need K independent binary
relaxations, which is what `relax` does. `relaxed_one_hot` is kept only to reproduce and test that flaw.
"""

from __future__ import annotations

from typing import Literal

import torch

Relaxation = Literal["concrete", "straight-through", "probability", "one-hot"]

#: Uniforms are kept this far from 0 and 1 so the logistic and Gumbel transforms stay finite in float32.
EPS = 1e-6


def _uniform(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype).clamp(EPS, 1.0 - EPS)


def logistic_noise(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Logistic(0, 1) noise log u - log(1 - u) for the K units of logits (N, K): one seeded row (1, K), shared
    by every example so an example's map does not depend on its batch."""
    u = _uniform((1, logits.shape[1]), generator, logits)
    return u.log() - (-u).log1p()


def hard_sample(logits: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The exact Bernoulli sample 1[l + L > 0] in {0, 1}: logits (N, K), noise broadcastable -> (N, K)."""
    return (logits + noise > 0).to(logits.dtype)


def binary_concrete(logits: torch.Tensor, noise: torch.Tensor, tau: float) -> torch.Tensor:
    """The binary concrete (Gumbel-sigmoid) sample sigmoid((l + L) / tau) in (0, 1): (N, K)."""
    return torch.sigmoid((logits + noise) / tau)


def straight_through(logits: torch.Tensor, noise: torch.Tensor, tau: float) -> torch.Tensor:
    """The hard sample in the forward pass, the binary concrete sample's gradient in the backward pass: (N, K)."""
    soft = binary_concrete(logits, noise, tau)
    return hard_sample(logits, noise) + (soft - soft.detach())


def relaxed_one_hot(logits: torch.Tensor, generator: torch.Generator, tau: float) -> torch.Tensor:
    """softmax((l + G) / tau) over the K units, G ~ Gumbel(0, 1): a relaxed one-hot (N, K) whose rows sum to 1.

    The wrong relaxation for K binary units (see the module docstring): kept to reproduce the report's flaw.
    """
    u = _uniform((1, logits.shape[1]), generator, logits)
    gumbel = -(-u.log()).log()
    return torch.softmax((logits + gumbel) / tau, dim=1)


def relax(logits: torch.Tensor, relaxation: Relaxation, tau: float, generator: torch.Generator) -> torch.Tensor:
    """A differentiable stand-in in [0, 1] for a sample of binary units with log-odds logits: (N, K) -> (N, K).

    "concrete": binary concrete at temperature tau; "straight-through": hard forward, concrete backward;
    "probability": sigmoid(l), the deterministic mean (no noise, tau unused); "one-hot": the report's relaxed
    categorical sample (degenerate, see the module docstring).
    """
    if relaxation == "probability":
        return torch.sigmoid(logits)
    if relaxation == "one-hot":
        return relaxed_one_hot(logits, generator, tau)
    noise = logistic_noise(logits, generator)
    if relaxation == "straight-through":
        return straight_through(logits, noise, tau)
    return binary_concrete(logits, noise, tau)
