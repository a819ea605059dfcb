"""Metric inputs: every registered metric gives the same value from torch tensors, numpy arrays and lists; other
types, unknown inputs and disagreeing shapes are refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xgen
from xgen.methods import ARRAY_INPUTS


def _inputs(requires: frozenset[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random numpy inputs for every array a metric requires, with both classes present."""
    masks = rng.random((2, 8, 8)) > 0.7
    labels = np.array([0, 1] * 10)
    made = {
        "maps": rng.random((2, 8, 8)).astype(np.float32),
        "masks": masks,
        "scores": rng.random(20),
        "labels": labels,
        "codes": rng.standard_normal((60, 3)),
        "factors": rng.integers(0, 4, size=(60, 2)),
        "real": rng.standard_normal((40, 4)),
        "fake": rng.standard_normal((30, 4)) + 0.5,
    }
    return {name: made[name] for name in requires}


def _array_metrics() -> list[str]:
    return sorted(
        info.name
        for info in xgen.list_plugins()
        if info.kind == "metric" and info.error is None and set(info.obj.requires) <= ARRAY_INPUTS
    )


@pytest.mark.parametrize("name", _array_metrics())
def test_numpy_torch_and_lists_give_the_same_value(name):
    metric = xgen.metric(name)
    given = _inputs(frozenset(metric.requires), np.random.default_rng(0))
    from_numpy = metric(**given)
    from_torch = metric(**{k: torch.from_numpy(v) for k, v in given.items()})
    from_lists = metric(**{k: v.tolist() for k, v in given.items()})
    assert from_numpy == from_torch == from_lists


def test_the_issue_examples_work():
    rng = np.random.default_rng(1)
    maps, masks = rng.random((2, 8, 8)), rng.random((2, 8, 8)) > 0.5
    from sklearn.metrics import roc_auc_score

    assert xgen.metric("pixel-auroc")(maps=maps, masks=masks) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12
    )
    assert xgen.metric("image-auroc")(scores=[0.1, 0.9, 0.3], labels=[0, 1, 0]) == 1.0


def test_read_only_numpy_arrays_are_accepted_without_warnings():
    maps = np.linspace(0, 1, 32, dtype=np.float32).reshape(2, 4, 4)
    masks = maps > 0.6
    maps.flags.writeable = False
    assert xgen.metric("pixel-auroc")(maps=maps, masks=masks) == 1.0


@pytest.mark.parametrize(
    ("value", "what"),
    [("0.1 0.9", "str"), ({"a": 1}, "dict"), (["a", "b"], "list of <U1"), ([[0.1, 0.2], [0.3]], "ragged")],
)
def test_other_types_are_refused_in_one_sentence(value, what):
    with pytest.raises(xgen.XgenError) as caught:
        xgen.metric("image-auroc")(scores=value, labels=[0, 1])
    message = str(caught.value)
    assert "scores" in message and what in message
    assert "numpy array, a torch tensor or a sequence of numbers" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_unknown_and_unused_inputs_are_refused():
    metric = xgen.metric("image-auroc")
    with pytest.raises(xgen.XgenError, match=r"takes labels and scores, not score\. Did you mean 'scores'"):
        metric(score=[0.1, 0.2], labels=[0, 1])
    with pytest.raises(xgen.XgenError, match="takes labels and scores, not maps"):
        metric(scores=[0.1, 0.2], labels=[0, 1], maps=np.zeros((2, 2, 2)))


def test_missing_inputs_are_named():
    with pytest.raises(xgen.XgenError, match="needs masks, which was not given"):
        xgen.metric("pixel-auroc")(maps=np.zeros((1, 2, 2)))


def test_rows_must_agree():
    with pytest.raises(xgen.XgenError, match="got 3 scores for 2 labels; they must match"):
        xgen.metric("image-auroc")(scores=[0.1, 0.2, 0.3], labels=[0, 1])
