"""Generator metrics (fid, precision, recall) against independent references, the feature extractors, sampling from
a model's prior, and `xgen evaluate --features`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from test_cli import one_error_line, run

import xgen
from xgen.features import extract, inception_network, open_extractor

pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian(rng: np.random.Generator, n: int, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return rng.multivariate_normal(mean, cov, size=n)


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def closed_form_fid(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Eq. 18 in float64 with SciPy's matrix square root (no disp=, which SciPy 1.18 removed)."""
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)


@pytest.mark.parametrize("trace_root", ["symmetric", "eigvals"])
def test_fid_of_two_gaussian_samples_is_near_the_closed_form_of_their_true_moments(trace_root):
    rng = np.random.default_rng(0)
    d = 4
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    real, fake = gaussian(rng, 40_000, mu1, s1), gaussian(rng, 40_000, mu2, s2)
    expected = closed_form_fid(mu1, s1, mu2, s2)
    measured = xgen.metric("fid", trace_root=trace_root)(real=real, fake=fake)
    assert measured == pytest.approx(expected, rel=0.03), (measured, expected)


@pytest.mark.parametrize("trace_root", ["symmetric", "eigvals"])
@pytest.mark.parametrize(("n", "d"), [(300, 16), (50, 8)])
def test_fid_equals_a_float64_scipy_computation_on_the_sample_moments(trace_root, n, d):
    rng = np.random.default_rng(d)
    real = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 1.0
    fake = rng.normal(size=(n + 7, d)) * 1.5
    expected = closed_form_fid(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    measured = xgen.metric("fid", trace_root=trace_root)(real=real, fake=fake)
    assert measured == pytest.approx(expected, rel=1e-8), "np.cov divides by N - 1, as the references do"


@pytest.mark.parametrize("singular", ["real", "both"])
def test_fid_with_fewer_samples_than_features_agrees_between_both_trace_roots(singular):
    """Singular covariances take the eigh path (both) or swap the Cholesky roles (real); the value is still exact."""
    rng = np.random.default_rng(5)
    real = rng.normal(size=(6, 12))
    fake = rng.normal(size=(6 if singular == "both" else 200, 12)) + 0.2
    symmetric = xgen.metric("fid")(real=real, fake=fake)
    general = xgen.metric("fid", trace_root="eigvals")(real=real, fake=fake)
    assert symmetric == pytest.approx(general, rel=1e-6)
    if singular == "real":
        expected = closed_form_fid(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
        assert symmetric == pytest.approx(expected, rel=1e-6)


def test_fid_of_a_set_against_itself_is_zero():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32))
    for trace_root in ("symmetric", "eigvals"):
        assert abs(xgen.metric("fid", trace_root=trace_root)(real=features, fake=features)) < 1e-6


def test_fid_of_shifted_sets_with_equal_covariance_is_the_squared_shift():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 10))
    shift = rng.normal(size=10)
    value = xgen.metric("fid")(real=features, fake=features + shift)
    assert value == pytest.approx(float(np.sum(shift**2)), rel=1e-9)


def test_fid_needs_two_rows_per_set():
    with pytest.raises(xgen.XgenError, match=r"at least 2 fake feature rows.*got 1") as info:
        xgen.metric("fid")(real=np.zeros((5, 3)), fake=np.zeros((1, 3)))
    assert str(info.value).count(". ") == 0


def brute_force_coverage(probes: np.ndarray, reference: np.ndarray, k: int) -> float:
    """The share of probes within the k-NN balls of the reference set, from full float64 distance matrices."""
    own = ((reference[:, None, :] - reference[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(own, np.inf)
    radii = np.sort(own, axis=1)[:, k - 1]
    cross = ((probes[:, None, :] - reference[None, :, :]) ** 2).sum(-1)
    return float((cross <= radii[None, :]).any(axis=1).mean())


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("batch_size", [7, 1024])
def test_precision_and_recall_equal_brute_force_nearest_neighbours(k, batch_size):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(size=(45, 5)) * 1.3 + 0.8
    options = {"k": k, "batch_size": batch_size, "dtype": "float64"}
    precision = xgen.metric("precision", **options)(real=real, fake=fake)
    recall = xgen.metric("recall", **options)(real=real, fake=fake)
    assert precision == brute_force_coverage(fake, real, k)
    assert recall == brute_force_coverage(real, fake, k)
    assert 0 < precision < 1 and 0 < recall < 1, "the sets were chosen to overlap partly"


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ties_and_duplicates_count_as_covered_exactly_as_brute_force(k, dtype):
    rng = np.random.default_rng(10 + k)
    real = rng.integers(0, 3, size=(40, 3)).astype(float)  # many duplicates and equal distances
    fake = rng.integers(0, 4, size=(30, 3)).astype(float)
    options = {"k": k, "batch_size": 8, "dtype": dtype}
    assert xgen.metric("precision", **options)(real=real, fake=fake) == brute_force_coverage(fake, real, k)
    assert xgen.metric("recall", **options)(real=real, fake=fake) == brute_force_coverage(real, fake, k)


def test_a_probe_exactly_on_a_radius_is_covered():
    real = np.array([[0.0], [1.0], [3.0]])  # radii for k=1: 1, 1, 2 (squared 1, 1, 4)
    fake = np.array([[5.0], [5.5], [-1.0], [-1.5]])
    assert xgen.metric("precision", k=1)(real=real, fake=fake) == 0.5  # 5 and -1 sit on a boundary; 5.5 and -1.5 do not
    assert xgen.metric("precision", k=1)(real=real, fake=fake[[1, 3]]) == 0.0
    assert xgen.metric("precision", k=1)(real=real, fake=fake[[0, 2]]) == 1.0


def test_numpy_torch_and_list_inputs_give_the_same_values():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(30, 4)), rng.normal(size=(25, 4)) + 0.3
    for name in ("fid", "precision", "recall"):
        metric = xgen.metric(name)
        values = {
            metric(real=real, fake=fake),
            metric(real=torch.from_numpy(real), fake=torch.from_numpy(fake)),
            metric(real=real.tolist(), fake=fake.tolist()),
        }
        assert len(values) == 1, (name, values)


@pytest.mark.parametrize("name", ["fid", "precision", "recall"])
def test_features_of_different_widths_are_refused_in_one_sentence(name):
    with pytest.raises(xgen.XgenError, match="same feature extractor") as info:
        xgen.metric(name)(real=np.zeros((10, 4)), fake=np.zeros((10, 5)))
    assert "(10, 4)" in str(info.value) and "(10, 5)" in str(info.value)


@pytest.mark.parametrize("name", ["fid", "precision", "recall"])
def test_non_finite_features_are_refused_in_one_sentence(name):
    fake = np.ones((10, 3))
    fake[2, 1] = np.nan
    with pytest.raises(xgen.XgenError, match="1 NaN or infinite values in the fake features"):
        xgen.metric(name)(real=np.random.default_rng(0).normal(size=(10, 3)), fake=fake)


def test_precision_needs_more_rows_than_k_and_valid_options():
    with pytest.raises(xgen.XgenError, match="more than 3 real feature rows, got 3"):
        xgen.metric("precision")(real=np.zeros((3, 2)), fake=np.zeros((10, 2)))
    with pytest.raises(xgen.XgenError, match="k >= 1"):
        xgen.metric("recall", k=0)


def test_precision_and_recall_separate_fidelity_from_diversity():
    """A tight generated cluster in a wide real cloud: precise but not diverse (torch-fidelity's convention test)."""
    rng = np.random.default_rng(4)
    real = rng.normal(size=(400, 2))
    fake = rng.normal(size=(400, 2)) * 0.2
    assert xgen.metric("precision")(real=real, fake=fake) > 0.9
    assert xgen.metric("recall")(real=real, fake=fake) < 0.3


# Feature extractors


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A randomly initialised torchvision Inception-v3 state dict (the layout of IMAGENET1K_V1) in a file."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    network = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("inception") / "inception_v3.pt"
    torch.save(network.state_dict(), path)
    return path, network


def test_inception_features_are_torchvisions_pool_features_of_the_resized_image(inception_weights):
    path, network = inception_weights
    grey = torch.rand(2, 1, 20, 24, generator=torch.Generator().manual_seed(0))
    features = extract(f"inception:{path}", grey, batch_size=1)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    # Independently: torchvision's network untouched except fc, fed 2x - 1 (what transform_input makes of
    # ImageNet-normalised input), RGB by repetition, bilinear 299x299.
    network.eval()
    network.fc = torch.nn.Identity()
    x = torch.nn.functional.interpolate(grey.repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear")
    with torch.no_grad():
        expected = network(2 * x - 1)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-4)
    assert "inception-v3" in open_extractor(f"inception:{path}").describe()


def test_a_missing_inception_file_says_how_to_get_one(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(xgen.XgenError, match="does not exist") as info:
        open_extractor(f"inception:{missing}")
    message = str(info.value)
    assert 'inception_v3(weights="IMAGENET1K_V1")' in message and "torch.save" in message
    assert "downloads nothing" in message


def test_a_file_that_is_not_an_inception_state_dict_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(xgen.XgenError, match="not a torchvision Inception-v3 state dict"):
        inception_network(path)


def test_an_unknown_features_spec_is_refused(tmp_path):
    with pytest.raises(xgen.XgenError, match="neither inception:PATH nor an existing checkpoint"):
        open_extractor(str(tmp_path / "absent.pt"))


def test_checkpoint_features_are_the_encoder_mean(conv_vae_checkpoint):
    model = xgen.load(conv_vae_checkpoint)
    images = xgen.dataset("digits:normal=1").test().images[:10]
    features = extract(str(conv_vae_checkpoint), images, batch_size=4)
    with torch.no_grad():
        torch.testing.assert_close(features, model.encode(images).mean)
    assert open_extractor(str(conv_vae_checkpoint)).describe().startswith("encoder mean of ")


# Sampling from the prior


def test_conv_vae_generates_from_its_standard_normal_prior(conv_vae_checkpoint):
    model = xgen.load(conv_vae_checkpoint)
    assert "generate" in model.capabilities
    first = model.generate(5, torch.Generator().manual_seed(3))
    again = model.generate(5, torch.Generator().manual_seed(3))
    assert first.shape == (5, *model.input_shape) and torch.equal(first, again)
    z = torch.randn(5, model.config["latent"], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, model.decode(z))


def test_a_model_without_a_prior_cannot_generate():
    bare = xgen.wrap(torch.nn.Linear(2, 2), decode=lambda z: z)
    assert "generate" not in bare.capabilities
    with pytest.raises(xgen.WrapError, match="prior="):
        bare.generate(3)
    with_prior = xgen.wrap(
        torch.nn.Linear(2, 2), decode=lambda z: z.sigmoid(), prior=lambda n, g=None: torch.zeros(n, 2)
    )
    assert with_prior.generate(3).shape == (3, 2)


# xgen evaluate


def test_evaluate_with_checkpoint_features_gives_generator_metrics(conv_vae_checkpoint):
    model = xgen.load(conv_vae_checkpoint)
    result = xgen.evaluate(
        model,
        "digits:normal=1",
        "recon-error",
        metrics=["fid", "precision", "recall:k=5"],
        features=str(conv_vae_checkpoint),
        samples=64,
    )
    assert math.isfinite(result["fid"]) and result["fid"] >= 0
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall:k=5"] <= 1
    summary = result.summary()["generation"]
    assert summary["features"].startswith("encoder mean of") and summary["generated_images"] == 64
    assert summary["dimensions"] == model.config["latent"]


def test_generator_metrics_are_chosen_by_default_only_with_features(conv_vae_checkpoint):
    model = xgen.load(conv_vae_checkpoint)
    plain = xgen.evaluate(model, "digits:normal=1", "recon-error")
    assert not {"fid", "precision", "recall"} & {r.name for r in plain.metrics}
    assert plain.generation is None and "generation" not in plain.summary()
    with pytest.raises(xgen.XgenError, match=r"needs (real|fake).*--features SPEC"):
        xgen.evaluate(model, "digits:normal=1", "recon-error", metrics=["fid"])


def test_features_on_a_model_that_cannot_generate_fail_before_any_work(conv_vae_checkpoint):
    module = xgen.load(conv_vae_checkpoint).module
    with pytest.raises(xgen.WrapError, match="prior="):
        xgen.evaluate(xgen.wrap(module), "digits:normal=1", "recon-error", features=str(conv_vae_checkpoint))
    with pytest.raises(xgen.XgenError, match="samples must be at least 2"):
        xgen.evaluate(module, "digits:normal=1", "recon-error", features=str(conv_vae_checkpoint), samples=1)


def test_cli_evaluate_with_features(conv_vae_checkpoint, tmp_path):
    result = run(
        "evaluate", "--model", str(conv_vae_checkpoint), "--data", "digits:normal=1,test_fraction=0.1", "--plugin",
        "recon-error", "--features", str(conv_vae_checkpoint), "--samples", "40", "--metric", "fid", "--metric",
        "precision", "--json", "e.json", "--report", "e.html", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "fid" in result.stdout and "40 generated images" in result.stdout and "encoder mean of" in result.stdout
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["generation"]["generated_images"] == 40 and set(saved["metrics"]) == {"fid", "precision"}
    assert "encoder mean of" in (tmp_path / "e.html").read_text()
    missing = run(
        "evaluate", "--model", str(conv_vae_checkpoint), "--plugin", "recon-error", "--features",
        "inception:absent.pt", cwd=tmp_path,
    )  # fmt: skip
    assert "does not exist" in one_error_line(missing)
