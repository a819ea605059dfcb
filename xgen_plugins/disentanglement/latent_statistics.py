"""`reconstruction-error` and `total-correlation`: the other axis of FactorVAE's trade-off, and what it penalises."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

import xgen
from xgen.progress import progress_bar

#: Elements of the (images x images x latents) block of log-densities evaluated at once (2^22 float32: 16 MiB).
BLOCK = 1 << 22


def split_images(metric: str, model: xgen.Model, data: xgen.Dataset, needs: set[str]) -> torch.Tensor:
    """The test split of `data` as images (N, C, H, W) in [0, 1], after checking, before any work, that `model`
    provides `needs` and takes images of that size; one sentence otherwise."""
    model.check_requires(needs, f"metric '{metric}'")
    images = data.test().images
    if len(images) == 0:
        raise xgen.XgenError(f"metric '{metric}' needs test images, but {data.spec()} has none; check its options.")
    shape = tuple(images.shape[1:])
    if model.input_shape is not None and not model.any_size and shape != tuple(model.input_shape):
        raise xgen.XgenError(
            f"metric '{metric}' got {'x'.join(map(str, shape))} (CxHxW) test images but the model expects "
            f"{'x'.join(map(str, model.input_shape))}; use a model trained on this dataset."
        )
    return images


def reconstruction_losses(x: torch.Tensor, recon: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-image loss (N,) float64 of reconstructions recon of x: (N, C, H, W) in [0, 1], summed over pixels:
    `bce` the Bernoulli negative log-likelihood -[x log p + (1 - x) log(1 - p)] (logs clamped at -100, as torch's
    binary_cross_entropy), `mse` the squared error."""
    if loss == "bce":
        per_pixel = F.binary_cross_entropy(recon.clamp(0, 1), x, reduction="none")
    else:
        per_pixel = (recon - x).square()
    return per_pixel.flatten(1).double().sum(dim=1)


class ReconstructionError(xgen.Metric):
    """The mean over the test split of each image's reconstruction loss, summed over its pixels; lower is better.

    The reconstruction is `model.reconstruct(x)`, the decoder's output at the encoder mean (deterministic, unlike
    the training loss, which decodes a sample of q(z|x)). `loss="bce"` (default) is the Bernoulli negative
    log-likelihood in nats per image, the reconstruction term of FactorVAE's objective and the axis Kim & Mnih plot
    disentanglement against; `loss="mse"` the summed squared error, for Gaussian decoders. Images are taken `chunk`
    at a time in eval mode without gradients. After `__call__`, `details` holds `images` (the count) and
    `per_image` (N,) losses.
    """

    name = "reconstruction-error"
    description = (
        "Mean per-image reconstruction loss (bce or mse, summed over pixels) on the test split; lower is better."
    )
    requires = frozenset({"model", "data"})
    by_default = False

    loss: Literal["bce", "mse"] = "bce"
    chunk: int = 256

    def validate(self) -> None:
        if self.chunk < 1:
            raise xgen.XgenError(f"reconstruction-error needs chunk >= 1, got {self.chunk}.")

    def compute(self, *, model: xgen.Model, data: xgen.Dataset) -> float:
        """model: encodes and decodes (N, C, H, W) in [0, 1]; data: its test split is used. Returns nats (bce) or
        squared intensity (mse) per image."""
        images = split_images(self.name, model, data, {"encode", "decode"})
        losses = []
        with xgen.evaluation_mode(model), torch.no_grad():
            for x in images.split(self.chunk):
                x = x.to(model.device)
                losses.append(reconstruction_losses(x, model.reconstruct(x).to(x.dtype), self.loss).cpu())
        per_image = torch.cat(losses)
        self.details = {"images": len(per_image), "per_image": per_image}
        return float(per_image.mean())


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_nj; mean_mj, exp(logvar_mj)) for every draw n and image m: z (N, D), mean and logvar (M, D) ->
    (N, M, D) float32."""
    diff = z.unsqueeze(1) - mean.unsqueeze(0)
    return -0.5 * (diff.square() * torch.exp(-logvar).unsqueeze(0) + logvar.unsqueeze(0) + math.log(2 * math.pi))


def aggregate_log_densities(
    z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, bar: Any = None, task: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """log q(z_n) (N,) and log q(z_nj) (N, D), float64, of the aggregate posterior q(z) = 1/M sum_m q(z|x_m) of M
    images (mean, logvar: (M, D)) at draws z (N, D): log q(z_n) = logsumexp_m sum_j log q(z_nj|x_m) - log M, and
    the same per dimension for the marginals q(z_j). Evaluated BLOCK elements of (draws x images x latents) at a
    time, so memory stays bounded for any N and M."""
    n, d = z.shape
    m = mean.shape[0]
    rows = max(1, BLOCK // (m * d))
    joint = torch.empty(n, dtype=torch.float64, device=z.device)
    marginal = torch.empty(n, d, dtype=torch.float64, device=z.device)
    for start in range(0, n, rows):
        block = gaussian_log_density(z[start : start + rows], mean, logvar)
        joint[start : start + rows] = torch.logsumexp(block.sum(dim=2), dim=1).double()
        marginal[start : start + rows] = torch.logsumexp(block, dim=1).double()
        if bar is not None:
            bar.advance(task, len(block))
    return joint - math.log(m), marginal - math.log(m)


class TotalCorrelation(xgen.Metric):
    """The total correlation TC(z) = KL(q(z) || prod_j q(z_j)) of the aggregate posterior q(z) = 1/M sum_m q(z|x_m)
    over the test split, in nats (0 for independent latents): the total-correlation term of the ELBO decomposition
    of Chen et al. 2018 ("Isolating Sources of Disentanglement in VAEs"), with the full-dataset estimator of their
    code (rtqichen/beta-tcvae, `elbo_decomposition.py`: `estimate_entropies`, "dependence").

    One z_n ~ q(z|x_n) is drawn per test image; with q(z|x_m) = N(mean_m, exp(logvar_m)) from the model's `encode`,

        log q(z_n)    = logsumexp_m sum_j log q(z_nj | x_m) - log M
        log q(z_nj)   = logsumexp_m log q(z_nj | x_m) - log M
        TC            = 1/N sum_n [ log q(z_n) - sum_j log q(z_nj) ]

    over all M test images (or a seeded subsample of `images` of them) and all N = M draws (Chen's code evaluates
    10,000 of its draws: `samples=10000`), the (N x M x D) log-densities evaluated a block at a time.

    FactorVAE's discriminator estimates the same quantity while training, by the density-ratio trick
    (log D(z) / (1 - D(z)) on a minibatch, against codes permuted across it); this estimate needs no discriminator,
    so it compares models trained with and without one. It is the TC of the mixture of the M posteriors up to the
    Monte Carlo error of one draw per image; of the whole data distribution's, it is biased upwards when the
    posteriors are narrow against the spacing of the M codes (each logsumexp is then dominated by the draw's own
    image, and TC tends to (D - 1) log M). Seeded (`seed`): the subsample, the draws, then the draws kept. Refuses
    an encoder without a log-variance. After `__call__`, `details` holds `images`, `samples`, the joint entropy
    estimate -mean log q(z) and the marginal ones (D,) -mean log q(z_j).
    """

    name = "total-correlation"
    description = "KL(q(z) || prod_j q(z_j)) of the aggregate posterior over the test split (Chen et al.), in nats."
    requires = frozenset({"model", "data"})
    by_default = False

    images: int | None = None
    samples: int | None = None
    chunk: int = 256
    seed: int = 0
    progress: bool = False

    def validate(self) -> None:
        if self.images is not None and self.images < 2:
            raise xgen.XgenError(f"total-correlation needs images >= 2 (or unset for all), got {self.images}.")
        if self.samples is not None and self.samples < 1:
            raise xgen.XgenError(f"total-correlation needs samples >= 1 (or unset for all), got {self.samples}.")
        if self.chunk < 1:
            raise xgen.XgenError(f"total-correlation needs chunk >= 1, got {self.chunk}.")

    def compute(self, *, model: xgen.Model, data: xgen.Dataset) -> float:
        """model: encodes (N, C, H, W) to (mean, logvar), each (N, D) after flattening; data: its test split is
        used. Returns TC in nats."""
        images = split_images(self.name, model, data, {"encode"})
        generator = torch.Generator().manual_seed(self.seed)
        if self.images is not None and self.images < len(images):
            images = images[torch.randperm(len(images), generator=generator)[: self.images]]
        means, logvars = [], []
        with progress_bar(self.progress) as bar:
            task = bar.add_task("total-correlation: encoding", total=len(images), status="")
            with xgen.evaluation_mode(model), torch.no_grad():
                for x in images.split(self.chunk):
                    latent = model.encode(x.to(model.device))
                    if latent.logvar is None:
                        raise xgen.XgenError(
                            "metric 'total-correlation' needs q(z|x) as a Gaussian, but the model's encode gives no "
                            "log-variance; return (mean, logvar) from encode."
                        )
                    means.append(latent.mean.flatten(1).float())
                    logvars.append(latent.logvar.flatten(1).float())
                    bar.advance(task, len(x))
            mean, logvar = torch.cat(means), torch.cat(logvars)
            noise = torch.randn(mean.shape, generator=generator).to(mean.device)
            z = mean + torch.exp(0.5 * logvar) * noise
            if self.samples is not None and self.samples < len(z):
                z = z[torch.randperm(len(z), generator=generator)[: self.samples].to(z.device)]
            task = bar.add_task("total-correlation: densities", total=len(z), status="")
            joint, marginal = aggregate_log_densities(z, mean, logvar, bar, task)
        self.details = {
            "images": len(mean),
            "samples": len(z),
            "joint_entropy": float(-joint.mean()),
            "marginal_entropies": (-marginal.mean(dim=0)).cpu(),
        }
        return float((joint - marginal.sum(dim=1)).mean())
