"""Metrics of thresholded maps or scores: IoU, best IoU, (maximum) balanced accuracy, F1 and accuracy."""

from __future__ import annotations

import numpy as np
import torch

import xgen

from . import _counts, _inputs, _tables


def _from_top(counts: np.ndarray) -> np.ndarray:
    """Counts at or above each segment (threshold at the segment's lowest value)."""
    return np.cumsum(counts[::-1])[::-1]


class IoU(xgen.Metric):
    """Pooled intersection over union of the thresholded maps with the masks: |pred ∧ mask| / |pred ∨ mask| over
    all test pixels, pred = map >= `threshold`. The threshold applies to maps as given (`xgen evaluate` normalises
    maps to [0, 1] first). An empty union (no anomalous pixel, none predicted) gives 0, as scikit-learn does."""

    name = "iou"
    description = "Pooled IoU of maps >= threshold with the masks, over all test pixels."
    requires = frozenset({"maps", "masks"})

    threshold: float = 0.5

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        values = _inputs.values(self.name, maps, "maps")
        positive = _inputs.binary(self.name, masks, "masks")
        predicted = values >= self.threshold
        union = np.count_nonzero(predicted | positive)
        return np.count_nonzero(predicted & positive) / union if union else 0.0

    def partial(self, *, maps=None, masks=None, scores=None, labels=None) -> dict[str, np.ndarray]:
        """The shard's |pred ∧ mask| and |pred ∨ mask|, which add up."""
        values = _inputs.values(self.name, maps, "maps")
        positive = _inputs.binary(self.name, masks, "masks")
        predicted = values >= self.threshold
        both = np.count_nonzero(predicted & positive)
        return {"intersection": np.int64(both), "union": np.int64(np.count_nonzero(predicted | positive))}

    def finish(self, partials) -> float:
        both, union = _tables.counts(partials, "intersection", "union")
        return both / union if union else 0.0


class BestIoU(xgen.Metric):
    """The best pooled IoU over every threshold of the ROC curve (every distinct map value), as the reproduction
    of "Towards Visually Explaining Variational Autoencoders" picks its threshold (section 3.5). Exact: at
    threshold t, IoU = TP(t) / (FP(t) + P), from the same per-value counts as pixel-auroc (from shards: their
    count tables merged, `_tables`)."""

    name = "best-iou"
    description = "Best pooled IoU of thresholded maps with the masks over all ROC thresholds; exact."
    requires = frozenset({"maps", "masks"})

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        values = _inputs.values(self.name, maps, "maps")
        positive = _inputs.binary(self.name, masks, "masks")
        return self._best(*_counts.segments(values, positive))

    def partial(self, *, maps=None, masks=None, scores=None, labels=None) -> dict[str, np.ndarray]:
        values = _inputs.values(self.name, maps, "maps")
        return _tables.count_table(values, _inputs.binary(self.name, masks, "masks"))

    def finish(self, partials) -> float:
        total = _tables.totals(partials, "pos")
        self._check(total)
        return max(float(np.max(tp / (fp + total))) for _, _, tp, fp in _tables.from_top(partials))

    def _best(self, pos: np.ndarray, neg: np.ndarray) -> float:
        total = int(pos.sum())
        self._check(total)
        return float(np.max(_from_top(pos) / (_from_top(neg) + total)))

    def _check(self, total: int) -> None:
        if total == 0:
            raise xgen.XgenError(f"metric '{self.name}' needs anomalous pixels, but every mask is empty.")


def _rates(name: str, scores: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int, int]:
    values = _inputs.values(name, scores, "scores")
    positive = _inputs.binary(name, labels, "labels")
    n_pos = int(np.count_nonzero(positive))
    _inputs.both_classes(name, n_pos, positive.size - n_pos, "images")
    return values, positive, n_pos, positive.size - n_pos


class BalancedAccuracy(xgen.Metric):
    """(TPR + TNR) / 2 of scores >= `threshold` against the labels: CAVGA's "mean of accuracy of correctly
    classified anomalous and normal images"; equal to `sklearn.metrics.balanced_accuracy_score`."""

    name = "balanced-accuracy"
    description = "Mean of the accuracies on anomalous and on normal images at a score threshold (CAVGA)."
    requires = frozenset({"scores", "labels"})

    threshold: float = 0.5

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        values, positive, n_pos, n_neg = _rates(self.name, scores, labels)
        predicted = values >= self.threshold
        tpr = np.count_nonzero(predicted & positive) / n_pos
        tnr = np.count_nonzero(~predicted & ~positive) / n_neg
        return (tpr + tnr) / 2

    def partial(self, *, maps=None, masks=None, scores=None, labels=None) -> dict[str, np.ndarray]:
        """The shard's true positives, true negatives, positives and negatives, which add up."""
        predicted = _inputs.values(self.name, scores, "scores") >= self.threshold
        positive = _inputs.binary(self.name, labels, "labels")
        return {
            "tp": np.int64(np.count_nonzero(predicted & positive)),
            "tn": np.int64(np.count_nonzero(~predicted & ~positive)),
            "positives": np.int64(np.count_nonzero(positive)),
            "negatives": np.int64(np.count_nonzero(~positive)),
        }

    def finish(self, partials) -> float:
        tp, tn, n_pos, n_neg = _tables.counts(partials, "tp", "tn", "positives", "negatives")
        _inputs.both_classes(self.name, n_pos, n_neg, "images")
        return (tp / n_pos + tn / n_neg) / 2


class MaxBalancedAccuracy(xgen.Metric):
    """The largest (TPR + TNR) / 2 over every score threshold, the threshold above all scores (0.5) included:
    the image-level protocol of P-WAE. Exact, from per-value counts."""

    name = "max-balanced-accuracy"
    description = "Balanced accuracy at the best score threshold (P-WAE protocol); exact over all thresholds."
    requires = frozenset({"scores", "labels"})

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        values, positive, _, _ = _rates(self.name, scores, labels)
        return self._best(*_counts.segments(values, positive))

    def partial(self, *, maps=None, masks=None, scores=None, labels=None) -> dict[str, np.ndarray]:
        values = _inputs.values(self.name, scores, "scores")
        return _tables.count_table(values, _inputs.binary(self.name, labels, "labels"))

    def finish(self, partials) -> float:
        n_pos, n_neg = _tables.totals(partials, "pos"), _tables.totals(partials, "neg")
        _inputs.both_classes(self.name, n_pos, n_neg, "images")
        best = max(float(((tp / n_pos + 1 - fp / n_neg) / 2).max()) for _, _, tp, fp in _tables.from_top(partials))
        return float(max(0.5, best))

    def _best(self, pos: np.ndarray, neg: np.ndarray) -> float:
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        _inputs.both_classes(self.name, n_pos, n_neg, "images")
        balanced = (_from_top(pos) / n_pos + 1 - _from_top(neg) / n_neg) / 2
        return float(max(0.5, balanced.max()))


class _Bootstrapped(xgen.Metric):
    """A statistic of scores >= `threshold` against labels, with a percentile bootstrap interval over images."""

    requires = frozenset({"scores", "labels"})

    threshold: float = 0.5
    bootstrap: int = 1000
    seed: int = 0

    def validate(self) -> None:
        if self.bootstrap < 1:
            raise xgen.XgenError(f"metric '{self.name}' option bootstrap must be at least 1, got {self.bootstrap}.")

    @staticmethod
    def statistic(predicted: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """The statistic of each row of (B, N) boolean predictions against (B, N) labels."""
        raise NotImplementedError

    def _inputs(self, scores: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        values = _inputs.values(self.name, scores, "scores")
        positive = _inputs.binary(self.name, labels, "labels")
        if values.size != positive.size:
            raise xgen.XgenError(f"metric '{self.name}' got {values.size} scores for {positive.size} labels.")
        if values.size == 0:
            raise xgen.XgenError(f"metric '{self.name}' got no images.")
        return values >= self.threshold, positive

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        predicted, positive = self._inputs(scores, labels)
        return float(self.statistic(predicted[None], positive[None])[0])

    def interval(self, *, scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        """The 95% percentile bootstrap interval: `bootstrap` resamples of the images with replacement (seeded by
        `seed`), the 2.5th and 97.5th percentiles of the statistic over them."""
        predicted, positive = self._inputs(scores, labels)
        rng = np.random.default_rng(self.seed)
        rows = max(1, (1 << 22) // predicted.size)
        values = []
        for start in range(0, self.bootstrap, rows):
            pick = rng.integers(0, predicted.size, size=(min(rows, self.bootstrap - start), predicted.size))
            values.append(self.statistic(predicted[pick], positive[pick]))
        low, high = np.percentile(np.concatenate(values), [2.5, 97.5])
        return float(low), float(high)


class F1(_Bootstrapped):
    """F1 = 2 TP / (2 TP + FP + FN) of scores >= `threshold` against labels (0 when there is no positive, predicted
    or true, as scikit-learn), as in the tables of Paul et al., "Unsupervised Discovery, Control, and
    Disentanglement of Semantic Attributes"; `interval(scores=, labels=)` gives its 95% bootstrap confidence
    interval."""

    name = "f1"
    description = "F1 of scores >= threshold against labels; interval() gives a 95% bootstrap CI."

    @staticmethod
    def statistic(predicted: np.ndarray, positive: np.ndarray) -> np.ndarray:
        tp = np.count_nonzero(predicted & positive, axis=1)
        wrong = np.count_nonzero(predicted != positive, axis=1)
        denominator = 2 * tp + wrong
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


class Accuracy(_Bootstrapped):
    """Accuracy (fraction of images whose thresholded score, scores >= `threshold`, matches the label), as in the
    tables of Paul et al., "Unsupervised Discovery, Control, and Disentanglement of Semantic Attributes";
    `interval(scores=, labels=)` gives its 95% bootstrap confidence interval."""

    name = "accuracy"
    description = "Accuracy of scores >= threshold against labels; interval() gives a 95% bootstrap CI."

    @staticmethod
    def statistic(predicted: np.ndarray, positive: np.ndarray) -> np.ndarray:
        return np.count_nonzero(predicted == positive, axis=1) / predicted.shape[1]
