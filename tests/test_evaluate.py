"""`xgen.evaluate` and its report: which metrics run on which data, normalisation, honest thresholds."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

import xgen
import xgen.evaluation
from xgen.report import per_image_auroc, roc_points, write_html, write_json
from xgen.testing import TinyVAE

SIZE = 16


def planted(n: int, seed: int, defects: bool) -> xgen.ImageSet:
    """Dark noise in [0, 0.1]; with `defects`, every odd image gets a white 4x4 square and its exact mask."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, SIZE, SIZE, generator=g) * 0.1
    masks = torch.zeros(n, SIZE, SIZE)
    labels = torch.zeros(n, dtype=torch.long)
    if defects:
        for i in range(1, n, 2):
            r, c = torch.randint(0, SIZE - 4, (2,), generator=g).tolist()
            masks[i, r : r + 4, c : c + 4] = 1
            labels[i] = 1
        images = torch.where(masks[:, None] > 0, torch.ones_like(images), images)
    return xgen.ImageSet(images, labels=labels, masks=masks)


class Planted(xgen.Dataset):
    """Normal dark noise for training; half of the test images carry a white square (masks exact)."""

    name = "planted"
    n: int = 24
    masks: bool = True
    anomalies: bool = True
    flat_train: bool = False

    def train(self) -> xgen.ImageSet:
        if self.flat_train:
            return xgen.ImageSet(torch.zeros(8, 1, SIZE, SIZE))
        return xgen.ImageSet(planted(16, seed=1, defects=False).images)

    def test(self) -> xgen.ImageSet:
        data = planted(self.n, seed=2, defects=self.anomalies)
        return xgen.ImageSet(data.images, labels=data.labels, masks=data.masks if self.masks else None)


class Blank(nn.Module):
    """An autoencoder that reconstructs every image as black, so recon-error's map is x squared."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2] * self.bias

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0], 1, SIZE, SIZE) + self.bias


@pytest.fixture
def model() -> xgen.Model:
    return xgen.wrap(Blank(), input_shape=(1, SIZE, SIZE))


def test_every_supported_metric_runs_and_equals_sklearn_on_the_maps_it_saw(registry, model):
    result = xgen.evaluate(model, Planted(), "recon-error")
    image_inputs = {"maps", "masks", "scores", "labels"}
    registered = {i.name for i in xgen.list_plugins() if i.kind == "metric" and i.obj.requires <= image_inputs}
    assert {r.spec for r in result.metrics} == registered
    test = result.test
    expected = roc_auc_score(test.masks.flatten().numpy(), result.normalized.flatten().numpy())
    assert result["pixel-auroc"] == pytest.approx(expected, abs=1e-9)
    raw = xgen.evaluate(model, Planted(), "recon-error", normalize="none", metrics=["pixel-auroc"])
    assert raw["pixel-auroc"] == 1.0 > result["pixel-auroc"] > 0.99
    assert result["image-auroc"] == pytest.approx(roc_auc_score(test.labels.numpy(), result.scores.numpy()), abs=1e-9)
    assert result.score_source == "explainer recon-error"
    torch.testing.assert_close(result.maps, test.images[:, 0] ** 2)


def test_per_image_normalisation_scales_each_map_and_scores_over_the_test_set(registry, model):
    result = xgen.evaluate(model, Planted(), "recon-error", normalize="per-image")
    flat = result.normalized.flatten(1)
    torch.testing.assert_close(flat.min(dim=1).values, torch.zeros(len(flat)))
    torch.testing.assert_close(flat.max(dim=1).values, torch.ones(len(flat)))
    assert float(result.normalized_scores.min()) == 0.0 and float(result.normalized_scores.max()) == 1.0
    assert result.normalization["method"] == "per-image"


def test_normal_stats_scales_by_the_range_of_normal_training_maps(registry, model):
    result = xgen.evaluate(model, Planted(), "recon-error", normalize="normal-stats", validation_images=5)
    normal = Planted().train().images[:, 0] ** 2
    record = result.normalization
    assert record["method"] == "normal-stats" and record["validation"].startswith("5 images of the training split")
    low, high = record["maps"]
    assert normal.min() <= low < high <= normal.max()
    torch.testing.assert_close(result.normalized, (result.maps - low) / (high - low))
    anomalous = result.test.masks > 0
    assert float(result.normalized[anomalous].min()) > 1.0
    assert json.loads(json.dumps(result.summary()))["normalization"]["maps"] == [low, high]


def test_normal_stats_refuses_normal_maps_without_a_scale(registry, model):
    with pytest.raises(xgen.XgenError, match="give no scale; use --normalize per-image"):
        xgen.evaluate(model, Planted(flat_train=True), "recon-error", normalize="normal-stats")


def test_a_threshold_that_flags_nothing_is_a_warning_not_a_silent_number(registry, model):
    result = xgen.evaluate(
        model, Planted(), "recon-error", normalize="none", metrics=["iou:threshold=2", "balanced-accuracy"]
    )
    for r in result.metrics:
        assert r.flagged == 0.0
        assert "flags none of the" in r.note
    assert len(result.warnings) == 2 and result.warnings[0].startswith("iou:threshold=2: threshold 2 flags none")


def test_metric_options_come_from_the_spec(registry, model):
    result = xgen.evaluate(model, Planted(), "recon-error", metrics=["iou:threshold=0.3"])
    (r,) = result.metrics
    assert r.options == {"threshold": "0.3"}
    predicted = result.normalized >= 0.3
    truth = result.test.masks > 0
    assert r.value == pytest.approx(float((predicted & truth).sum() / (predicted | truth).sum()))
    assert r.flagged == pytest.approx(float(predicted.float().mean()))


def test_unsupported_metric_is_refused_before_any_image_is_explained(registry, model, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("explained before checking the metrics")

    monkeypatch.setattr(xgen.evaluation, "explain", never)
    with pytest.raises(xgen.XgenError, match=r"'pixel-auroc' needs masks, but planted:n=24,masks=False has no masks"):
        xgen.evaluate(model, Planted(masks=False), "recon-error", metrics=["pixel-auroc"])
    with pytest.raises(xgen.XgenError, match=r"'image-auroc' needs labels, but .* has only normal test images \(24\)"):
        xgen.evaluate(model, Planted(anomalies=False), "recon-error", metrics=["image-auroc"])
    with pytest.raises(xgen.XgenError, match="Did you mean 'pixel-auroc'"):
        xgen.evaluate(model, Planted(), "recon-error", metrics=["pixel-aurc"])


def test_data_of_another_size_is_refused_before_any_work(registry, model, monkeypatch):
    monkeypatch.setattr(xgen.evaluation, "explain", None)
    small = xgen.wrap(Blank(), input_shape=(1, 8, 8))
    with pytest.raises(xgen.XgenError, match=r"has 1x16x16 \(CxHxW\) images but the model expects 1x8x8"):
        xgen.evaluate(small, Planted(), "recon-error")


def test_default_metrics_follow_what_the_data_has(registry, model):
    without_masks = xgen.evaluate(model, Planted(masks=False), "recon-error")
    assert {r.spec for r in without_masks.metrics} == {
        "image-auroc",
        "balanced-accuracy",
        "max-balanced-accuracy",
        "f1",
        "accuracy",
    }
    assert all(r.interval is not None for r in without_masks.metrics if r.spec in ("f1", "accuracy"))
    reseeded = xgen.evaluate(model, Planted(masks=False), "recon-error", metrics=["f1:threshold=0.003"], seed=1)
    pinned = xgen.evaluate(model, Planted(masks=False), "recon-error", metrics=["f1:threshold=0.003,seed=0"], seed=1)
    default = xgen.evaluate(model, Planted(masks=False), "recon-error", metrics=["f1:threshold=0.003"])
    assert pinned.metrics[0].interval == default.metrics[0].interval
    assert reseeded.metrics[0].interval != default.metrics[0].interval, "the evaluation seed reaches the bootstrap"


def test_equal_map_maxima_without_scores_leave_image_metrics_out_with_a_warning(registry):
    tiny = xgen.wrap(TinyVAE(), input_shape=(1, SIZE, SIZE))
    result = xgen.evaluate(tiny, Planted(), "vae-gradcam")
    assert result.scores is None and result.score_source == "none"
    assert not any(r.spec in ("image-auroc", "f1") for r in result.metrics)
    assert "pixel-auroc" in {r.spec for r in result.metrics}
    assert any("pass --scorer NAME" in w for w in result.warnings)
    with_scorer = xgen.evaluate(tiny, Planted(), "vae-gradcam", scorer="recon-error", metrics=["image-auroc"])
    assert with_scorer.score_source == "scorer recon-error"


def test_per_image_auroc_equals_sklearn_row_by_row():
    g = torch.Generator().manual_seed(0)
    maps = (torch.rand(5, 8, 8, generator=g) * 4).round()
    masks = (torch.rand(5, 8, 8, generator=g) > 0.7).float()
    masks[4] = 0
    auc = per_image_auroc(maps, masks)
    for i in range(4):
        assert auc[i] == pytest.approx(roc_auc_score(masks[i].flatten(), maps[i].flatten()), abs=1e-12)
    assert np.isnan(auc[4])


def test_roc_points_are_exact_points_of_the_curve():
    g = torch.Generator().manual_seed(0)
    values = torch.rand(2000, generator=g)
    truth = torch.rand(2000, generator=g) < values
    fpr, tpr = roc_points(values, truth, levels=32)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and fpr[-1] == pytest.approx(1.0) and tpr[-1] == pytest.approx(1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    thresholds = torch.unique(values)
    flagged = values[None, :] >= thresholds[:, None]
    exact_fpr = flagged[:, ~truth].double().mean(dim=1).numpy()
    exact_tpr = flagged[:, truth].double().mean(dim=1).numpy()
    for f, t in zip(fpr[1:], tpr[1:], strict=True):
        assert np.min(np.abs(exact_fpr - f) + np.abs(exact_tpr - t)) < 1e-12


def test_report_and_json_carry_the_values_and_stand_alone(registry, model, tmp_path):
    result = xgen.evaluate(model, Planted(), "recon-error")
    write_json(tmp_path / "e.json", result, "xgen evaluate ...", {"path": "m.pt"})
    write_html(tmp_path / "e.html", result, "xgen evaluate ...", {"path": "m.pt"})
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["metrics"]["pixel-auroc"]["value"] == result["pixel-auroc"]
    assert saved["command"] == "xgen evaluate ..." and saved["environment"]["torch"] == torch.__version__
    assert saved["test"] == {"images": 24, "anomalous_images": 12, "pixels": 24 * SIZE * SIZE, "anomalous_pixels": 192}
    page = (tmp_path / "e.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<svg" in page and "Best localised" in page and "Worst localised" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.html", "e.json"]
