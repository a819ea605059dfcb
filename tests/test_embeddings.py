"""Embedding scorers `embedding-ocsvm` and `embedding-lof`: the whitening and both detectors against scikit-learn
fitted directly on the same embeddings, wide taps, the fitted state in checkpoints, and the CLI's fit and evaluate."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

import xgen
from xgen_plugins.embeddings import taps, whitening

DATA = "digits:normal=1"


@pytest.fixture(scope="module")
def model(conv_vae_checkpoint) -> xgen.Model:
    return xgen.load(conv_vae_checkpoint)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 127 training images (normal) and every fourth test image (135, normal and not)."""
    dataset = xgen.dataset(DATA)
    return dataset.train().images, dataset.test().images[::4]


def whitened(model, train, test, tap="mean"):
    """The plugin's whitened training and test embeddings (float64 numpy) and the whitening state."""
    e, et = taps.embed(model, train, tap), taps.embed(model, test, tap)
    state = whitening.fit(e)
    return whitening.apply(e, state).numpy(), whitening.apply(et, state).numpy(), state


def fresh(model: xgen.Model) -> xgen.Model:
    """The same network with no fitted scorers, so tests do not see each other's fits."""
    copy = xgen.wrap(model.module, input_shape=model.input_shape)
    copy.architecture, copy.config = model.architecture, dict(model.config)
    copy.metadata = {k: v for k, v in model.metadata.items() if k != "fitted_scorers"}
    return copy


def test_whitening_equals_standard_scaler_then_pca_whiten(model, digits):
    train, test = digits
    e, et = taps.embed(model, train, "mean").numpy(), taps.embed(model, test, "mean").numpy()
    w, wt, state = whitened(model, train, test)
    k = state["projection"].shape[1]
    assert k == e.shape[1], "a 32-d latent on 127 images has no numerically-zero component"
    scaler = StandardScaler().fit(e)
    pca = PCA(n_components=k, whiten=True, svd_solver="full").fit(scaler.transform(e))
    reference = pca.transform(scaler.transform(et))
    signs = np.sign((reference * wt).sum(axis=0))
    np.testing.assert_allclose(wt, reference * signs, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(w.var(axis=0, ddof=1), np.ones(k), rtol=1e-10)


def test_ocsvm_equals_scikit_learn_on_the_same_whitened_embeddings(model, digits):
    train, test = digits
    w, wt, _ = whitened(model, train, test)
    for options in ({}, {"kernel": "poly", "nu": 0.2, "gamma": 0.05, "coef0": 1.0}):
        fitted = xgen.fit_scorer(fresh(model), train, "embedding-ocsvm", **options)
        ours = xgen.score(fitted, test, "embedding-ocsvm", **options).double().numpy()
        reference = -OneClassSVM(**options).fit(w).decision_function(wt)
        np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-6 * np.abs(reference).max())


def test_lof_equals_scikit_learn_whitened_by_scikit_learn(model, digits):
    train, test = digits
    e, et = taps.embed(model, train, "mean").numpy(), taps.embed(model, test, "mean").numpy()
    scaler = StandardScaler().fit(e)
    pca = PCA(whiten=True, svd_solver="full").fit(scaler.transform(e))
    w, wt = pca.transform(scaler.transform(e)), pca.transform(scaler.transform(et))
    for options in ({}, {"n_neighbors": 5, "p": 1.0}):
        fitted = xgen.fit_scorer(fresh(model), train, "embedding-lof", **options)
        ours = xgen.score(fitted, test, "embedding-lof", **options).double().numpy()
        reference = -LocalOutlierFactor(novelty=True, **options).fit(w).score_samples(wt)
        np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_lof_clips_neighbours_to_n_minus_1_as_scikit_learn(model, digits):
    train, test = digits
    w, wt, _ = whitened(model, train[:8], test)
    with pytest.warns(UserWarning, match="n_neighbors=20 but only 8 training images, so 7"):
        fitted = xgen.fit_scorer(fresh(model), train[:8], "embedding-lof")
    with pytest.warns(UserWarning, match="n_neighbors will be set to"):
        reference = -LocalOutlierFactor(novelty=True).fit(w).score_samples(wt)
    np.testing.assert_allclose(xgen.score(fitted, test, "embedding-lof").numpy(), reference, rtol=1e-6)


def test_a_tap_wider_than_the_sample_count_keeps_only_real_components(model, digits):
    train, test = digits
    few = train[:30]
    e, et = taps.embed(model, few, "encoder.2").numpy(), taps.embed(model, test, "encoder.2").numpy()
    assert e.shape[1] == 128 * 7 * 7 > len(few)
    _, wt, state = whitened(model, few, test, tap="encoder.2")
    assert state["projection"].shape[1] == len(few) - 1, "30 centred rows span 29 directions"
    naive = PCA(whiten=True, svd_solver="full").fit(StandardScaler().fit_transform(e))
    assert np.abs(naive.transform(StandardScaler().fit(e).transform(et))).max() > 1e8, "the failure this avoids"
    assert np.abs(wt).max() < 1e4
    for name in ("embedding-lof", "embedding-ocsvm"):
        fitted = xgen.fit_scorer(fresh(model), few, name, tap="encoder.2")
        scores = xgen.score(fitted, test, name, tap="encoder.2")
        assert torch.isfinite(scores).all() and scores.std() > 0


def test_all_components_of_a_wide_tap_make_the_training_images_equidistant_and_the_fit_says_so(model, digits):
    train, test = digits
    few = train[:30]
    w, _, _ = whitened(model, few, test, tap="encoder.2")
    distances = torch.pdist(torch.from_numpy(w))
    torch.testing.assert_close(distances, torch.full_like(distances, (2 * 29) ** 0.5), rtol=1e-6, atol=1e-6)
    with pytest.warns(UserWarning, match=r"30 training images of a 6272-feature tap, whitened with all 29 components"):
        xgen.fit_scorer(fresh(model), few, "embedding-ocsvm", tap="encoder.2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xgen.fit_scorer(fresh(model), few, "embedding-ocsvm", tap="encoder.2", components=7)
        xgen.fit_scorer(fresh(model), train, "embedding-ocsvm")  # 127 images of a narrower mean tap


def test_fitted_state_survives_save_and_weights_only_load_without_refitting(model, digits, tmp_path, monkeypatch):
    train, test = digits
    fitted = fresh(model)
    for name in ("embedding-lof", "embedding-ocsvm"):
        xgen.fit_scorer(fitted, DATA, name, tap="encoder.2")
    before = {name: xgen.score(fitted, test, name, tap="encoder.2") for name in ("embedding-lof", "embedding-ocsvm")}
    xgen.save(fitted, tmp_path / "fitted.pt")
    payload = torch.load(tmp_path / "fitted.pt", weights_only=True)
    record = payload["metadata"]["fitted_scorers"]["embedding-lof:components=None,n_neighbors=20,p=2.0,tap=encoder.2"]
    assert record["fitted_on"] == f"{len(train)} images of the training split of {DATA}"
    assert record["state"]["points"].shape[0] == len(train)

    def no_refit(*_):
        raise AssertionError("fit was called")

    for cls in ("EmbeddingLOF", "EmbeddingOCSVM"):
        monkeypatch.setattr(f"xgen_plugins.embeddings.scorers.{cls}.fit", no_refit)
    loaded = xgen.load(tmp_path / "fitted.pt")
    for name, scores in before.items():
        torch.testing.assert_close(xgen.score(loaded, test, name, tap="encoder.2"), scores, rtol=0, atol=0)


def test_an_unfitted_scorer_says_how_to_fit_it(model, digits, monkeypatch):
    _, test = digits
    monkeypatch.setattr(taps, "embed", lambda *_: pytest.fail("work started before the check"))
    with pytest.raises(xgen.XgenError) as caught:
        xgen.score(fresh(model), test, "embedding-lof", n_neighbors=5)
    message = str(caught.value)
    assert "'embedding-lof:n_neighbors=5' has not been fitted on this model" in message
    assert "xgen.fit_scorer(model, data, 'embedding-lof', ...)" in message
    assert "xgen fit-scorer --model CKPT --scorer embedding-lof:n_neighbors=5 --data SPEC" in message
    assert message.count(". ") == 0 and "\n" not in message


def test_a_tap_the_model_lacks_lists_the_taps_it_has(model, digits, monkeypatch):
    train, _ = digits
    monkeypatch.setattr(taps, "embed", lambda *_: pytest.fail("work started before the check"))
    with pytest.raises(xgen.XgenError) as caught:
        xgen.fit_scorer(fresh(model), train, "embedding-ocsvm", tap="dense")
    message = str(caught.value)
    assert message.startswith("scorer 'embedding-ocsvm' reads tap=dense, which this model does not have;")
    assert "its taps are mean, encoder, encoder.0" in message and "fc_mu" in message
    assert "decoder" not in message, "decoder layers do not run when the model encodes"


def test_named_taps_declared_by_a_module_and_heads():
    """A GAN-like module with a discriminator and no encoder: aliases in `embedding_taps` and layers run through
    the discriminator."""

    class Critic(torch.nn.Module):
        embedding_taps = {"dense": "body.1", "q": "auxiliary"}

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6), torch.nn.Tanh())
            self.head = torch.nn.Linear(6, 1)
            self.q = torch.nn.Linear(6, 2)

        def discriminate(self, x):
            return self.head(self.body(x))

        def auxiliary(self, x):
            return self.q(self.body(x))

    critic = Critic()
    gan = xgen.wrap(critic, input_shape=(1, 4, 4))
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    dense = taps.embed(gan, x, taps.resolve(gan, "dense", "test"))
    torch.testing.assert_close(dense, critic.body[1](critic.body[0](x)).double())
    torch.testing.assert_close(taps.embed(gan, x, taps.resolve(gan, "q", "test")), critic.auxiliary(x).double())
    with pytest.raises(xgen.XgenError, match=r"its taps are discriminator, auxiliary, dense, q, body, body\.0"):
        taps.resolve(gan, "mean", "scorer 'embedding-lof'")


def test_evaluate_fits_an_unfitted_scorer_on_the_training_split_and_warns(conv_vae_checkpoint, digits, tmp_path):
    from typer.testing import CliRunner

    from xgen.cli import app

    train, _ = digits
    test = xgen.dataset(DATA).test()
    shutil.copy(conv_vae_checkpoint, tmp_path / "ck.pt")
    command = ["evaluate", "--model", str(tmp_path / "ck.pt"), "--plugin", "recon-error", "--metric", "image-auroc"]
    result = CliRunner().invoke(
        app, [*command, "--scorer", "embedding-lof:tap=mean", "--json", str(tmp_path / "e.json")]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"scorer embedding-lof:tap=mean was not fitted on this model, so it was fitted on {len(train)} images of the "
        f"training split of {DATA} first"
    ) in " ".join(result.output.split())
    saved = json.loads((tmp_path / "e.json").read_text())
    fitted = xgen.fit_scorer(xgen.load(tmp_path / "ck.pt"), train, "embedding-lof")
    expected = roc_auc_score(test.labels.numpy(), xgen.score(fitted, test.images, "embedding-lof").numpy())
    assert saved["metrics"]["image-auroc"]["value"] == pytest.approx(expected, abs=1e-9)
    untouched = torch.load(tmp_path / "ck.pt", weights_only=True)["metadata"]
    assert "fitted_scorers" not in untouched, "evaluate leaves the checkpoint file as it was"


def test_fit_scorer_command_writes_the_checkpoint_that_score_and_evaluate_reuse(conv_vae_checkpoint, digits, tmp_path):
    from typer.testing import CliRunner

    from xgen.cli import app

    train, test = digits
    shutil.copy(conv_vae_checkpoint, tmp_path / "ck.pt")
    runner = CliRunner()
    result = runner.invoke(
        app, ["fit-scorer", "--model", str(tmp_path / "ck.pt"), "--scorer", "embedding-ocsvm:nu=0.3"]
    )
    assert result.exit_code == 0, result.output
    assert f"on {len(train)} images of the training split of {DATA}; wrote" in " ".join(result.output.split())
    loaded = xgen.load(tmp_path / "ck.pt")
    scores = xgen.score(loaded, test, "embedding-ocsvm", nu=0.3)
    w, wt, _ = whitened(loaded, train, test)
    reference = -OneClassSVM(nu=0.3).fit(w).decision_function(wt)
    np.testing.assert_allclose(scores.double().numpy(), reference, rtol=1e-6, atol=1e-6 * np.abs(reference).max())
    evaluated = xgen.evaluate(loaded, DATA, "recon-error", scorer="embedding-ocsvm:nu=0.3", metrics=["image-auroc"])
    assert not any("was not fitted" in warning for warning in evaluated.warnings)
    torch.testing.assert_close(evaluated.scores[::4], scores)
