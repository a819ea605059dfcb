"""Disentanglement metrics (`mig-binned`, `mig`, `factorvae-score`) and the `xgen.Factors` contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from sklearn.metrics import mutual_info_score
from torch import nn

import xgen
from xgen.testing import PixelFactors, TinyVAE
from xgen_plugins.disentanglement import gaussian_entropies, mig
from xgen_plugins.dsprites import index_to_factors


class Grid(PixelFactors):
    """Three factors (6, 8 and 10 values) written into pixels."""

    name = "test-grid"


class Reader(nn.Module):
    """Reads the factors back from Grid's pixels: latent j < K is factor j with std `sigma`, then `extra` latents.

    extra="prior": mean 0, log-variance 0 (collapsed to the prior); "hash": a deterministic function of all factors;
    "random": fresh N(0, 1) noise on every call. With `perfect=False` the factor latents are random too.
    """

    def __init__(self, extra: str = "hash", dims: int = 2, sigma: float = 0.05, perfect: bool = True) -> None:
        super().__init__()
        self.extra, self.dims, self.sigma, self.perfect = extra, dims, sigma, perfect
        self.generator = torch.Generator().manual_seed(1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        factors = x.flatten(1).mul(100).round()
        n, k = factors.shape
        if self.extra == "prior":
            extra = torch.zeros(n, self.dims)
        elif self.extra == "hash":
            weights = torch.tensor([12.9898, 78.233, 37.719])
            extra = torch.sin((factors @ weights).unsqueeze(1) * (1 + torch.arange(self.dims)))
        else:
            extra = torch.randn(n, self.dims, generator=self.generator)
        codes = factors if self.perfect else torch.randn(n, k, generator=self.generator)
        logvar = torch.full((n, k), 2 * math.log(self.sigma))
        extra_logvar = torch.zeros(n, self.dims) if self.extra == "prior" else torch.full((n, self.dims), -4.0)
        return torch.cat([codes, extra], 1), torch.cat([logvar, extra_logvar], 1)


def sklearn_mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """disentanglement_lib's `_compute_mig`, one sklearn call per pair."""
    binned = [np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T.astype(np.float64)]
    m = np.array([[mutual_info_score(v, b) for v in factors.T] for b in binned])
    h = np.array([mutual_info_score(v, v) for v in factors.T])
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h))


def test_mig_binned_equals_sklearn_mutual_info_score_per_pair():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(2000, 6)).astype(np.float32)
    codes[:, 1] = np.round(codes[:, 1] * 2)
    codes[:, 2] = 0.7
    factors = np.stack([rng.integers(0, s, 2000) for s in (3, 7, 40)], axis=1) * 3 - 5
    codes[:, 3] += factors[:, 0]
    assert xgen.metric("mig-binned")(codes=codes, factors=factors) == pytest.approx(
        sklearn_mig(codes, factors), abs=1e-12
    )
    assert xgen.metric("mig-binned", bins=7)(codes=codes, factors=factors) == pytest.approx(
        sklearn_mig(codes, factors, 7), abs=1e-12
    )


def test_mig_binned_is_one_for_perfect_codes_and_near_zero_for_noise():
    rng = np.random.default_rng(1)
    factors = np.stack([rng.integers(0, s, 5000) for s in (3, 6, 12)], axis=1)
    perfect = np.concatenate([factors.astype(np.float64), rng.normal(size=(5000, 3))], axis=1)
    assert xgen.metric("mig-binned")(codes=perfect, factors=factors) == pytest.approx(1.0, abs=0.02)
    noise = rng.normal(size=(5000, 6))
    assert 0.0 <= xgen.metric("mig-binned")(codes=noise, factors=factors) < 0.02


def test_mig_binned_takes_numpy_torch_and_lists_alike():
    rng = np.random.default_rng(2)
    codes, factors = rng.normal(size=(300, 4)), rng.integers(0, 4, size=(300, 2))
    metric = xgen.metric("mig-binned")
    value = metric(codes=codes, factors=factors)
    assert metric(codes=torch.from_numpy(codes), factors=torch.from_numpy(factors)) == value
    assert metric(codes=codes.tolist(), factors=factors.tolist()) == value


@pytest.mark.parametrize(
    ("codes", "factors", "words"),
    [
        (np.zeros((10, 3)), np.zeros((9, 2), dtype=int), "10 codes for 9 factors"),
        (np.random.rand(10, 3), np.stack([np.arange(10), np.ones(10, dtype=int)], 1), "single value"),
        (np.random.rand(10, 3), np.random.rand(10, 2), "integer factors"),
        (np.random.rand(10), np.arange(10).reshape(10, 1), "reshape a single column"),
        (np.random.rand(10, 1), np.arange(10).reshape(10, 1), "two code dimensions"),
        (np.full((10, 3), np.nan), np.arange(10).reshape(10, 1), "NaN"),
    ],
)
def test_mig_binned_refuses_bad_input_in_one_sentence(codes, factors, words):
    with pytest.raises(xgen.XgenError, match=words) as info:
        xgen.metric("mig-binned")(codes=codes, factors=factors)
    assert str(info.value).count(". ") == 0


def test_gaussian_entropies_equal_a_direct_scipy_computation(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    mean, logvar = torch.randn(50, 3, generator=gen), torch.randn(50, 3, generator=gen) - 1
    samples = torch.randn(20, 3, generator=gen)
    density = scipy.stats.norm.logpdf(samples.numpy()[:, None], mean.numpy()[None], np.exp(0.5 * logvar.numpy())[None])
    expected = -(scipy.special.logsumexp(density, axis=1) - np.log(50)).mean(axis=0)
    np.testing.assert_allclose(gaussian_entropies(samples, mean, logvar).numpy(), expected, rtol=1e-5)
    monkeypatch.setattr(mig, "BLOCK", 7)
    np.testing.assert_allclose(gaussian_entropies(samples, mean, logvar).numpy(), expected, rtol=1e-5)


def test_mig_is_one_for_a_perfect_model_and_near_zero_for_noise():
    metric = xgen.metric("mig")
    assert metric(model=Reader(extra="prior"), data=Grid()) == pytest.approx(1.0, abs=1e-4)
    info = metric.details["mutual_information"]
    assert info.shape == (3, 5) and metric.details["factors"] == ("a", "b", "c")
    torch.testing.assert_close(info[:, :3], torch.eye(3, dtype=torch.float64), atol=1e-4, rtol=0)
    assert xgen.metric("mig", seed=1)(model=Reader(extra="random", perfect=False), data=Grid()) < 0.05


def test_mig_options_subsample_and_exclude():
    half = xgen.metric("mig", images=240, exclude=("b",))
    value = half(model=Reader(extra="prior"), data=Grid())
    assert half.details["factors"] == ("a", "c") and len(half.details["cells"].unique()) == 240
    # With separated posteriors and every draw used, I(z_j; v_k) is the plug-in MI of v_j and v_k in the subsample.
    factors = Grid().grid_factors(half.details["cells"]).numpy()
    info = np.array([[mutual_info_score(factors[:, j], factors[:, k]) for j in range(3)] for k in (0, 2)])
    top = np.sort(info / np.log([[6], [10]]), axis=1)[:, ::-1]
    assert value == pytest.approx(np.mean(top[:, 0] - top[:, 1]), abs=1e-4)
    seeded = [xgen.metric("mig", images=200, seed=5)(model=Reader(extra="hash", sigma=0.8), data=Grid()) for _ in "ab"]
    assert seeded[0] == seeded[1] and 0.0 < seeded[0] < 1.0


class Plain(xgen.Dataset):
    name = "plain"
    description = "No factors."

    def train(self) -> xgen.ImageSet:
        return xgen.ImageSet(torch.zeros(2, 1, 1, 3))

    test = train


@pytest.mark.parametrize("name", ["mig", "factorvae-score"])
def test_model_metrics_refuse_data_without_factors_and_models_without_encode(name):
    with pytest.raises(xgen.XgenError, match="cannot do; use a dataset with factors"):
        xgen.metric(name)(model=Reader(), data=Plain())
    with pytest.raises(xgen.XgenError, match="requires 'encode'"):
        xgen.metric(name)(model=nn.Linear(3, 3), data=Grid())


def test_mig_refuses_an_encoder_without_log_variance_and_bad_options():
    model = xgen.wrap(nn.Identity(), encode=lambda x: x.flatten(1))
    with pytest.raises(xgen.XgenError, match="no log-variance"):
        xgen.metric("mig")(model=model, data=Grid())
    with pytest.raises(xgen.XgenError, match="Did you mean 'a'"):
        xgen.metric("mig", exclude=("aa",))(model=Reader(), data=Grid())
    with pytest.raises(xgen.XgenError, match="exceeds the 480 cells"):
        xgen.metric("mig", images=1000)(model=Reader(), data=Grid())


SMALL = {"batch": 16, "train_votes": 300, "eval_votes": 600, "variance_images": 500}


def test_factorvae_score_is_one_for_a_perfect_model_and_one_over_k_for_noise():
    metric = xgen.metric("factorvae-score", **SMALL)
    assert metric(model=Reader(extra="hash"), data=Grid()) == 1.0
    assert metric.details["train_accuracy"] == 1.0 and metric.details["classifier"][:3].tolist() == [0, 1, 2]
    noise = metric(model=Reader(extra="random", perfect=False, dims=4), data=Grid())
    assert noise == pytest.approx(1 / 3, abs=0.08)


def test_factorvae_score_prunes_collapsed_latents_and_is_seeded():
    collapsed = xgen.wrap(nn.Identity(), encode=lambda x: x.flatten(1)[:, :1].repeat(1, 4) * 1e-3)
    metric = xgen.metric("factorvae-score", **SMALL)
    with pytest.warns(UserWarning, match=r"no latent varies enough to vote.*prune=0\.05") as said:
        assert metric(model=collapsed, data=Grid()) == 0.0 and not metric.details["active"].any()
    assert said[0].filename == __file__
    assert xgen.metric("factorvae-score", prune=1e-6, **SMALL)(model=collapsed, data=Grid()) > 0.0
    runs = [xgen.metric("factorvae-score", seed=4, **SMALL)(model=Reader(sigma=1, extra="random"), data=Grid())]
    runs.append(xgen.metric("factorvae-score", seed=4, **SMALL)(model=Reader(sigma=1, extra="random"), data=Grid()))
    assert runs[0] == runs[1]


def test_dsprites_implements_the_factor_contract():
    data = xgen.dataset("dsprites:test_n=40,train_n=10")
    assert isinstance(data, xgen.Factors)
    assert data.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert data.factor_sizes == (3, 6, 40, 32, 32) and data.factor_count == 737_280
    test = data.test()
    factors = data.split_factors(test)
    assert torch.equal(factors, test.extras["factors"][:, 1:]) and test.extras["factors"].shape[1] == 6
    assert torch.equal(data.render_factors(factors), test.images)
    cells = torch.arange(0, 737_280, 1013)
    assert torch.equal(data.grid_factors(cells), index_to_factors(cells)[:, 1:])
    drawn = data.sample_factors(5000, torch.Generator().manual_seed(0))
    assert torch.equal(drawn.amin(0), torch.zeros(5)) and torch.equal(drawn.amax(0), torch.tensor([2, 5, 39, 31, 31]))
    with pytest.raises(xgen.XgenError, match=r"\(N, 5\)"):
        data.render_factors(test.extras["factors"])


def test_model_metrics_run_on_dsprites_by_name():
    model = TinyVAE(size=64)
    assert 0.0 <= xgen.metric("mig", images=300, samples=50)(model=model, data="dsprites") <= 1.0
    score = xgen.metric("factorvae-score", batch=4, train_votes=10, eval_votes=10, variance_images=40, prune=1e-3)
    assert 0.0 <= score(model=model, data="dsprites") <= 1.0
