"""The latent factors C of InfoGAN and InfoStyleGAN (Paul et al., ../seeds/004 section 2.2 and 5.2): a spec such as
`"bern:7,cat:3,unif:10"`, their prior p(c), and the log-likelihood of c under the auxiliary network Q (eq. 2, 5).

Layouts, in spec order, one group per spec entry:
- `bern:n`: n fair Bernoulli codes in {0, 1}; c holds n values, Q gives n logits.
- `cat:k`: one categorical code with k classes, uniform prior; c holds its one-hot (k values), Q gives k logits.
  Several categorical codes are several entries (`cat:3,cat:10`).
- `unif:n`: n codes uniform on [-1, 1] (InfoGAN's range; the paper gives none); c holds n values, Q gives n means
  followed by n log-variances of the Gaussian N(mu, sigma^2) the paper fits (section 5.2), or n means only when the
  variance is fixed to 1 (`learned_variance=False`, the official InfoGAN's choice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

import xgen

Kind = Literal["bern", "cat", "unif"]
KINDS: tuple[Kind, ...] = ("bern", "cat", "unif")

#: The example given in every error message: the paper's CelebA layout.
EXAMPLE = "bern:7,cat:3,unif:10"

_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Variable:
    """One code variable: its name (`cat0`, `unif3`), kind, and where it lives in c and in Q's output."""

    name: str
    kind: Kind
    c: slice
    q: slice


@dataclass(frozen=True)
class Group:
    """One spec entry: `size` Bernoulli or uniform codes, or one categorical code of `size` classes."""

    kind: Kind
    size: int

    @property
    def width(self) -> int:
        """Columns of c the group fills."""
        return self.size

    def q_width(self, learned_variance: bool) -> int:
        """Columns of Q's output the group reads."""
        return 2 * self.size if self.kind == "unif" and learned_variance else self.size

    def log_prior(self) -> float:
        """log p(c) of any value of the group: -log 2 per Bernoulli or U(-1, 1) code, -log k for a k-way code."""
        return -math.log(self.size) if self.kind == "cat" else -self.size * math.log(2)


def parse(spec: str) -> tuple[Group, ...]:
    """`"bern:7,cat:3,unif:10"` -> its groups; `""` or `"none"` -> no codes. Raises XgenError on a bad spec."""
    text = spec.strip()
    if text.lower() in {"", "none"}:
        return ()
    groups = []
    for entry in text.split(","):
        kind, sep, count = entry.strip().partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in KINDS:
            raise xgen.XgenError(
                f"codes entry '{entry.strip()}' is not KIND:COUNT with KIND bern, cat or unif; write e.g. "
                f"codes={EXAMPLE} (7 Bernoulli, one 3-way categorical, 10 uniform codes)."
            )
        try:
            size = int(count)
        except ValueError:
            size = 0
        low = 2 if kind == "cat" else 1
        if size < low:
            what = "classes >= 2" if kind == "cat" else "a count >= 1"
            raise xgen.XgenError(f"codes entry '{entry.strip()}' needs {what}; write e.g. codes={EXAMPLE}.")
        groups.append(Group(kind, size))  # type: ignore[arg-type]
    return tuple(groups)


class Codes:
    """The factors C of a spec: sampling from p(c), and log Q(c|x) - log p(c) per image (eq. 2, 5).

    learned_variance: Q gives a log-variance beside each uniform code's mean (the paper); False fixes sigma = 1.
    """

    def __init__(self, spec: str, learned_variance: bool = True) -> None:
        self.spec = spec
        self.groups = parse(spec)
        self.learned_variance = learned_variance
        variables: list[Variable] = []
        c_at = q_at = 0
        counters = dict.fromkeys(KINDS, 0)
        for group in self.groups:
            q_width = group.q_width(learned_variance)
            if group.kind == "cat":
                variables.append(
                    Variable(
                        f"cat{counters['cat']}", "cat", slice(c_at, c_at + group.size), slice(q_at, q_at + group.size)
                    )
                )
                counters["cat"] += 1
            else:
                for i in range(group.size):
                    q = (
                        slice(q_at + i, q_at + group.size + i + 1, group.size)
                        if group.kind == "unif" and learned_variance
                        else slice(q_at + i, q_at + i + 1)
                    )
                    variables.append(
                        Variable(f"{group.kind}{counters[group.kind]}", group.kind, slice(c_at + i, c_at + i + 1), q)
                    )
                    counters[group.kind] += 1
            c_at += group.width
            q_at += q_width
        self.width = c_at
        self.q_dim = q_at
        #: Every code variable, in spec order: a categorical code is one variable, `bern:n` and `unif:n` are n.
        self.variables = tuple(variables)

    def __repr__(self) -> str:
        return f"Codes({self.spec!r}, width={self.width}, q_dim={self.q_dim})"

    @property
    def discrete_only(self) -> bool:
        return all(group.kind != "unif" for group in self.groups)

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """n draws of c from p(c): (n, width) float32, drawn with `generator` (or torch's global one) on `device`."""
        parts = []
        for group in self.groups:
            if group.kind == "bern":
                parts.append(torch.randint(0, 2, (n, group.size), generator=generator, device=device).float())
            elif group.kind == "cat":
                index = torch.randint(0, group.size, (n,), generator=generator, device=device)
                parts.append(F.one_hot(index, group.size).float())
            else:
                parts.append(torch.rand(n, group.size, generator=generator, device=device) * 2 - 1)
        if not parts:
            return torch.zeros(n, 0, device=device)
        return torch.cat(parts, dim=1)

    def log_q(self, q: torch.Tensor, c: torch.Tensor) -> dict[Kind, torch.Tensor]:
        """log Q(c|x) per image, summed over the codes of each kind: Q's output q (N, q_dim), c (N, width) ->
        {kind: (N,)} for the kinds the spec has. Bernoulli: log sigmoid of the logit's signed value; categorical:
        the log-softmax at c's class; uniform: the Gaussian log-density log N(c; mu, sigma^2)."""
        out: dict[Kind, torch.Tensor] = {}
        c_at = q_at = 0
        for group in self.groups:
            cg = c[:, c_at : c_at + group.width]
            qg = q[:, q_at : q_at + group.q_width(self.learned_variance)]
            if group.kind == "bern":
                value = -F.binary_cross_entropy_with_logits(qg, cg, reduction="none").sum(dim=1)
            elif group.kind == "cat":
                value = (F.log_softmax(qg, dim=1) * cg).sum(dim=1)
            else:
                mean = qg[:, : group.size]
                logvar = qg[:, group.size :] if self.learned_variance else torch.zeros_like(mean)
                value = -0.5 * (_LOG_2PI + logvar + (cg - mean).square() * torch.exp(-logvar)).sum(dim=1)
            out[group.kind] = out[group.kind] + value if group.kind in out else value
            c_at += group.width
            q_at += group.q_width(self.learned_variance)
        return out

    def log_prior(self) -> dict[Kind, float]:
        """log p(c), the same for every c in the support, summed over the codes of each kind."""
        out: dict[Kind, float] = {}
        for group in self.groups:
            out[group.kind] = out.get(group.kind, 0.0) + group.log_prior()
        return out

    def entropy(self) -> float:
        """H(C) = -log p(c) in nats: log 2 per Bernoulli code, log k per k-way code, log 2 per U(-1, 1) code
        (a differential entropy). Eq. 10's bound: L_info <= I(C; X) <= H(C) for discrete codes."""
        return -sum(self.log_prior().values())

    def information(
        self, q: torch.Tensor, c: torch.Tensor, weights: dict[Kind, float] | None = None
    ) -> tuple[torch.Tensor, dict[Kind, torch.Tensor]]:
        """Eq. 5 per image: sum over kinds of weight * (log Q(c|x) - log p(c)), q (N, q_dim), c (N, width) ->
        ((N,), {kind: (N,) the unweighted term}). Weights default to 1 (the paper's single beta); the H(C) part is a
        constant that moves no gradient, kept so that the mean is the mutual-information lower bound of eq. 10."""
        weights = weights or {}
        log_p = self.log_prior()
        terms = {kind: value - log_p[kind] for kind, value in self.log_q(q, c).items()}
        total = sum((weights.get(kind, 1.0) * value for kind, value in terms.items()), torch.zeros(len(q)).to(q))
        return total, terms
