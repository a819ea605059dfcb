"""Pixel AUPRO: the area under the per-region-overlap curve up to a false positive rate (MVTec AD protocol)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

import xgen

from . import _counts, _inputs, _tables

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def region_weights(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """For every anomalous pixel (row-major order over (N, H, W)), 1 / the size of its 8-connected region in its
    own mask; and the number of regions in all masks."""
    weights, regions = [], 0
    for mask in masks:
        if not mask.any():
            continue
        labelled, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        sizes = np.bincount(labelled.ravel())
        weights.append(1.0 / sizes[labelled[mask]])
        regions += count
    return (np.concatenate(weights) if weights else np.zeros(0)), regions


def pro_segments(values: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed anomalous-pixel weights and normal-pixel counts per segment, ascending by value (exact, as in
    `_counts.segments`)."""
    return _counts.segments(values, positive, weights)


def area_up_to(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> float:
    """Trapezoid area under (fpr, pro) from 0 to max_fpr (fpr ascending), interpolating the point at max_fpr."""
    end = int(np.searchsorted(fpr, max_fpr, side="right"))
    x, y = fpr[:end], pro[:end]
    if end < fpr.size:
        slope = (pro[end] - pro[end - 1]) / (fpr[end] - fpr[end - 1])
        x = np.append(x, max_fpr)
        y = np.append(y, pro[end - 1] + slope * (max_fpr - fpr[end - 1]))
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


class PixelAUPRO(xgen.Metric):
    """Normalised area under the PRO curve up to FPR `max_fpr` (Bergmann et al., MVTec AD, 2021).

    Regions are the 8-connected components of each mask. At threshold t (anomalous where map >= t), PRO(t) is the
    mean over all regions of the fraction of the region's pixels flagged, and FPR(t) the fraction of all normal
    pixels flagged (pooled). The curve runs through every distinct threshold, from (0, 0); its area from FPR 0 to
    `max_fpr` (trapezoid rule, the point at `max_fpr` interpolated) is divided by `max_fpr`, so 1 is perfect.
    """

    name = "pixel-aupro"
    description = "Area under the per-region-overlap curve up to FPR 0.3, normalised (MVTec AD protocol); exact."
    requires = frozenset({"maps", "masks"})

    max_fpr: float = 0.3

    def validate(self) -> None:
        if not 0 < self.max_fpr <= 1:
            raise xgen.XgenError(f"pixel-aupro option max_fpr must be in (0, 1], got {self.max_fpr}.")

    def _weights(self, maps, masks) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Flat values and positives, each anomalous pixel's region weight, and the number of regions."""
        values = _inputs.values(self.name, maps, "maps")
        positive = _inputs.binary(self.name, masks, "masks")
        shape = tuple(maps.shape)
        images = positive.reshape((-1, *shape[-2:]) if len(shape) >= 2 else (1, 1, -1))
        weights, regions = region_weights(images)
        return values, positive, weights, regions

    def compute(self, *, maps=None, masks=None, scores=None, labels=None) -> float:
        values, positive, weights, _ = self._weights(maps, masks)
        n_pos = int(weights.size)
        _inputs.both_classes(self.name, n_pos, positive.size - n_pos, "pixels")
        return self._area(*pro_segments(values, positive, weights), positive.size - n_pos)

    def partial(self, *, maps=None, masks=None, scores=None, labels=None) -> dict[str, np.ndarray]:
        """The shard's table of region weights and normal counts per value, and its anomalous pixel count; regions
        never cross images, so shards of whole images keep every weight."""
        values, positive, weights, regions = self._weights(maps, masks)
        table = _tables.count_table(values, positive, weights)
        return {**table, "anomalous": np.int64(weights.size), "regions": np.int64(regions)}

    def finish(self, partials) -> float:
        """The area streamed from the top (FPR 0), one chunk of segments at a time, each chunk's curve joined to the
        last point of the one before; PRO's denominator (the summed weights) is the last running sum, as in
        `compute`, so the area is taken on the unnormalised overlap and divided once at the end."""
        (n_pos,) = _tables.counts(partials, "anomalous")
        n_neg = _tables.totals(partials, "neg")
        _inputs.both_classes(self.name, n_pos, n_neg, "pixels")
        area, last, weight = 0.0, (0.0, 0.0), 0.0
        for _, _, overlap, flagged in _tables.from_top(partials):
            weight = float(overlap[-1])
            if last[0] > self.max_fpr:
                continue
            fpr = np.concatenate([[last[0]], flagged / n_neg])
            covered = np.concatenate([[last[1]], overlap])
            area += area_up_to(fpr, covered, self.max_fpr)
            last = (fpr[-1], covered[-1])
        return min(1.0, area / weight / self.max_fpr)

    def _area(self, pos: np.ndarray, neg: np.ndarray, n_neg: int) -> float:
        """The normalised area from segments (summed region weights, normal counts), ascending."""
        fpr = np.concatenate([[0.0], np.cumsum(neg[::-1]) / n_neg])
        overlap = np.cumsum(pos[::-1])
        pro = np.concatenate([[0.0], overlap / overlap[-1]])
        return min(1.0, area_up_to(fpr, pro, self.max_fpr) / self.max_fpr)
