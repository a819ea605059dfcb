"""`reconstruction-error` and `total-correlation` against brute-force references, and `Architecture.default_metrics`:
what `xgen evaluate` adds for a checkpoint's architecture when no metric is named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from torch import nn

import xgen
from xgen.testing import PixelFactors
from xgen_plugins.disentanglement import aggregate_log_densities, latent_statistics

pytestmark = pytest.mark.usefixtures("one_thread")


class Table(xgen.Dataset):
    """A test split of M 1x1x1 images, image m holding m / 1000, so that a model can look up row m of a table."""

    name = "table"
    description = "Image m holds m / 1000."
    m: int = 50

    def train(self) -> xgen.ImageSet:
        return self.test()

    def test(self) -> xgen.ImageSet:
        return xgen.ImageSet(torch.arange(self.m, dtype=torch.float32).div(1000).view(-1, 1, 1, 1))


class Given(nn.Module):
    """Encodes image m of `Table` to row m of the given (mean, logvar) (M, D); logvar None gives means only."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor | None) -> None:
        super().__init__()
        self.mean, self.logvar = mean, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        rows = x.flatten(1)[:, 0].mul(1000).round().long()
        return self.mean[rows] if self.logvar is None else (self.mean[rows], self.logvar[rows])


class Grid(PixelFactors):
    """Every combination of two factors (6 and 8 values), written into pixels."""

    name = "probe-grid"
    factor_names = ("a", "b")
    factor_sizes = (6, 8)


class Reader(nn.Module):
    """Reads Grid's factors back as latents: `columns` picks the factors (repeats allowed), each with std `sigma`,
    then one latent collapsed to the prior N(0, 1); decodes by writing the first two latents back into pixels."""

    def __init__(self, columns: tuple[int, ...] = (0, 1), sigma: float = 0.01) -> None:
        super().__init__()
        self.columns, self.sigma = list(columns), sigma
        self.scale = nn.Parameter(torch.ones(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        factors = x.flatten(1).mul(100).round()[:, self.columns]
        mean = torch.cat([factors, torch.zeros(len(x), 1)], dim=1)
        logvar = torch.cat([torch.full_like(factors, 2 * math.log(self.sigma)), torch.zeros(len(x), 1)], dim=1)
        return mean * self.scale, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, :2].div(100).clamp(0, 1).view(-1, 1, 1, 2)


def brute_force_tc(z: np.ndarray, mean: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log q(z_n) (N,) and log q(z_nj) (N, D) of the mixture of the M Gaussians (mean, logvar), by scipy."""
    density = scipy.stats.norm.logpdf(z[:, None, :], mean[None], np.exp(0.5 * logvar)[None])  # (N, M, D)
    m = mean.shape[0]
    return scipy.special.logsumexp(density.sum(2), axis=1) - np.log(m), scipy.special.logsumexp(density, 1) - np.log(m)


def test_aggregate_log_densities_equal_scipy_in_any_block_size(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(40, 3, generator=gen), torch.randn(40, 3, generator=gen) - 1
    z = torch.randn(25, 3, generator=gen)
    joint, marginal = brute_force_tc(z.double().numpy(), mean.double().numpy(), logvar.double().numpy())
    for block in (latent_statistics.BLOCK, 7, 1):
        monkeypatch.setattr(latent_statistics, "BLOCK", block)
        got_joint, got_marginal = aggregate_log_densities(z, mean, logvar)
        np.testing.assert_allclose(got_joint.numpy(), joint, rtol=1e-5)
        np.testing.assert_allclose(got_marginal.numpy(), marginal, rtol=1e-5)


@pytest.mark.parametrize(("images", "samples"), [(None, None), (30, None), (None, 20), (30, 10)])
def test_total_correlation_equals_a_brute_force_computation_on_the_same_draws(images, samples):
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(50, 4, generator=gen)
    mean[:, 1] = mean[:, 0] + 0.3 * mean[:, 1]
    logvar = torch.rand(50, 4, generator=gen) * 2 - 3
    metric = xgen.metric("total-correlation", images=images, samples=samples, seed=5, chunk=16)
    value = metric(model=Given(mean, logvar), data=Table())

    draw = torch.Generator().manual_seed(5)
    if images is not None:
        keep = torch.randperm(50, generator=draw)[:images]
        mean, logvar = mean[keep], logvar[keep]
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=draw)
    if samples is not None:
        z = z[torch.randperm(len(z), generator=draw)[:samples]]
    joint, marginal = brute_force_tc(z.double().numpy(), mean.double().numpy(), logvar.double().numpy())
    assert value == pytest.approx(float(np.mean(joint - marginal.sum(1))), rel=1e-4, abs=1e-5)
    assert metric.details["images"] == len(mean) and metric.details["samples"] == len(z)
    assert metric.details["joint_entropy"] == pytest.approx(float(-joint.mean()), rel=1e-4)
    assert value > 0.1, "two of the four latents are strongly correlated"


def test_total_correlation_is_zero_for_independent_latents_and_log_k_for_copies():
    """Narrow posteriors over a full factor grid: q(z) is the empirical factor distribution, so TC is the factors'
    plug-in total correlation: 0 for the two independent factors, log 6 for two copies of the 6-valued one (a
    latent collapsed to the prior cancels out of both)."""
    independent = xgen.metric("total-correlation")(model=Reader((0, 1)), data=Grid())
    assert independent == pytest.approx(0.0, abs=1e-4)
    copies = xgen.metric("total-correlation")(model=Reader((0, 0)), data=Grid())
    assert copies == pytest.approx(math.log(6), abs=1e-4)


def test_total_correlation_refuses_an_encoder_without_log_variance():
    with pytest.raises(xgen.XgenError, match="no log-variance") as info:
        xgen.metric("total-correlation")(model=Given(torch.randn(50, 3), None), data=Table())
    assert str(info.value).count(". ") == 0


class Noisy(nn.Module):
    """A small autoencoder of 1x4x4 images with dropout, so results differ unless it runs in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc, self.dec, self.drop = nn.Linear(16, 3), nn.Linear(3, 16), nn.Dropout(0.5)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.drop(self.enc(x.flatten(1))), torch.zeros(len(x), 3)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(self.drop(z))).view(-1, 1, 4, 4)


class Squares(xgen.Dataset):
    name = "squares"
    description = "Random 1x4x4 images."

    def train(self) -> xgen.ImageSet:
        return self.test()

    def test(self) -> xgen.ImageSet:
        images = torch.rand(37, 1, 4, 4, generator=torch.Generator().manual_seed(2))
        images[:5] = images[:5].round()
        return xgen.ImageSet(images)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_reconstruction_error_is_the_mean_per_image_loss_in_eval_mode(loss):
    module = Noisy()
    x = Squares().test().images
    module.eval()
    with torch.no_grad():
        p = module.decode(module.encode(x)[0]).double().numpy()
    module.train()
    target = x.double().numpy()
    per_pixel = -(target * np.log(p) + (1 - target) * np.log1p(-p)) if loss == "bce" else (p - target) ** 2
    expected = float(per_pixel.reshape(len(x), -1).sum(1).mean())
    for chunk in (256, 5):
        metric = xgen.metric("reconstruction-error", loss=loss, chunk=chunk)
        assert metric(model=module, data=Squares()) == pytest.approx(expected, rel=1e-6)
        assert metric.details["images"] == 37
    assert module.training, "the model is back in training mode"


def test_reconstruction_error_refuses_a_model_that_does_not_decode_or_fit():
    encoder = Given(torch.randn(50, 3), torch.zeros(50, 3))
    with pytest.raises(xgen.XgenError, match="requires 'decode'"):
        xgen.metric("reconstruction-error")(model=encoder, data=Table())
    small = xgen.wrap(Noisy(), input_shape=(1, 8, 8))
    with pytest.raises(xgen.XgenError, match=r"1x4x4 \(CxHxW\) test images but the model expects 1x8x8") as info:
        xgen.metric("reconstruction-error")(model=small, data=Squares())
    assert str(info.value).count(". ") == 0


class Probe(xgen.Architecture):
    """An architecture that asks for the latent statistics, one preset, and an already default metric."""

    name = "probe-arch"
    description = "Reads factors."
    default_explainer = "recon-error"
    default_metrics = ("reconstruction-error", "total-correlation:samples=20", "mig-binned")

    def build(self, input_shape):
        return Reader()


class Broken(Probe):
    name = "broken-arch"
    default_metrics = ("reconstruction-error", "no-such-metric")


class Plugin:
    @staticmethod
    @xgen.hookimpl
    def xgen_register_models(register):
        register(Probe)
        register(Broken)


def _model(architecture: type[xgen.Architecture]) -> xgen.Model:
    return architecture().wrap(Reader(), (1, 1, 2))


def test_evaluate_adds_the_architectures_default_metrics_and_does_not_call_them_skipped(registry):
    registry.add_plugin(Plugin(), "probe")
    result = xgen.evaluate(_model(Probe), Grid())
    assert [r.spec for r in result.metrics] == ["mig-binned", "reconstruction-error", "total-correlation:samples=20"]
    assert result["total-correlation:samples=20"] == xgen.metric("total-correlation", samples=20)(
        model=Reader(), data=Grid()
    )
    assert result["reconstruction-error"] == xgen.metric("reconstruction-error")(model=Reader(), data=Grid())
    summary = result.summary()["metrics"]
    assert summary["total-correlation:samples=20"]["options"] == {"samples": "20"}
    (note,) = [w for w in result.warnings if "left out by default" in w]
    assert "--metric mig " in note + " " and "--metric factorvae-score" in note
    assert "reconstruction-error" not in note and "total-correlation" not in note


def test_named_metrics_and_models_without_an_architecture_get_nothing_added(registry):
    registry.add_plugin(Plugin(), "probe")
    asked = xgen.evaluate(_model(Probe), Grid(), metrics=["mig-binned"])
    assert [r.spec for r in asked.metrics] == ["mig-binned"]
    assert not any("left out by default" in w for w in asked.warnings)
    plain = xgen.evaluate(xgen.wrap(Reader()), Grid(), "recon-error")
    assert [r.spec for r in plain.metrics] == ["mig-binned"]
    (note,) = [w for w in plain.warnings if "left out by default" in w]
    assert "--metric reconstruction-error" in note and "--metric total-correlation" in note


def test_an_unusable_default_metric_is_a_warning_and_the_others_run(registry):
    registry.add_plugin(Plugin(), "probe")
    result = xgen.evaluate(_model(Broken), Grid())
    assert [r.spec for r in result.metrics] == ["mig-binned", "reconstruction-error"]
    assert any("broken-arch adds metric no-such-metric" in w and "left out" in w for w in result.warnings)


def test_factor_vae_asks_for_every_disentanglement_metric_with_valid_presets():
    from xgen.evaluation import _parse_metrics

    architecture = xgen.plugins.lookup("architecture", "factor-vae")
    built = _parse_metrics(architecture.default_metrics)
    assert {item.name for item in built} == {
        "factorvae-score",
        "mig",
        "mig-binned",
        "reconstruction-error",
        "total-correlation",
    }
