"""One Bernoulli-Bernoulli restricted Boltzmann machine: energy, free energy, conditionals, Gibbs sampling, CD-k.

Units take values in {0, 1} (`units="binary"`) or {-1, +1} (`units="spin"`, the reproducibility report's choice,
section 3.4.2). With visible v: (N, V), hidden h: (N, H), weight W: (V, H) and biases b: (V,), c: (H,):

    E(v, h) = -b.v - c.h - v W h                                   (the same energy in both unit domains)
    a = c + v W (hidden pre-activations),   a' = b + h W^T (visible pre-activations)
    binary: P(h_j = 1 | v) = sigmoid(a_j),   E[h_j | v] = sigmoid(a_j),   F(v) = -b.v - sum_j softplus(a_j)
    spin:   P(h_j = 1 | v) = sigmoid(2 a_j), E[h_j | v] = tanh(a_j),      F(v) = -b.v - sum_j log(2 cosh a_j)

F is the free energy, F(v) = -log sum_h exp(-E(v, h)), so p(v) is proportional to exp(-F(v)). Real-valued v (pixel
intensities, or the means of the layer below) enter the same formulas: the usual mean-field treatment of
grey-level data.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Units = Literal["binary", "spin"]


class RBM(nn.Module):
    """A Bernoulli-Bernoulli RBM with `visible` and `hidden` units in the domain `units`.

    Weights start as N(0, 0.01^2) and the biases at zero (Hinton, "A practical guide to training RBMs", section 8);
    `init_visible_bias` sets b from the data before training.
    """

    def __init__(self, visible: int, hidden: int, units: Units = "binary") -> None:
        super().__init__()
        self.units = units
        self.weight = nn.Parameter(0.01 * torch.randn(visible, hidden))
        self.visible_bias = nn.Parameter(torch.zeros(visible))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))

    @property
    def visible(self) -> int:
        return self.weight.shape[0]

    @property
    def hidden(self) -> int:
        return self.weight.shape[1]

    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        """v: (N, V) -> the hidden pre-activations a = c + v W: (N, H)."""
        return self.hidden_bias + v @ self.weight

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """The hidden pre-activations, so that a forward hook on this module sees them (`xgen.gradients`)."""
        return self.hidden_logits(v)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h: (N, H) -> the visible pre-activations a' = b + h W^T: (N, V)."""
        return self.visible_bias + h @ self.weight.t()

    def on_logit(self, a: torch.Tensor) -> torch.Tensor:
        """Pre-activations a -> the log-odds of each unit being on (1 or +1): a for binary units, 2a for spins."""
        return a if self.units == "binary" else 2.0 * a

    def mean(self, a: torch.Tensor) -> torch.Tensor:
        """Pre-activations a -> the conditional means E[unit | rest]: sigmoid(a) (binary) or tanh(a) (spin)."""
        return torch.sigmoid(a) if self.units == "binary" else torch.tanh(a)

    def from_on(self, on: torch.Tensor) -> torch.Tensor:
        """A value in [0, 1] meaning "on" (a probability or an indicator) -> the unit domain ({0, 1} or [-1, 1])."""
        return on if self.units == "binary" else 2.0 * on - 1.0

    def to_on(self, values: torch.Tensor) -> torch.Tensor:
        """Unit-domain values -> [0, 1]: the inverse of `from_on`."""
        return values if self.units == "binary" else 0.5 * (values + 1.0)

    def sample(self, a: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """A Bernoulli sample of the units with pre-activations a: (N, K), using the uniforms `uniform` (N or 1, K)."""
        return self.from_on((uniform < torch.sigmoid(self.on_logit(a))).to(a.dtype))

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) = -b.v - c.h - v W h for v: (N, V), h: (N, H) -> (N,)."""
        return -(v @ self.visible_bias) - (h @ self.hidden_bias) - ((v @ self.weight) * h).sum(dim=1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)) for v: (N, V) -> (N,), the hidden units summed out in closed form."""
        return self._free_energy(v, self.hidden_logits(v))

    def _free_energy(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        hidden_term = F.softplus(a) if self.units == "binary" else torch.logaddexp(a, -a)
        return -(v @ self.visible_bias) - hidden_term.sum(dim=1)

    def init_visible_bias(self, v: torch.Tensor) -> None:
        """Set b so that, with no hidden input, each visible unit's mean is the data's mean (Hinton's guide, 8.1).

        v: (N, V) training data in the unit domain.
        """
        on = self.to_on(v).mean(dim=0).clamp(0.01, 0.99)
        with torch.no_grad():
            self.visible_bias.copy_(on.logit() if self.units == "binary" else 0.5 * on.logit())

    def gibbs(
        self,
        v: torch.Tensor,
        steps: int,
        generator: torch.Generator | None = None,
        *,
        mean_field: bool = False,
        logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`steps` alternating updates v -> h -> v from v: (N, V); returns the last visible means (N, V).

        Sampled (the default): hidden and intermediate visible states are Bernoulli samples, and the chain's
        last visible layer is returned as its conditional means (Hinton's guide, 3.2: reconstructions as
        probabilities). `mean_field=True` replaces every sample by its mean (a deterministic reconstruction).
        `generator` seeds the uniforms; each draw is one row broadcast over the batch, so an example's chain does
        not depend on the other examples in its batch. `logits`: hidden_logits(v) when already computed.
        """
        for step in range(steps):
            a = logits if step == 0 and logits is not None else self.hidden_logits(v)
            h = self.mean(a) if mean_field else self.sample(a, _uniform(a, generator))
            a_v = self.visible_logits(h)
            last = step == steps - 1
            v = self.mean(a_v) if mean_field or last else self.sample(a_v, _uniform(a_v, generator))
        return v

    def reconstruction_error(self, v: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error per unit between v: (N, V) and its one-step mean-field reconstruction, on the [0, 1]
        scale in both unit domains -> (N,). `logits`: hidden_logits(v) when already computed."""
        recon = self.gibbs(v, 1, mean_field=True, logits=logits)
        return (self.to_on(recon) - self.to_on(v)).square().mean(dim=1)

    def pseudo_log_likelihood(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The stochastic approximation of the log pseudo-likelihood of v: (N, V) -> (N,).

        log PL(x) = sum_i log P(x_i | x_-i) is estimated, as in the deeplearning.net RBM tutorial, from one visible
        unit i chosen at random per example: V * log sigmoid(F(x~) - F(x)), where x is v binarised at the middle of
        the unit range and x~ is x with unit i flipped. Unbiased over the choice of i; higher is better. F(x~)
        reuses x's hidden pre-activations, changed by one row of W, so the estimate costs one matrix product.
        """
        x = self.from_on((self.to_on(v) > 0.5).to(v.dtype))
        index = torch.randint(0, v.shape[1], (v.shape[0], 1), generator=generator, device=v.device)
        old = x.gather(1, index)
        change = self.from_on(1.0 - self.to_on(old)) - old
        flipped = x.scatter(1, index, old + change)
        a = self.hidden_logits(x)
        a_flipped = a + change * self.weight[index[:, 0]]
        free = self._free_energy(x, a)
        free_flipped = self._free_energy(flipped, a_flipped)
        return v.shape[1] * F.logsigmoid(free_flipped - free)

    def contrastive_divergence_loss(
        self, v0: torch.Tensor, negative: torch.Tensor, logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The CD surrogate mean F(v0) - mean F(negative): its gradient in (W, b, c) is the CD-k update, negated.

        dF(v)/dW = -v E[h | v]^T, so the gradient of this loss is -(<v h>_data - <v h>_model) with the model term
        taken at the chain's end `negative` (held constant): the positive and negative phases of CD in one
        autograd call, for both unit domains. v0, negative: (N, V) and (M, V); `logits`: hidden_logits(v0),
        with its graph, when already computed.
        """
        a0 = self.hidden_logits(v0) if logits is None else logits
        return self._free_energy(v0, a0).mean() - self.free_energy(negative.detach()).mean()


def _uniform(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniforms (N, K) like `like`; with a generator, one seeded row (1, K) shared by every example."""
    if generator is None:
        return torch.rand(like.shape, device=like.device, dtype=like.dtype)
    return torch.rand((1, like.shape[1]), generator=generator, device=like.device, dtype=like.dtype)
