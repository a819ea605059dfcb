"""`factorvae-score`: Kim & Mnih's majority-vote disentanglement metric, with disentanglement_lib's defaults."""

from __future__ import annotations

import warnings

import torch

import xgen
from xgen.progress import progress_bar

from ._common import encode_factors, factor_data, probe


def vote_factors(data: xgen.Factors, votes: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """For each vote a factor k drawn uniformly, and `batch` factor rows drawn uniformly with column k set to the
    first row's value: (fixed (V,) int64, factors (V, batch, K) int64)."""
    fixed = torch.randint(len(data.factor_sizes), (votes,), generator=generator)
    factors = data.sample_factors(votes * batch, generator).view(votes, batch, -1)
    rows = torch.arange(votes)
    factors[rows, :, fixed] = factors[rows, 0, fixed].unsqueeze(1)
    return fixed, factors


def votes_table(
    fixed: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor, active: torch.Tensor, k: int
) -> torch.Tensor:
    """The vote counts (K, D) int64: each vote goes to (its fixed factor, the active latent whose variance over the
    vote's batch, codes (V, B, D), divided by the global variance scale**2 (D,) is smallest)."""
    local = codes.double().var(dim=1, correction=1) / scale.square()
    local[:, ~active] = torch.inf
    latent = local.argmin(dim=1).cpu()
    d = codes.shape[2]
    return torch.bincount(fixed * d + latent, minlength=k * d).view(k, d)


class FactorVAEScore(xgen.Metric):
    """The FactorVAE disentanglement metric of Kim & Mnih 2018 ("Disentangling by Factorising", section 4), with the
    procedure and defaults of google-research/disentanglement_lib (`evaluation/metrics/factor_vae.py`,
    `factor_vae_metric.gin`):

    1. Scale: s_j = std of the encoder mean z_j over `variance_images` (10,000) images drawn uniformly from the factor
       grid (ddof 1). Latents with s_j < `prune` (0.05) count as collapsed and are left out.
    2. A vote: draw a factor k uniformly and `batch` (64) images with v_k fixed at one random value and the other
       factors free; the vote is (argmin over active j of Var_batch(z_j / s_j), k), the latent whose normalised codes
       vary least.
    3. Classifier: the majority-vote table, latent j -> argmax_k votes[k, j], from `train_votes` (10,000) votes.
    4. Score: its accuracy on `eval_votes` (5,000) fresh votes, sum_j eval[class(j), j] / sum eval.

    Choices, and where the sources differ:
    - Codes are the encoder mean, as disentanglement_lib (the paper does not say).
    - Pruning: disentanglement_lib's `prune_dims.threshold` is 0.05 on the global std; the paper prunes latents that
      collapsed to the prior without a number, and the reproduction report of seed 000 (section 3.3) used 0.01:
      `prune=0.01`. When no latent survives the score is 0, as disentanglement_lib.
    - disentanglement_lib scores held-out votes (used here); Kim & Mnih's paper-style code and its PyTorch ports
      measure accuracy on the training votes themselves, which is `details["train_accuracy"]`.
    - Ties in the argmin and the argmax go to the lowest index (NumPy's argmin and argmax do the same).
    Seeded (`seed`): the scale images, then the training votes, then the evaluation votes. The (10,000 + 5,000) x 64
    + 10,000 = 970,000 images are rendered and encoded `chunk` at a time. After `__call__`, `details` holds the
    training and evaluation accuracy, the active latents, the scales, the classifier and both vote tables.
    """

    name = "factorvae-score"
    description = (
        "Kim & Mnih's FactorVAE metric: majority-vote accuracy of the least-varying latent (disentanglement_lib)."
    )
    requires = frozenset({"model", "data"})
    by_default = False

    batch: int = 64
    train_votes: int = 10_000
    eval_votes: int = 5_000
    variance_images: int = 10_000
    prune: float = 0.05
    chunk: int = 2048
    seed: int = 0
    progress: bool = False

    def validate(self) -> None:
        if self.batch < 2 or self.variance_images < 2:
            raise xgen.XgenError(
                f"factorvae-score takes variances, so it needs batch >= 2 and variance_images >= 2, got "
                f"{self.batch} and {self.variance_images}."
            )
        if self.train_votes < 1 or self.eval_votes < 1 or self.chunk < 1:
            raise xgen.XgenError(
                f"factorvae-score needs train_votes, eval_votes and chunk >= 1, got {self.train_votes}, "
                f"{self.eval_votes} and {self.chunk}."
            )
        if self.prune < 0:
            raise xgen.XgenError(f"factorvae-score needs prune >= 0 (a std threshold), got {self.prune}.")

    def compute(self, *, model: xgen.Model, data: xgen.Dataset) -> float:
        """model: encodes (N, C, H, W) to a mean (N, D); data: an xgen.Factors. Returns the accuracy in [0, 1]."""
        data = factor_data(self.name, data)
        probe(self.name, model, data, logvar=False)
        generator = torch.Generator().manual_seed(self.seed)
        k = len(data.factor_sizes)
        total = self.variance_images + (self.train_votes + self.eval_votes) * self.batch
        with progress_bar(self.progress) as bar:
            task = bar.add_task("factorvae-score: encoding", total=total, status="")
            codes, _ = encode_factors(
                model, data, data.sample_factors(self.variance_images, generator), self.chunk, bar, task
            )
            scale = codes.double().std(dim=0, correction=1)
            active = scale >= self.prune
            self.details = {"active": active.cpu(), "scale": scale.cpu()}
            if not active.any():
                self.details.update(train_accuracy=0.0, eval_accuracy=0.0)
                warnings.warn(
                    f"factorvae-score is 0 because no latent varies enough to vote: every latent's scale is below "
                    f"prune={self.prune:g} (the largest is {float(scale.max()):.3g}), as after posterior collapse; "
                    "disentanglement_lib scores this 0 too",
                    stacklevel=3,
                )
                return 0.0
            tables = []
            for votes in (self.train_votes, self.eval_votes):
                fixed, factors = vote_factors(data, votes, self.batch, generator)
                codes, _ = encode_factors(model, data, factors.view(-1, k), self.chunk, bar, task)
                tables.append(votes_table(fixed, codes.view(votes, self.batch, -1), scale, active, k))
        train, evaluation = tables
        classifier = train.argmax(dim=0)
        latents = torch.arange(train.shape[1])
        train_accuracy = float(train.max(dim=0).values.sum() / train.sum())
        eval_accuracy = float(evaluation[classifier, latents].sum() / evaluation.sum())
        self.details.update(
            train_accuracy=train_accuracy,
            eval_accuracy=eval_accuracy,
            classifier=classifier,
            train_votes=train,
            eval_votes=evaluation,
        )
        return eval_accuracy
