"""Metrics from shards: the partials of disjoint sets of whole images, merged, equal the single-process metric (AUROC
bit for bit, AUPRO within 1e-12), on maps with and without ties, random shard splits, chunked merges and partials read
back from memory-mapped `.npy` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xgen
from xgen_plugins.metrics import _tables

MAP_METRICS = ["pixel-auroc", "pixel-aupro", "pixel-aupro:max_fpr=1", "best-iou", "iou", "iou:threshold=0.3"]
SCORE_METRICS = ["image-auroc", "max-balanced-accuracy", "balanced-accuracy"]
EXACT = {"pixel-auroc", "image-auroc", "best-iou", "iou", "iou:threshold=0.3", "max-balanced-accuracy"}


pytestmark = pytest.mark.usefixtures("metrics_registry")


def metric(spec: str) -> xgen.Metric:
    name, _, option = spec.partition(":")
    key, _, value = option.partition("=")
    return xgen.metric(name, **({key: float(value)} if key else {}))


def split(n: int, parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random partition of range(n) into `parts` non-empty shards of images, in random order."""
    cuts = np.sort(rng.choice(np.arange(1, n), size=parts - 1, replace=False)) if parts > 1 else []
    return np.split(rng.permutation(n), cuts)


def maps_and_masks(seed: int, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    """n maps of 12 x 10 (quantised to 1/8 steps when `ties`) and masks with a few blobs and some empty masks."""
    rng = np.random.default_rng(seed)
    maps = rng.random((n, 12, 10), dtype=np.float32)
    if ties:
        maps = np.round(maps * 8) / np.float32(8)
    masks = np.zeros((n, 12, 10), dtype=np.uint8)
    for i in range(n):
        if i % 3 == 0:
            continue
        r, c = rng.integers(0, 9), rng.integers(0, 7)
        masks[i, r : r + rng.integers(1, 4), c : c + rng.integers(1, 4)] = 1
        maps[i][masks[i] == 1] += np.float32(0.3)
    return maps, masks


def assert_same(spec: str, whole: float, merged: float) -> None:
    if spec in EXACT:
        assert merged == whole, f"{spec}: {merged!r} != {whole!r}"
    else:
        assert abs(merged - whole) <= 1e-12, f"{spec}: {merged!r} vs {whole!r}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(3, 14),
    parts=st.integers(1, 5),
    ties=st.booleans(),
    budget=st.sampled_from([2, 40, _tables.BUDGET]),
)
def test_map_metrics_from_random_shards_equal_the_single_process_value(seed, n, parts, ties, budget):
    maps, masks = maps_and_masks(seed, n, ties)
    shards = split(n, min(parts, n), np.random.default_rng(seed + 1))
    default, _tables.BUDGET = _tables.BUDGET, budget
    try:
        for spec in MAP_METRICS:
            m = metric(spec)
            whole = m(maps=maps, masks=masks)
            merged = m.merged(m.shard(maps=maps[s], masks=masks[s]) for s in shards)
            assert_same(spec, whole, merged)
    finally:
        _tables.BUDGET = default


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 1e-30, 3.0]) | st.floats(-5, 5, width=32), min_size=4),
    data=st.data(),
)
def test_score_metrics_from_random_shards_equal_the_single_process_value(values, data):
    scores = np.array(values, dtype=np.float32)
    labels = np.array(data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))), dtype=np.uint8)
    labels[0], labels[1] = 0, 1
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    shards = split(len(scores), data.draw(st.integers(1, min(4, len(scores)))), rng)
    for spec in SCORE_METRICS:
        m = metric(spec)
        whole = m(scores=scores, labels=labels)
        assert m.merged(m.shard(scores=scores[s], labels=labels[s]) for s in shards) == whole


@pytest.mark.parametrize("ties", [False, True])
def test_chunked_merge_of_memory_mapped_partials_is_exact(ties, tmp_path: Path, monkeypatch):
    """A budget of a few entries forces hundreds of chunks; partials stored as .npy and read back memory-mapped."""
    monkeypatch.setattr(_tables, "BUDGET", 7)
    chunks = []
    real_compact = _tables._compact
    monkeypatch.setattr(_tables, "_compact", lambda pos, neg: chunks.append(pos.size) or real_compact(pos, neg))
    maps, masks = maps_and_masks(3, 40, ties)
    shards = split(40, 6, np.random.default_rng(0))
    for spec in ("pixel-auroc", "pixel-aupro", "pixel-aupro:max_fpr=1", "best-iou"):
        m = metric(spec)
        stored = []
        for k, s in enumerate(shards):
            folder = tmp_path / spec / str(k)
            folder.mkdir(parents=True)
            for key, array in m.shard(maps=maps[s], masks=masks[s]).items():
                np.save(folder / f"{key}.npy", array, allow_pickle=False)
            stored.append({p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")})
        assert_same(spec, m(maps=maps, masks=masks), m.finish(stored))
        assert_same(spec, m(maps=maps, masks=masks), m.finish(stored[::-1]))
    assert len(chunks) > 50 and max(chunks) <= 7 * 6, "many chunks, each within the budget's bound"


def test_count_tables_add_up_and_compact_to_at_most_twice_the_positive_values():
    rng = np.random.default_rng(5)
    values = rng.integers(0, 50, 2000).astype(np.float32)
    positive = rng.random(2000) < 0.1
    halves = [_tables.count_table(values[:700], positive[:700]), _tables.count_table(values[700:], positive[700:])]
    pos, neg = _tables.merged_segments(halves, budget=16)
    whole = _tables.count_table(values, positive)
    assert pos.sum() == whole["pos"].sum() and neg.sum() == whole["neg"].sum()
    assert pos.size <= 2 * np.count_nonzero(whole["pos"]) + 1 + 2000 // 16
    brute = [(int(np.sum(positive & (values == v))), int(np.sum(~positive & (values == v)))) for v in np.unique(values)]
    assert [tuple(r) for r in zip(whole["pos"], whole["neg"], strict=True)] == brute


def test_metrics_without_shards_say_so_and_errors_survive_merging():
    f1 = xgen.metric("f1")
    assert not f1.shardable() and xgen.metric("pixel-auroc").shardable()
    with pytest.raises(xgen.XgenError, match="cannot be computed from shards"):
        f1.shard(scores=[0.1, 0.9], labels=[0, 1])
    auroc = xgen.metric("pixel-auroc")
    only_normal = auroc.shard(maps=np.zeros((1, 2, 2)), masks=np.zeros((1, 2, 2)))
    with pytest.raises(xgen.XgenError, match="needs both normal and anomalous pixels"):
        auroc.merged([only_normal, only_normal])
    with pytest.raises(xgen.XgenError, match="binary masks"):
        auroc.shard(maps=np.zeros((1, 2, 2)), masks=np.full((1, 2, 2), 2))
