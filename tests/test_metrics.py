"""The built-in metrics plugin: every metric against scikit-learn or a brute-force reference, exactness of the
histogram path on heavy ties, AUPRO on hand-made cases, and the errors for bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage.measure import label as connected
from sklearn import metrics as skm

import xgen
import xgen_plugins.metrics
from xgen_plugins.metrics import _counts

NAMES = [
    "pixel-auroc",
    "image-auroc",
    "pixel-aupro",
    "iou",
    "best-iou",
    "balanced-accuracy",
    "max-balanced-accuracy",
    "f1",
    "accuracy",
]


pytestmark = pytest.mark.usefixtures("metrics_registry")


@pytest.fixture(params=["sort", "radix", "ranged"])
def path(request, monkeypatch):
    """Run a test through the small-input sort, the radix-histogram path, and the ranged sorting path of nearly
    continuous maps (with small ranges and chunks, so values cross range and chunk boundaries)."""
    if request.param != "sort":
        monkeypatch.setattr(_counts, "SMALL", 0)
        monkeypatch.setattr(_counts, "few_values", lambda x: request.param == "radix")
    if request.param == "ranged":
        monkeypatch.setattr(_counts, "RANGE_SHARE", 0.2)
        monkeypatch.setattr(_counts, "_CHUNK", 97)
    return request.param


def _maps(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "quantised":
        return np.round(rng.random(shape) * 16) / 16
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "constant":
        return np.full(shape, 0.25)
    if kind == "extremes":
        choices = np.array([-0.0, 0.0, 1.0, -1.0, 3.4e38, -3.4e38, 1e-45, -1e-45, 1.17e-38, 2.0**-126])
        return rng.choice(choices, size=shape)
    if kind == "ulps":  # neighbouring float32 values: keys that differ only in their lowest bits
        return np.float32(1.0) + rng.integers(0, 600, size=shape).astype(np.float32) * np.float32(2.0**-23)
    if kind == "zeros":
        return rng.choice(np.array([-0.0, 0.0]), size=shape)
    return np.round(rng.standard_normal(shape) * 3) * 1e30


KINDS = ["quantised", "normal", "constant", "extremes", "zeros", "huge", "ulps"]


def _data(kind: str, seed: int = 0, shape: tuple[int, int, int] = (6, 24, 20)) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    maps = torch.from_numpy(_maps(kind, shape, rng).astype(np.float32))
    masks = torch.from_numpy(rng.random(shape) < 0.3).float()
    return maps, masks


def test_every_metric_is_registered_and_described():
    for name in NAMES:
        cls = xgen.plugins.lookup("metric", name)
        assert cls.name == name and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
        assert cls.description and "\n" not in cls.description
        assert set(cls.requires) <= {"maps", "masks", "scores", "labels"} and cls.requires
        assert cls.__doc__


@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce")  # scikit-learn's float32 checks
@pytest.mark.parametrize("kind", KINDS)
def test_pixel_auroc_equals_sklearn(kind, path):
    maps, masks = _data(kind)
    expected = skm.roc_auc_score(masks.numpy().ravel(), maps.numpy().ravel())
    assert xgen.metric("pixel-auroc")(maps=maps, masks=masks) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("kind", ["quantised", "normal"])
def test_pixel_auroc_when_too_many_buckets_are_mixed(kind, monkeypatch):
    monkeypatch.setattr(_counts, "SMALL", 0)
    monkeypatch.setattr(_counts, "_LIMIT", 256)
    monkeypatch.setattr(_counts, "few_values", lambda x: True)
    maps, masks = _data(kind, shape=(4, 64, 64))
    expected = skm.roc_auc_score(masks.numpy().ravel(), maps.numpy().ravel())
    assert xgen.metric("pixel-auroc")(maps=maps, masks=masks) == pytest.approx(expected, abs=1e-9)


def test_pixel_auroc_on_many_pixels_and_small_chunks(monkeypatch):
    monkeypatch.setattr(_counts, "SMALL", 0)
    monkeypatch.setattr(_counts, "_CHUNK", 1000)
    rng = np.random.default_rng(3)
    maps = torch.from_numpy((np.round(rng.random((8, 64, 64)) * 1024) / 1024).astype(np.float32))
    masks = torch.from_numpy(rng.random((8, 64, 64)) < maps.numpy() * 0.2)
    expected = skm.roc_auc_score(masks.numpy().ravel(), maps.numpy().ravel())
    assert xgen.metric("pixel-auroc")(maps=maps, masks=masks) == pytest.approx(expected, abs=1e-9)


@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce")
@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        st.integers(2, 60),
        elements=st.one_of(
            st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5]),
            st.floats(-3.3999999521443642e38, 3.3999999521443642e38, allow_nan=False, allow_infinity=False, width=32),
        ),
    ),
    data=st.data(),
    radix=st.booleans(),
)
def test_auroc_is_exact_on_arbitrary_float32(values, data, radix):
    labels = data.draw(hnp.arrays(np.bool_, values.shape))
    if labels.all() or not labels.any():
        labels[0] = not labels[0]
    positive = labels
    old = _counts.SMALL
    _counts.SMALL = 0 if radix else old
    try:
        pos, neg = _counts.segments(values, positive)
    finally:
        _counts.SMALL = old
    got = xgen_plugins.metrics.roc.auroc_from_segments(pos, neg)
    assert got == pytest.approx(skm.roc_auc_score(positive, values.astype(np.float64)), abs=1e-9)


def _ranked(values: np.ndarray) -> np.ndarray:
    """Dense ranks of float values (-0.0 equal to 0.0, infinities allowed): what scikit-learn can score."""
    return np.unique(values.astype(np.float64) + 0.0, return_inverse=True)[1].astype(np.float64)


def _brute_twice_u(values: np.ndarray, positive: np.ndarray) -> int:
    """2 U by comparing every positive with every negative."""
    p, n = values[positive].astype(np.float64)[:, None], values[~positive].astype(np.float64)[None, :]
    return int(2 * np.count_nonzero(p > n) + np.count_nonzero(p == n))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("share", [1.0, 0.5, 0.05])
def test_twice_u_on_near_continuous_maps_equals_sklearn_and_brute_force(ties, share, monkeypatch):
    monkeypatch.setattr(_counts, "SMALL", 0)
    monkeypatch.setattr(_counts, "RANGE_SHARE", share)
    monkeypatch.setattr(_counts, "_CHUNK", 1000)
    rng = np.random.default_rng(11)
    maps = (rng.standard_normal(6000) * 3).astype(np.float32)
    if ties:
        maps[rng.random(maps.size) < 0.3] = np.float32(0.5)
        maps = np.where(rng.random(maps.size) < 0.1, np.round(maps), maps).astype(np.float32)
    maps[:6] = [0.0, -0.0, np.inf, -np.inf, -0.0, np.inf]
    positive = rng.random(maps.size) < 0.2 + 0.5 * (maps > 1)
    twice_u, n_pos, n_neg = _counts.twice_u(maps, positive)
    assert (n_pos, n_neg) == (positive.sum(), (~positive).sum())
    assert twice_u == _brute_twice_u(maps, positive)
    assert twice_u / (2 * n_pos * n_neg) == pytest.approx(skm.roc_auc_score(positive, _ranked(maps)), abs=1e-12)
    pos, neg = _counts.segments(maps, positive)
    assert xgen_plugins.metrics.roc.auroc_from_segments(pos, neg) == twice_u / (2 * n_pos * n_neg)


@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce")
@settings(max_examples=80, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        st.integers(2, 400),
        elements=st.one_of(
            st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, np.inf, -np.inf]),
            st.floats(allow_nan=False, width=32),
        ),
    ),
    data=st.data(),
    share=st.sampled_from([1.0, 0.3, 0.01]),
    chunk=st.integers(1, 64),
)
def test_ranged_path_is_exact_on_arbitrary_float32(values, data, share, chunk):
    positive = data.draw(hnp.arrays(np.bool_, values.shape))
    if positive.all() or not positive.any():
        positive[0] = not positive[0]
    saved = _counts.SMALL, _counts.RANGE_SHARE, _counts._CHUNK, _counts.FEW_VALUES
    _counts.SMALL, _counts.RANGE_SHARE, _counts._CHUNK, _counts.FEW_VALUES = 0, share, chunk, 0
    try:
        twice_u, _, _ = _counts.twice_u(values, positive)
        pos, neg = _counts.segments(values, positive, weights=np.arange(1.0, positive.sum() + 1))
    finally:
        _counts.SMALL, _counts.RANGE_SHARE, _counts._CHUNK, _counts.FEW_VALUES = saved
    assert twice_u == _brute_twice_u(values, positive)
    # Weighted segments: the weighted 2 U they give equals the brute-force one (integer weights: exact in float64).
    weights = np.arange(1.0, positive.sum() + 1)
    p, n = values[positive].astype(np.float64)[:, None], values[~positive].astype(np.float64)[None, :]
    brute = float(weights @ (2 * np.count_nonzero(p > n, axis=1) + np.count_nonzero(p == n, axis=1)))
    assert float(np.dot(pos, 2 * (np.cumsum(neg) - neg) + neg)) == brute
    assert neg.sum() == (~positive).sum()


def test_keys_are_order_preserving():
    special = np.array([-np.inf, -3.4e38, -1.0, -1e-45, -0.0, 0.0, 1e-45, 1.17e-38, 1.0, 3.4e38, np.inf], np.float32)
    keys = _counts.keys32(special).astype(np.int64)
    assert np.all(np.diff(keys)[[0, 1, 2, 3, 5, 6, 7, 8, 9]] > 0) and keys[4] == keys[5]


def test_maps_with_many_values_take_the_ranged_path_in_bounded_memory(monkeypatch):
    monkeypatch.setattr(_counts, "SMALL", 0)
    rng = np.random.default_rng(5)
    maps = rng.random(1 << 18).astype(np.float32)
    positive = rng.random(maps.size) < maps * 0.3
    assert not _counts.few_values(maps) and _counts.few_values(np.round(maps * 60))
    gathered = []
    real = _counts._gather
    monkeypatch.setattr(_counts, "_gather", lambda *a: gathered.append(real(*a)) or gathered[-1])
    twice_u, n_pos, n_neg = _counts.twice_u(maps, positive)
    assert twice_u / (2 * n_pos * n_neg) == pytest.approx(skm.roc_auc_score(positive, maps), abs=1e-12)
    assert len(gathered) >= 2 and max(p.nbytes + n.nbytes for p, n, _ in gathered) <= 0.6 * maps.nbytes


def test_float64_maps_exact_or_not():
    maps, masks = _data("quantised")
    metric = xgen.metric("pixel-auroc")
    expected = skm.roc_auc_score(masks.numpy().ravel(), maps.numpy().ravel())
    assert metric(maps=maps.double(), masks=masks) == pytest.approx(expected, abs=1e-9)
    fine = (
        maps.double() + torch.rand(maps.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1e-9
    )
    expected = skm.roc_auc_score(masks.numpy().ravel(), fine.numpy().ravel())
    assert metric(maps=fine, masks=masks) == pytest.approx(expected, abs=1e-9)


def test_image_auroc_equals_sklearn():
    rng = np.random.default_rng(1)
    scores = torch.from_numpy(np.round(rng.random(200) * 10).astype(np.float32))
    labels = torch.from_numpy(rng.random(200) < 0.4).long()
    expected = skm.roc_auc_score(labels.numpy(), scores.numpy())
    assert xgen.metric("image-auroc")(scores=scores, labels=labels) == pytest.approx(expected, abs=1e-9)


def test_roc_curve_has_sklearn_area():
    maps, masks = _data("quantised")
    fpr, tpr = xgen_plugins.metrics.roc_curve(maps, masks)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    expected = skm.roc_auc_score(masks.numpy().ravel(), maps.numpy().ravel())
    assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=1e-9)


# -- AUPRO ------------------------------------------------------------------------------------------------------


def brute_aupro(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3) -> float:
    """The PRO curve at every distinct threshold, integrated segment by segment up to max_fpr."""
    regions = []
    for i, mask in enumerate(masks):
        labelled = connected(mask, connectivity=2)
        for k in range(1, labelled.max() + 1):
            region = np.zeros(masks.shape, dtype=bool)
            region[i] = labelled == k
            regions.append(region)
    normal = masks == 0
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        flagged = maps >= t
        fprs.append((flagged & normal).sum() / normal.sum())
        pros.append(np.mean([flagged[r].mean() for r in regions]))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(zip(fprs, pros, strict=True), zip(fprs[1:], pros[1:], strict=True), strict=False):
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:
            y1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            x1 = max_fpr
        area += (x1 - x0) * (y0 + y1) / 2
    return area / max_fpr


def _blobs(seed: int, shape=(4, 16, 16)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros(shape, dtype=bool)
    for image in masks[1:]:
        for _ in range(rng.integers(1, 4)):
            y, x, h, w = rng.integers(0, shape[1] - 3), rng.integers(0, shape[2] - 3), *rng.integers(1, 4, 2)
            image[y : y + h, x : x + w] = True
    return masks


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_fpr", [0.3, 0.05, 1.0])
@pytest.mark.parametrize("ulps", [False, True])
def test_pixel_aupro_equals_brute_force(seed, max_fpr, ulps, path):
    masks = _blobs(seed)
    rng = np.random.default_rng(seed)
    maps = np.round(rng.random(masks.shape) * 8 + masks * rng.random(masks.shape) * 4) / 8
    if ulps:
        maps = np.float32(1.0) + (maps * 64).astype(np.float32) * np.float32(2.0**-23)
    got = xgen.metric("pixel-aupro", max_fpr=max_fpr)(
        maps=torch.from_numpy(maps.astype(np.float32)), masks=torch.from_numpy(masks)
    )
    assert got == pytest.approx(brute_aupro(maps.astype(np.float32), masks, max_fpr), abs=1e-9)


def test_pixel_aupro_when_too_many_buckets_are_mixed(monkeypatch):
    monkeypatch.setattr(_counts, "SMALL", 0)
    monkeypatch.setattr(_counts, "_LIMIT", 256)
    monkeypatch.setattr(_counts, "few_values", lambda x: True)
    masks = _blobs(7)
    maps = np.random.default_rng(7).random(masks.shape).astype(np.float32) + masks * 0.3
    got = xgen.metric("pixel-aupro")(maps=torch.from_numpy(maps), masks=torch.from_numpy(masks))
    assert got == pytest.approx(brute_aupro(maps, masks), abs=1e-9)


def test_pixel_aupro_hand_made_cases(path):
    masks = np.zeros((2, 6, 6), dtype=bool)
    masks[0, 1:3, 1:3] = True
    masks[1, 4, 4] = masks[1, 5, 5] = True  # diagonal neighbours: one 8-connected region
    masks[1, 0, 5] = True
    metric = xgen.metric("pixel-aupro")
    as_tensors = {"masks": torch.from_numpy(masks)}
    assert metric(maps=torch.from_numpy(masks.astype(np.float32)), **as_tensors) == 1.0
    assert metric(maps=torch.from_numpy((~masks).astype(np.float32)), **as_tensors) == 0.0
    # Only the lone pixel region (1 of 3 regions) is found before any normal pixel: PRO 1/3 up to FPR 1 - 1/64.
    maps = np.where(masks, 0.0, 0.5).astype(np.float32)
    maps[1, 0, 5] = 1.0
    assert metric(maps=torch.from_numpy(maps), **as_tensors) == pytest.approx(1 / 3, abs=1e-12)
    assert brute_aupro(maps, masks) == pytest.approx(1 / 3, abs=1e-12)


def test_pixel_aupro_is_at_most_one_on_ties():
    masks = _blobs(5)
    maps = torch.from_numpy(masks.astype(np.float32) * 0.5 + 0.25)
    assert xgen.metric("pixel-aupro")(maps=maps, masks=torch.from_numpy(masks)) <= 1.0


# -- thresholded metrics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 2.0])
def test_iou_equals_jaccard(threshold):
    maps, masks = _data("quantised")
    expected = skm.jaccard_score(masks.numpy().ravel(), maps.numpy().ravel() >= threshold, zero_division=0)
    assert xgen.metric("iou", threshold=threshold)(maps=maps, masks=masks) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_best_iou_equals_brute_force(kind, path):
    maps, masks = _data(kind, seed=4)
    values, truth = maps.numpy().ravel(), masks.numpy().ravel().astype(bool)
    brute = max(np.sum((values >= t) & truth) / np.sum((values >= t) | truth) for t in np.unique(values))
    assert xgen.metric("best-iou")(maps=maps, masks=masks) == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.9])
def test_balanced_accuracy_equals_sklearn(threshold):
    rng = np.random.default_rng(2)
    scores, labels = torch.from_numpy(np.round(rng.random(300) * 20) / 20), torch.from_numpy(rng.random(300) < 0.3)
    expected = skm.balanced_accuracy_score(labels.numpy(), scores.numpy() >= threshold)
    got = xgen.metric("balanced-accuracy", threshold=threshold)(scores=scores, labels=labels)
    assert got == pytest.approx(expected, abs=1e-12)


def test_max_balanced_accuracy_equals_brute_force(path):
    rng = np.random.default_rng(3)
    scores = np.round(rng.standard_normal(400) * 4).astype(np.float32)
    labels = rng.random(400) < (scores > 0) * 0.5 + 0.2
    brute = max(skm.balanced_accuracy_score(labels, scores >= t) for t in [*np.unique(scores), np.inf])
    got = xgen.metric("max-balanced-accuracy")(scores=torch.from_numpy(scores), labels=torch.from_numpy(labels))
    assert got == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize(("name", "reference"), [("f1", skm.f1_score), ("accuracy", skm.accuracy_score)])
def test_f1_and_accuracy_with_bootstrap_interval(name, reference):
    rng = np.random.default_rng(6)
    scores, labels = torch.from_numpy(rng.random(150)), torch.from_numpy((rng.random(150) < 0.5).astype(np.int64))
    metric = xgen.metric(name, threshold=0.4, bootstrap=300, seed=1)
    point = metric(scores=scores, labels=labels)
    assert point == pytest.approx(reference(labels.numpy(), scores.numpy() >= 0.4), abs=1e-12)
    low, high = metric.interval(scores=scores, labels=labels)
    assert low <= point <= high and high - low < 0.3
    assert metric.interval(scores=scores, labels=labels) == (low, high)
    # The same resamples, recomputed with scikit-learn.
    pick = np.random.default_rng(1).integers(0, 150, size=(300, 150))
    boot = [reference(labels.numpy()[p], scores.numpy()[p] >= 0.4) for p in pick]
    assert (low, high) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), abs=1e-12)


def test_f1_is_zero_without_positives():
    scores, labels = torch.zeros(5), torch.zeros(5)
    assert xgen.metric("f1")(scores=scores, labels=labels) == 0.0


# -- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pixel-auroc", "pixel-aupro"])
def test_one_class_only_is_an_error(name):
    maps = torch.rand(2, 8, 8)
    for masks in (torch.zeros(2, 8, 8), torch.ones(2, 8, 8)):
        with pytest.raises(xgen.XgenError, match="needs both normal and anomalous pixels"):
            xgen.metric(name)(maps=maps, masks=masks)


@pytest.mark.parametrize("name", ["image-auroc", "balanced-accuracy", "max-balanced-accuracy"])
def test_one_class_of_images_is_an_error(name):
    with pytest.raises(xgen.XgenError, match="needs both normal and anomalous images"):
        xgen.metric(name)(scores=torch.rand(4), labels=torch.ones(4))


def test_best_iou_without_anomalies_is_an_error():
    with pytest.raises(xgen.XgenError, match="needs anomalous pixels"):
        xgen.metric("best-iou")(maps=torch.rand(2, 4, 4), masks=torch.zeros(2, 4, 4))


@pytest.mark.parametrize("name", ["pixel-auroc", "pixel-aupro", "iou", "best-iou"])
def test_bad_maps_and_masks_are_errors(name):
    maps, masks = torch.rand(2, 8, 8), (torch.rand(2, 8, 8) > 0.5).float()
    with pytest.raises(xgen.XgenError, match="NaN"):
        xgen.metric(name)(maps=maps.masked_fill(maps > 0.9, float("nan")), masks=masks)
    with pytest.raises(xgen.XgenError, match="binary"):
        xgen.metric(name)(maps=maps, masks=masks * 2)
    with pytest.raises(xgen.XgenError, match="must match"):
        xgen.metric(name)(maps=maps, masks=masks[:1])
    with pytest.raises(xgen.XgenError, match="needs masks"):
        xgen.metric(name)(maps=maps)


@pytest.mark.parametrize("name", ["image-auroc", "balanced-accuracy", "max-balanced-accuracy", "f1", "accuracy"])
def test_bad_scores_and_labels_are_errors(name):
    scores, labels = torch.rand(6), torch.tensor([0, 1, 0, 1, 1, 0])
    with pytest.raises(xgen.XgenError, match="NaN"):
        xgen.metric(name)(scores=scores.masked_fill(labels == 1, float("nan")), labels=labels)
    with pytest.raises(xgen.XgenError, match="binary"):
        xgen.metric(name)(scores=scores, labels=labels + 1)


def test_bad_options_are_errors():
    with pytest.raises(xgen.XgenError, match="max_fpr"):
        xgen.metric("pixel-aupro", max_fpr=0)
    with pytest.raises(xgen.XgenError, match="bootstrap"):
        xgen.metric("f1", bootstrap=0)
