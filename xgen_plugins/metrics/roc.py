"""ROC metrics: pixel-level AUROC (all test pixels pooled, the MVTec AD protocol) and image-level AUROC."""

from __future__ import annotations

import numpy as np
import torch

import xgen

from . import _counts, _inputs, _tables


def auroc_from_segments(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney U / (P N) with ties counted one half, from per-segment counts in ascending order."""
    negatives_below = np.cumsum(neg) - neg
    twice_u = int(np.dot(pos, 2 * negatives_below + neg))
    return twice_u / (2 * int(pos.sum()) * int(neg.sum()))


def roc_from_segments(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR at every ROC vertex, from (0, 0) to (1, 1), thresholds descending."""
    tp = np.concatenate([[0], np.cumsum(pos[::-1])])
    fp = np.concatenate([[0], np.cumsum(neg[::-1])])
    return fp / fp[-1], tp / tp[-1]


def _auroc(name: str, values: np.ndarray, positive: np.ndarray, unit: str) -> float:
    n_pos = int(np.count_nonzero(positive))
    _inputs.both_classes(name, n_pos, positive.size - n_pos, unit)
    twice_u, n_pos, n_neg = _counts.twice_u(values, positive)
    return twice_u / (2 * n_pos * n_neg)


def _table(name: str, values: torch.Tensor, labels: torch.Tensor, what: tuple[str, str]) -> dict[str, np.ndarray]:
    """The count table of one shard (see `_tables`)."""
    return _tables.count_table(_inputs.values(name, values, what[0]), _inputs.binary(name, labels, what[1]))


def _auroc_of_tables(name: str, partials, unit: str) -> float:
    """AUROC of the merged tables, streamed from the top: the same integers as the single-process Mann-Whitney U
    (per segment, its positives times twice the negatives below it plus its tied negatives), so the same float."""
    n_pos, n_neg = _tables.totals(partials, "pos"), _tables.totals(partials, "neg")
    _inputs.both_classes(name, n_pos, n_neg, unit)
    twice_u = 0
    for pos, neg, _, above in _tables.from_top(partials):
        twice_u += int(np.dot(pos, 2 * (n_neg - above) + neg))
    return twice_u / (2 * n_pos * n_neg)


def roc_curve(maps: torch.Tensor, masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The pooled pixel ROC curve (FPR, TPR), exact and with collinear points of single-class runs merged."""
    values = _inputs.values("pixel-roc", maps, "maps")
    positive = _inputs.binary("pixel-roc", masks, "masks")
    pos, neg = _counts.segments(values, positive)
    _inputs.both_classes("pixel-roc", int(pos.sum()), int(neg.sum()), "pixels")
    return roc_from_segments(pos, neg)


class PixelAUROC(xgen.Metric):
    """Area under the ROC curve of every test pixel pooled (the MVTec AD protocol, Bergmann et al. 2019).

    Exact: equal to `sklearn.metrics.roc_auc_score(masks.ravel(), maps.ravel())` (ties count one half), computed
    as the Mann-Whitney U statistic: by histogram passes over order-preserving keys when the maps hold very few
    distinct values, else by sorting each class's values a share of the pixels at a time and counting by binary
    search (see `_counts`); 10^8 pixels take seconds (docs/benchmarks.md). From shards: per-value count tables
    merged in bounded memory (`_tables`), bit for bit the same value.
    """

    name = "pixel-auroc"
    description = "ROC AUC over all test pixels pooled (MVTec AD protocol); exact, ties as scikit-learn."
    requires = frozenset({"maps", "masks"})

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        values = _inputs.values(self.name, maps, "maps")
        return _auroc(self.name, values, _inputs.binary(self.name, masks, "masks"), "pixels")

    def partial(self, *, maps=None, masks=None, scores=None, labels=None) -> dict[str, np.ndarray]:
        return _table(self.name, maps, masks, ("maps", "masks"))

    def finish(self, partials) -> float:
        return _auroc_of_tables(self.name, partials, "pixels")


class ImageAUROC(xgen.Metric):
    """Area under the ROC curve of image-level anomaly scores against image labels (1 = anomalous).

    Equal to `sklearn.metrics.roc_auc_score(labels, scores)`; the protocol of the one-class MNIST experiments.
    """

    name = "image-auroc"
    description = "ROC AUC of image-level anomaly scores against image labels; exact, ties as scikit-learn."
    requires = frozenset({"scores", "labels"})

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        values = _inputs.values(self.name, scores, "scores")
        return _auroc(self.name, values, _inputs.binary(self.name, labels, "labels"), "images")

    def partial(self, *, maps=None, masks=None, scores=None, labels=None) -> dict[str, np.ndarray]:
        return _table(self.name, scores, labels, ("scores", "labels"))

    def finish(self, partials) -> float:
        return _auroc_of_tables(self.name, partials, "images")
