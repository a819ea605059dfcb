"""Time and peak extra memory of xgen's pixel-auroc and pixel-aupro beside their peers, run in the same process.

    python benchmarks/metrics.py                 # 20 and 113 million pixels (about 10 minutes, ~8 GB; see README)
    python benchmarks/metrics.py --skip-slow     # no peers above 20 million pixels (about 2 minutes, ~3 GB)
    python benchmarks/metrics.py --images 24 --peer-budget 60    # small: every peer runs to the end (~1 minute)

pixel-auroc: xgen against scikit-learn's `roc_auc_score` and beside one `np.sort` of the same maps, on maps
quantised to 1/1024 steps (many ties: the histogram path) and on the same maps unquantised (near-continuous: the
ranged sorting path). best-iou: xgen against the best IoU over scikit-learn's full `roc_curve`. pixel-aupro
(quantised maps): xgen against an exact reference written here independently of xgen, and against four peers
reimplemented here from their published code: the official MVTec AD evaluation code (exact curve), the MVTec 3D-AD
evaluation code's 100-threshold approximation, the threshold grid of RD4AD's `compute_pro` at 100 thresholds, and
anomalib v0.x's per-region ROC algorithm. The two peers with long loops stop after `--peer-budget` seconds when
finishing would take much longer, and their full time is extrapolated (printed as such).

The data: seeded smooth maps (bilinear upsampling of 16x16 noise to 256x256), raised by 0.25 inside masks of
random blobs on every other image. Peak extra memory is the larger of tracemalloc's peak over the call (numpy's
allocations; the inputs exist before) and the rise of the process's peak resident memory during the call (which
also sees torch's allocations; the peers with Python loops get only the latter, as tracemalloc would slow them).
Progress goes to stderr, the report to stdout. Always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage import measure as skmeasure

import xgen
import xgen_plugins.metrics
from xgen.plugins import new_registry, use_registry

MAX_FPR = 0.3
TOLERANCE = 1e-9
#: pixel-auroc and best-iou must equal scikit-learn's value to this.
EXACT_TOLERANCE = 1e-12
TARGET_SPEEDUP = 20.0
#: Above this many pixels, --skip-slow skips every peer (scikit-learn included) and the exact references.
SLOW_PIXELS = 20_000_000
#: The near-continuous AUPRO check against the exact reference runs up to this many pixels (it sorts everything).
EXACT_CONTINUOUS_PIXELS = 20_000_000
#: The brute-force check (every distinct threshold, one pass over the pixels each) runs on this many first maps.
BRUTE_FORCE_MAPS = 8
#: A budgeted peer loop past its budget still runs to the end when that is projected within this many budgets.
FINISH_FACTOR = 3
START = time.perf_counter()
#: The largest resident set (kB) seen at the end of any measured call: the run's peak memory, printed at the end.
PEAK_KB = 0


def say(text: str = "") -> None:
    print(text, flush=True)


def elapsed() -> str:
    return f"[{time.perf_counter() - START:6.0f} s elapsed]"


# ----------------------------------------------------------------------------------------------------------- data


def make_data(images: int, seed: int, size: int = 256, quantise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, size, size) float32 maps and bool masks, built 64 images at a time. With `quantise` the maps are
    rounded to 1/1024 steps (many ties); without, they are the same maps unrounded (nearly every value distinct)."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.empty(images, size, size)
    masks = torch.empty(images, size, size, dtype=torch.bool)
    for start in range(0, images, 64):
        n = min(64, images - start)
        noise = torch.rand(n, 1, 16, 16, generator=generator)
        smooth = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        blobs = F.interpolate(torch.rand(n, 1, 8, 8, generator=generator), size=(size, size), mode="bilinear")[:, 0]
        anomalous = (torch.arange(start, start + n) % 2 == 1)[:, None, None]
        masks[start : start + n] = (blobs > 0.8) & anomalous
        smooth.add_(0.25 * masks[start : start + n])
        if quantise:
            smooth.mul_(1024).round_().div_(1024)
        maps[start : start + n] = smooth
    return maps, masks


# ---------------------------------------------------------------------------------------------------- measurement


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> int | None:
    """Reset the kernel's peak resident set (VmHWM) to the current one; the current one in kB, None if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


@dataclass
class Partial:
    """What a peer stopped on a time budget returns: its value if it finished, and how much of the work it did."""

    value: float | None
    done: int
    total: int
    unit: str
    loop_s: float

    def extrapolate(self, seconds: float) -> float:
        """Seconds of the whole call: the measured ones plus the unfinished share of the loop at the same pace."""
        if self.done >= self.total or self.done == 0:
            return seconds
        return seconds + self.loop_s * (self.total - self.done) / self.done


@dataclass
class Measured:
    value: float | None
    seconds: float
    mb: float
    partial: Partial | None = None

    @property
    def full_seconds(self) -> float:
        return self.partial.extrapolate(self.seconds) if self.partial else self.seconds

    @property
    def extrapolated(self) -> bool:
        return self.partial is not None and self.partial.done < self.partial.total


def measure(name: str, fn: Callable[[], Any], trace: bool = True) -> Measured:
    """Value, seconds and peak extra MB of one call (see the module docstring for the memory). Without `trace`,
    memory is the rise of the peak resident set alone: tracemalloc would slow a peer's Python loops up to 2x."""
    print(f"  {elapsed()} running {name}", file=sys.stderr, flush=True)
    gc.collect()
    rss_before = _reset_peak_rss()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    traced = 0
    if trace:
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    peak_rss = _status_kb("VmHWM")
    global PEAK_KB
    PEAK_KB = max(PEAK_KB, peak_rss or 0)
    rss_extra = 1024 * (peak_rss - rss_before) if rss_before is not None and peak_rss is not None else 0
    mb = max(traced, rss_extra) / 2**20
    if isinstance(result, Partial):
        return Measured(result.value, seconds, mb, result)
    return Measured(float(result), seconds, mb)


# ------------------------------------------------------------------------------------- exact references (AUPRO)


def _area_to(fpr: np.ndarray, pro: np.ndarray, limit: float) -> float:
    """Trapezoid area under (fpr, pro) from fpr[0] to `limit`; fpr ascending and starting at 0; the point at `limit`
    interpolated on the segment that crosses it."""
    last = int(np.flatnonzero(fpr <= limit)[-1])
    area = float(np.sum((fpr[1 : last + 1] - fpr[:last]) * (pro[1 : last + 1] + pro[:last]))) / 2
    if fpr[last] < limit and last + 1 < fpr.size:
        at_limit = pro[last] + (pro[last + 1] - pro[last]) * (limit - fpr[last]) / (fpr[last + 1] - fpr[last])
        area += (limit - fpr[last]) * (pro[last] + at_limit) / 2
    return area


def exact_reference_aupro(maps: np.ndarray, masks: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """Exact normalised AUPRO up to `max_fpr`, written independently of xgen's metric to check it.

    The definition (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021, and the exact official MVTec
    AD evaluation code): regions are the 8-connected components of each mask (here labelled by scikit-image, not
    scipy as in xgen); at threshold t (anomalous where map >= t) PRO(t) is the mean over all regions of the share of
    the region at or above t, and FPR(t) the share of all normal pixels at or above t. The curve runs through every
    distinct value of the maps from (0, 0); its trapezoid area up to `max_fpr` (the point at `max_fpr` interpolated)
    over `max_fpr`. Method: sort the normal values and the anomalous values (each weighted 1 / its region's size),
    then count both at or above every distinct value with searchsorted. Float64 throughout.
    """
    values, weights, regions = [], [], 0
    for image, mask in zip(maps, masks, strict=True):
        if not mask.any():
            continue
        labels = skmeasure.label(mask, connectivity=2)
        sizes = np.bincount(labels.ravel())
        values.append(image[mask])
        weights.append(1.0 / sizes[labels[mask]])
        regions += int(labels.max())
    normal = np.sort(maps[~masks])
    anomalous = np.concatenate(values)
    order = np.argsort(anomalous, kind="stable")
    anomalous = anomalous[order]
    weight_below = np.concatenate([[0.0], np.cumsum(np.concatenate(weights)[order])])
    distinct = np.union1d(normal[np.r_[True, normal[1:] != normal[:-1]]], np.unique(anomalous))[::-1]
    normal_at_or_above = normal.size - np.searchsorted(normal, distinct, side="left")
    weight_at_or_above = weight_below[-1] - weight_below[np.searchsorted(anomalous, distinct, side="left")]
    fpr = np.concatenate([[0.0], normal_at_or_above / normal.size])
    pro = np.concatenate([[0.0], weight_at_or_above / regions])
    return min(1.0, _area_to(fpr, pro, max_fpr) / max_fpr)


def brute_force_aupro(maps: np.ndarray, masks: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """Exact normalised AUPRO by brute force, for small inputs: for every distinct value t of the maps, flag the
    pixels >= t and count, region by region, what is flagged (regions: scipy's 8-connected labels, numbered across
    images). One pass over all pixels per distinct value, so O(distinct values x pixels)."""
    labels = np.zeros(masks.shape, dtype=np.int64)
    regions = 0
    for i, mask in enumerate(masks):
        found, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        labels[i] = np.where(found > 0, found + regions, 0)
        regions += count
    sizes = np.bincount(labels.ravel(), minlength=regions + 1)[1:]
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        flagged = maps >= t
        fprs.append(np.count_nonzero(flagged & normal) / np.count_nonzero(normal))
        per_region = np.bincount(labels[flagged], minlength=regions + 1)[1:]
        pros.append(float(np.mean(per_region / sizes)))
    return min(1.0, _area_to(np.array(fprs), np.array(pros), max_fpr) / max_fpr)


# ----------------------------------------------------------------------------------------------- peers (AUPRO)


def out_of_budget(start: float, done: int, total: int, budget_s: float | None) -> bool:
    """Whether a budgeted peer loop begun at `start` stops now: with work left, past `budget_s` seconds, and
    projected to need more than FINISH_FACTOR times the budget in all (so small inputs still run to the end)."""
    if budget_s is None or done >= total:
        return False
    spent = time.perf_counter() - start
    return spent >= budget_s and spent * total / done > FINISH_FACTOR * budget_s


class _SortedComponent:
    """The sorted scores of one ground-truth region and a pointer that only moves up as thresholds rise."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.sort(scores)
        self.index = 0

    def overlap(self, threshold: float) -> float:
        """Share of the region's scores above `threshold` (thresholds must come in increasing order)."""
        scores, index = self.scores, self.index
        while index < scores.size and scores[index] <= threshold:
            index += 1
        self.index = index
        return 1.0 - index / scores.size


def _mvtec_trapezoid(x: Any, y: Any, x_max: float) -> float:
    """Trapezoid area under (x, y) up to x_max, as the MVTec evaluation code's `trapezoid`: when x_max is not a
    sample, the piece from the last sample below it is added with y interpolated at x_max."""
    xs, ys = np.asarray(x), np.asarray(y)
    correction = 0.0
    if x_max not in xs:
        ins = int(np.searchsorted(xs, x_max, side="right"))  # bisect.bisect there
        y_at = ys[ins - 1] + (ys[ins] - ys[ins - 1]) * (x_max - xs[ins - 1]) / (xs[ins] - xs[ins - 1])
        correction = 0.5 * (y_at + ys[ins - 1]) * (x_max - xs[ins - 1])
    keep = xs <= x_max
    xs, ys = xs[keep], ys[keep]
    return float(np.sum(0.5 * (ys[1:] + ys[:-1]) * (xs[1:] - xs[:-1]))) + correction


def mvtec_ad_exact_aupro(maps: np.ndarray, masks: np.ndarray, integration_limit: float = MAX_FPR) -> float:
    """The official MVTec AD evaluation code's exact PRO curve, reimplemented (not copied): `compute_pro(anomaly_maps,
    ground_truth_maps)` and `trapezoid` of its `pro_curve_util.py` / `generic_util.py` (the MVTec AD evaluation
    download; found copied into many repositories as `compute_pro` with `fp_changes` and `pro_changes`).

    Algorithm: 8-connected regions per mask (scipy, 3x3 structure); per pixel, the change it makes to the false
    positive count (uint32: 1 for normal pixels) and to the PRO sum (float64: 1 / its region's size); a copy of all
    scores argsorted (descending, indices as uint32) and the three arrays reordered in place with np.take; cumulative
    sums, the false positives turned into float32 FPRs; one point kept per distinct score; clipped to 1, framed by
    (0, 0) and (1, 1); the area up to 0.3 by its trapezoid, divided by 0.3. Exact but for the float32 FPRs, which
    move the value by up to float32 resolution (~1e-7; 4e-10 measured at 2M pixels).
    """
    structure = np.ones((3, 3), dtype=int)
    fp_changes = np.zeros(maps.shape, dtype=np.uint32)
    pro_changes = np.zeros(maps.shape, dtype=np.float64)
    ok_pixels = regions = 0
    for i, gt in enumerate(masks):
        labeled, count = ndimage.label(gt, structure)
        regions += count
        ok = labeled == 0
        ok_pixels += int(np.sum(ok))
        fp_changes[i][ok] = 1
        for k in range(count):
            region = labeled == k + 1
            pro_changes[i][region] = 1.0 / np.sum(region)
    scores = np.array(maps).ravel()
    fps, pros = fp_changes.ravel(), pro_changes.ravel()
    order = np.argsort(scores).astype(np.uint32)[::-1]
    np.take(scores, order, out=scores)
    np.take(fps, order, out=fps)
    np.take(pros, order, out=pros)
    del order
    np.cumsum(fps, out=fps)
    fpr = fps.astype(np.float32, copy=False)
    np.divide(fpr, ok_pixels, out=fpr)
    np.cumsum(pros, out=pros)
    np.divide(pros, regions, out=pros)
    keep = np.append(np.diff(scores) != 0, np.True_)
    fpr, pros = np.clip(fpr[keep], None, 1.0), np.clip(pros[keep], None, 1.0)
    fpr = np.concatenate(([0.0], fpr, [1.0]))
    pros = np.concatenate(([0.0], pros, [1.0]))
    return _mvtec_trapezoid(fpr, pros, integration_limit) / integration_limit


def mvtec_threshold_grid_aupro(
    maps: np.ndarray, masks: np.ndarray, integration_limit: float = MAX_FPR, num_thresholds: int = 100
) -> float:
    """The MVTec reference's 100-threshold approximation of AUPRO, reimplemented (not copied) from the MVTec 3D-AD
    evaluation code (`calculate_au_pro(gts, predictions, integration_limit=0.3, num_thresholds=100)` with its
    `compute_pro`, `collect_anomaly_scores`, `GroundTruthComponent` and `trapezoid`), as widely copied, e.g.
    eliahuhorwitz/3D-ADS `utils/au_pro_util.py` and M3DM's `utils/au_pro_util.py`.

    This is the variant the issue's "about 14 s" at MVTec AD size fits: one sort of every normal score (in float64,
    as the reference's buffer is) dominates its time, whereas RD4AD's threshold grid (`linear_grid_aupro`) relabels
    every mask at every threshold and takes minutes there. Algorithm: 8-connected regions per mask (scipy, 3x3
    structure); the normal scores of all maps gathered into a float64 buffer and sorted; 100 thresholds at evenly
    spaced positions of that sorted list, each given the FPR 1 - (position + 1) / normals (exact only without ties);
    PRO at each threshold from a pointer walked up each region's sorted scores (the reference's Python loop, kept:
    it is part of its cost); the curve from (0, pro) to (1, 1), its area up to 0.3 by the reference's trapezoid
    (with its interpolated last piece), divided by 0.3. Only about 30 of the 100 points fall below FPR 0.3, so the
    value differs from the exact one (by about 1e-3 here); it is printed, not corrected.
    """
    components: list[_SortedComponent] = []
    ok_scores = np.zeros(len(masks) * masks[0].size)
    structure = np.ones((3, 3), dtype=int)
    filled = 0
    for gt, prediction in zip(masks, maps, strict=True):
        labeled, count = ndimage.label(gt, structure)
        normal = prediction[labeled == 0]
        ok_scores[filled : filled + normal.size] = normal
        filled += normal.size
        components.extend(_SortedComponent(prediction[labeled == k + 1]) for k in range(count))
    ok_scores = np.resize(ok_scores, filled)
    ok_scores.sort()
    fprs, pros = [1.0], [1.0]
    for position in np.linspace(0, ok_scores.size - 1, num=num_thresholds, dtype=int):
        threshold = ok_scores[position]
        fprs.append(1.0 - (position + 1) / ok_scores.size)
        pros.append(sum(component.overlap(threshold) for component in components) / len(components))
    return _mvtec_trapezoid(fprs[::-1], pros[::-1], integration_limit) / integration_limit


def linear_grid_aupro(
    maps: np.ndarray, masks: np.ndarray, num_th: int = 100, expect_fpr: float = MAX_FPR, budget_s: float | None = None
) -> Partial:
    """The threshold-grid AUPRO of RD4AD's `compute_pro(masks, amaps, num_th=200)` (hq-deng/RD4AD `test.py`, copied
    into many repositories as "compute_pro"), reimplemented (not copied) and run at `num_th` = 100 thresholds.

    Algorithm: thresholds np.arange(min, max, (max - min) / num_th) over the maps' range; at each, the maps
    binarised (> threshold), every mask relabelled (skimage `measure.label`, 8-connected) and each region's flagged
    share taken from `regionprops` coordinates, PRO the mean over regions, FPR = flagged normal / normal pixels
    (from `1 - masks`, so masks are 0/1 integers: uint8 here); then the points with FPR < 0.3 kept, their FPR divided
    by the largest of them (so the x range is rescaled, not cut at 0.3, and the curve starts at the highest
    threshold's FPR rather than at 0), and the area taken by `sklearn.metrics.auc`. The reference's input asserts
    (`set(masks.flatten())`, seconds at this size) and pandas are left out. With `budget_s`, may stop after
    the threshold that passes it (see `out_of_budget`) and report how many of the thresholds it did.
    """
    from sklearn.metrics import auc

    binary = np.zeros_like(maps, dtype=bool)
    low, high = maps.min(), maps.max()
    thresholds = np.arange(low, high, (high - low) / num_th)
    rows: list[tuple[float, float]] = []
    start = time.perf_counter()
    for th in thresholds:
        binary[maps <= th] = 0
        binary[maps > th] = 1
        pros = []
        for flagged, mask in zip(binary, masks, strict=True):
            for region in skmeasure.regionprops(skmeasure.label(mask)):
                rows_, cols = region.coords[:, 0], region.coords[:, 1]
                pros.append(flagged[rows_, cols].sum() / region.area)
        inverse = 1 - masks
        fpr = np.logical_and(inverse, binary).sum() / inverse.sum()
        rows.append((statistics.mean(pros), float(fpr)))
        if out_of_budget(start, len(rows), thresholds.size, budget_s):
            return Partial(None, len(rows), thresholds.size, "thresholds", time.perf_counter() - start)
    pro = np.array([r[0] for r in rows])
    fpr = np.array([r[1] for r in rows])
    keep = fpr < expect_fpr
    x = fpr[keep] / fpr[keep].max()
    return Partial(float(auc(x, pro[keep])), len(rows), thresholds.size, "thresholds", time.perf_counter() - start)


def _torchmetrics_roc(preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FPR and TPR at every distinct score, as torchmetrics' binary ROC computes them (`_binary_clf_curve`: one
    descending argsort, the last index of every run of equal scores, float32 cumulative counts), from (0, 0)."""
    order = torch.argsort(preds, descending=True)
    preds = preds[order]
    target = target[order].long()
    ends = torch.nonzero(preds[1:] - preds[:-1]).squeeze(1)
    ends = torch.cat([ends, ends.new_tensor([target.numel() - 1])])
    tps = torch.cumsum(target * 1.0, dim=0)[ends]
    fps = 1 + ends - tps
    tps = torch.cat([tps.new_zeros(1), tps])
    fps = torch.cat([fps.new_zeros(1), fps])
    return fps / fps[-1], tps / tps[-1]


def _interp1d(old_x: torch.Tensor, old_y: torch.Tensor, new_x: torch.Tensor) -> torch.Tensor:
    """Linear interpolation as anomalib's `AUPRO.interp1d`: slopes with eps in the denominator, the left neighbour
    found by searchsorted and clamped to the first and last intervals (so it extrapolates beyond them)."""
    eps = torch.finfo(old_y.dtype).eps
    slope = (old_y[1:] - old_y[:-1]) / (eps + (old_x[1:] - old_x[:-1]))
    idx = torch.clamp(torch.searchsorted(old_x, new_x) - 1, 0, old_x.size(0) - 2)
    return old_y[idx] + slope[idx] * (new_x - old_x[idx])


def anomalib_per_region_aupro(
    maps: torch.Tensor, masks: torch.Tensor, fpr_limit: float = MAX_FPR, budget_s: float | None = None
) -> Partial:
    """anomalib's former AUPRO, reimplemented (not copied) from anomalib v0.x `AUPRO` (openvinotoolkit/anomalib
    `src/anomalib/utils/metrics/aupro.py`, `compute_pro` and `compute`, earlier `anomalib/utils/metrics/aupro.py`;
    regions from `connected_components_cpu` in `src/anomalib/utils/cv/connected_components.py`), in torch as there.

    Algorithm: 8-connected components of each mask, numbered across images (cv2's default connectivity there, scipy
    here: the same regions); the global ROC of all pixels only to fix the output size, the number of its points with
    FPR <= 0.3; then for EACH region a full ROC (one argsort) over the background pixels and that region's pixels,
    with that region as positive; its points up to FPR 0.3 (plus the next one, interpolated to 0.3 when no point
    lies close to it), resampled by point index (not by FPR) onto the common grid of output-size points, and both
    FPR and TPR averaged over regions; the area under that averaged curve (sorted by FPR, trapezoids) divided by its
    last FPR. One sort of ~all pixels per region makes it O(regions x pixels log pixels): tens of hours at MVTec AD
    size. Left out, so this is if anything faster than the original: torchmetrics' input validation, and the sigmoid
    its later `binary_roc` applies to scores outside [0, 1] (monotone, but its float32 results can split tied scores,
    which moves anomalib 0.7.0's own value by ~3e-5 on these maps). Checked against anomalib 0.7.0's `AUPRO` on maps
    within [0, 1]: equal to 6e-8. With `budget_s`, may stop after the region that passes it (see `out_of_budget`)
    and report how many regions it did.
    """
    target = masks.unsqueeze(1).float()
    components = torch.zeros_like(target)
    next_label = 1
    for i, image in enumerate(target):
        found, count = ndimage.label(image[0].numpy().astype(np.uint8), structure=np.ones((3, 3), dtype=bool))
        if count:
            components[i, 0] = torch.from_numpy(np.where(found > 0, found + next_label - 1, 0).astype(np.float32))
            next_label += count
    cca = components.int().flatten()
    del components, target  # perform_cca returns only the int labels
    target = masks.flatten()
    preds = maps.flatten()
    fpr_limit_t = torch.tensor(fpr_limit)

    global_fpr, _ = _torchmetrics_roc(preds, target)
    output_size = int(torch.where(global_fpr <= fpr_limit_t)[0].size(0))
    del global_fpr
    tpr = torch.zeros(output_size, dtype=torch.float)
    fpr = torch.zeros(output_size, dtype=torch.float)
    new_idx = torch.arange(0, output_size, dtype=torch.float)

    labels = cca.unique()[1:]
    background = cca == 0
    start = time.perf_counter()
    for done, label in enumerate(labels, start=1):
        interp = False
        new_idx[-1] = output_size - 1
        mask = cca == label
        keep = background | mask
        _fpr, _tpr = _torchmetrics_roc(preds[keep], mask[keep])
        # when no point but (0, 0) lies within the limit, the first point beyond it becomes the limit
        region_limit = _fpr[_fpr > fpr_limit_t].min() if _fpr[_fpr <= fpr_limit_t].max() == 0 else fpr_limit_t
        _fpr_idx = torch.where(_fpr <= region_limit)[0]
        if not torch.allclose(_fpr[_fpr_idx].max(), fpr_limit_t):
            tmp_idx = torch.searchsorted(_fpr, fpr_limit_t)
            _fpr_idx = torch.cat([_fpr_idx, tmp_idx.unsqueeze(0)])
            slope = 1 - ((_fpr[tmp_idx] - fpr_limit_t) / (_fpr[tmp_idx] - _fpr[tmp_idx - 1]))
            interp = True
        _fpr = _fpr[_fpr_idx]
        _tpr = _tpr[_fpr_idx]
        scaled = _fpr_idx.float()
        scaled /= scaled.max()
        scaled *= new_idx.max()
        if interp:
            new_idx[-1] = scaled[-2] + ((scaled[-1] - scaled[-2]) * slope)
        tpr += _interp1d(scaled, _tpr, new_idx)
        fpr += _interp1d(scaled, _fpr, new_idx)
        if out_of_budget(start, done, labels.numel(), budget_s):
            return Partial(None, done, labels.numel(), "regions", time.perf_counter() - start)
    loop_s = time.perf_counter() - start
    tpr /= labels.size(0)
    fpr /= labels.size(0)
    order = torch.sort(fpr, stable=True).indices
    area = torch.trapz(tpr[order], fpr[order])
    return Partial(float(area / fpr[-1]), labels.numel(), labels.numel(), "regions", loop_s)


# ------------------------------------------------------------------------------------------------------ reporting


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def header(pixels: int, images: int, maps: torch.Tensor, masks: torch.Tensor, kind: str) -> float:
    input_mb = (maps.numel() * maps.element_size() + masks.numel()) / 2**20
    say(
        f"\n{pixels / 1e6:.1f} million pixels ({images} maps of 256x256, float32), {kind}: "
        f"{np.unique(maps[:8].numpy()).size} distinct values in the first 8 maps, {masks.float().mean():.3%} "
        f"anomalous; inputs {input_mb:.0f} MB  {elapsed()}"
    )
    return input_mb


def table_head(title: str, what: str) -> None:
    say(f"  {title:<42}{'seconds':>10}{'peak extra':>14}{'/ xgen':>9}   {what:<16}  - xgen")


def row(name: str, m: Measured, base: Measured | None = None) -> None:
    """One line: name, seconds (extrapolated when so), peak extra MB, time / xgen's, value, value - xgen's."""
    seconds = f"{m.full_seconds:8.2f} s" if m.full_seconds < 1000 else f"{m.full_seconds:8.0f} s"
    ratio = f"{m.full_seconds / base.seconds:8.1f}x" if base is not None else " " * 9
    value = f"{m.value:.12f}" if m.value is not None else "(not finished)"
    diff = f"{m.value - base.value:+.1e}" if base is not None and m.value is not None else ""
    say(f"  {name:<42}{seconds:>10}{m.mb:11.0f} MB{ratio}   {value:<16}  {diff}")
    if m.extrapolated:
        p = m.partial
        say(
            f"  {'':<42}^ extrapolated: {m.seconds:.1f} s measured for {p.done} of {p.total} {p.unit}, the other "
            f"{p.total - p.done} at the same pace ({p.loop_s / p.done:.3f} s each)"
        )


def guarded(name: str, fn: Callable[[], Any], trace: bool = True) -> Measured | None:
    """measure(), or None after printing the error: one failing peer must not end the report."""
    try:
        return measure(name, fn, trace)
    except Exception as exc:
        say(f"  {name}: error {type(exc).__name__}: {exc}")
        return None


def within(a: float, b: float, what: str, tolerance: float = TOLERANCE) -> str:
    d = abs(a - b)
    return f"|{what}| {d:.1e} (target <= {tolerance:.0e}): {verdict(d <= tolerance)}"


def auroc_section(maps: torch.Tensor, masks: torch.Tensor, input_mb: float, with_sklearn: bool) -> None:
    """pixel-auroc against scikit-learn's roc_auc_score, beside one np.sort of the same values (a floor for any
    method that sorts them), with its extra memory against the maps' size."""
    from sklearn.metrics import roc_auc_score

    auroc = xgen.metric("pixel-auroc")
    auroc(maps=maps[:4], masks=masks[:4])  # warm-up: first calls pay lazy imports and allocator growth
    roc_auc_score(masks[:4].numpy().ravel(), maps[:4].numpy().ravel())
    table_head("pixel-auroc", "AUROC")
    ours = measure("xgen pixel-auroc", lambda: auroc(maps=maps, masks=masks))
    row("xgen pixel-auroc", ours)
    values = maps.numpy().ravel()
    floor = measure("np.sort", lambda: float(np.sort(values)[0]))
    say(
        f"  {'one np.sort of the maps (float32)':<42}{floor.seconds:8.2f} s{floor.mb:11.0f} MB"
        f"{floor.seconds / ours.seconds:8.2f}x"
    )
    if with_sklearn:
        theirs = measure("sklearn", lambda: roc_auc_score(masks.numpy().ravel(), values))
        row("sklearn roc_auc_score", theirs, ours)
        speedup = theirs.seconds / ours.seconds
        say(
            f"  speed-up {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x): {verdict(speedup >= TARGET_SPEEDUP)};  "
            f"xgen takes {ours.seconds / floor.seconds:.2f}x one np.sort;  "
            + within(ours.value, theirs.value, "difference", EXACT_TOLERANCE)
        )
    else:
        say("  sklearn roc_auc_score skipped (--skip-slow)")
    maps_mb = maps.numel() * maps.element_size() / 2**20
    say(
        f"  xgen extra memory {ours.mb:.0f} MB vs maps {maps_mb:.0f} MB (target <= maps): {verdict(ours.mb <= maps_mb)}"
    )


def sklearn_best_iou(masks: np.ndarray, maps: np.ndarray) -> float:
    """The best IoU over every threshold from scikit-learn's full ROC curve: at threshold t, IoU = TP / (FP + P)
    with TP = tpr P and FP = fpr N (roc_curve with drop_intermediate=False keeps every distinct threshold)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(masks, maps, drop_intermediate=False)
    positives = int(np.count_nonzero(masks))
    negatives = masks.size - positives
    return float(np.max(tpr * positives / (fpr * negatives + positives)))


def best_iou_section(maps: torch.Tensor, masks: torch.Tensor, with_reference: bool) -> None:
    best = xgen.metric("best-iou")
    best(maps=maps[:4], masks=masks[:4])
    table_head("best-iou", "best IoU")
    ours = measure("xgen best-iou", lambda: best(maps=maps, masks=masks))
    row("xgen best-iou", ours)
    if not with_reference:
        say("  scikit-learn roc_curve reference skipped (--skip-slow)")
        return
    theirs = guarded("sklearn roc_curve", lambda: sklearn_best_iou(masks.numpy().ravel(), maps.numpy().ravel()))
    if theirs:
        row("from sklearn roc_curve (every threshold)", theirs, ours)
        say("  " + within(ours.value, theirs.value, "xgen - sklearn", EXACT_TOLERANCE))


def aupro_section(maps: torch.Tensor, masks: torch.Tensor, with_peers: bool, budget_s: float) -> None:
    aupro = xgen.metric("pixel-aupro")
    np_maps, np_masks = maps.numpy(), masks.numpy()
    masks_u8 = np_masks.view(np.uint8)  # RD4AD's compute_pro needs 0/1 integers (it computes 1 - masks)
    regions = sum(int(ndimage.label(m, structure=np.ones((3, 3), dtype=bool))[1]) for m in np_masks if m.any())
    aupro(maps=maps[:4], masks=masks[:4])  # warm-up, as for pixel-auroc
    table_head(f"pixel-aupro, FPR up to {MAX_FPR}, {regions} regions", "AUPRO")
    ours = measure("xgen pixel-aupro", lambda: aupro(maps=maps, masks=masks))
    row("xgen pixel-aupro (exact)", ours)
    if not with_peers:
        say("  exact references and peers skipped (--skip-slow)")
        return
    for warm in (
        lambda: exact_reference_aupro(np_maps[:4], np_masks[:4]),
        lambda: mvtec_ad_exact_aupro(np_maps[:4], np_masks[:4]),
        lambda: mvtec_threshold_grid_aupro(np_maps[:4], np_masks[:4]),
        lambda: linear_grid_aupro(np_maps[:4], masks_u8[:4], budget_s=1),
        lambda: anomalib_per_region_aupro(maps[:4], masks[:4], budget_s=1),
    ):
        with contextlib.suppress(Exception):  # reported when the measured call fails the same way
            warm()
    exact = guarded("exact reference", lambda: exact_reference_aupro(np_maps, np_masks))
    if exact:
        row("exact reference (sort, every threshold)", exact, ours)
    official = guarded("MVTec AD official", lambda: mvtec_ad_exact_aupro(np_maps, np_masks), trace=False)
    if official:
        row("MVTec AD official code (exact curve)", official, ours)
    mvtec = guarded("MVTec 3D-AD reference", lambda: mvtec_threshold_grid_aupro(np_maps, np_masks), trace=False)
    if mvtec:
        row("MVTec 3D-AD reference, 100 thresholds", mvtec, ours)
    grid = guarded("RD4AD grid", lambda: linear_grid_aupro(np_maps, masks_u8, budget_s=budget_s), trace=False)
    if grid:
        row("RD4AD compute_pro, 100-threshold grid", grid, ours)
    per_region = guarded("anomalib", lambda: anomalib_per_region_aupro(maps, masks, budget_s=budget_s), trace=False)
    if per_region:
        row("anomalib v0.x AUPRO (per-region ROC)", per_region, ours)
    n = min(BRUTE_FORCE_MAPS, len(np_maps))
    small = aupro(maps=maps[:n], masks=masks[:n]) if np_masks[:n].any() else None
    brute = guarded("brute force", lambda: brute_force_aupro(np_maps[:n], np_masks[:n])) if small else None
    if exact:
        say("  xgen exact: " + within(ours.value, exact.value, "xgen - exact reference"))
    if brute:
        say(
            f"  xgen exact: first {n} maps, xgen {small:.12f}, brute force over every threshold "
            f"{brute.value:.12f} ({brute.seconds:.1f} s): " + within(small, brute.value, "difference")
        )
    if mvtec:
        say(
            f"  xgen faster than the 100-threshold approximation: {ours.seconds:.2f} s vs {mvtec.seconds:.2f} s "
            f"({mvtec.seconds / ours.seconds:.1f}x): {verdict(ours.seconds < mvtec.seconds)}"
        )
    if per_region:
        how = "extrapolated " if per_region.extrapolated else ""
        say(
            f"  anomalib's per-region algorithm: {how}{per_region.full_seconds:.0f} s "
            f"({per_region.full_seconds / 3600:.2f} h), {per_region.full_seconds / ours.seconds:.0f}x xgen's time"
        )


def continuous_aupro(maps: torch.Tensor, masks: torch.Tensor, with_exact: bool) -> None:
    """xgen's pixel-aupro on the near-continuous maps (its sort path), against the exact reference when affordable."""
    aupro = xgen.metric("pixel-aupro")
    table_head("pixel-aupro (no peers on near-continuous maps)", "AUPRO")
    ours = measure("xgen pixel-aupro", lambda: aupro(maps=maps, masks=masks))
    row("xgen pixel-aupro (exact, sort path)", ours)
    if not with_exact:
        say(f"  exact reference skipped (above {EXACT_CONTINUOUS_PIXELS / 1e6:.0f}M pixels or --skip-slow)")
        return
    exact = guarded("exact reference", lambda: exact_reference_aupro(maps.numpy(), masks.numpy()))
    if exact:
        row("exact reference (sort, every threshold)", exact, ours)
        say("  xgen exact: " + within(ours.value, exact.value, "xgen - exact reference"))


# Seconds per million pixels on an idle 2-core machine (measured at 6.6M pixels, scaled to the recorded 113M run),
# for the up-front estimate; anomalib's regions per map as this data has them.
COST_PER_MPX = {
    "data": 0.04,
    "xgen": 0.05,
    "xgen_continuous": 0.06,
    "sklearn": 1.0,
    "sklearn_continuous": 1.1,
    "exact": 0.07,
    "exact_continuous": 0.2,
    "mvtec": 0.1,
    "mvtec_exact": 0.25,
    "anomalib_setup": 0.3,
    "anomalib_region": 0.17,
    "grid_threshold": 0.014,
}
REGIONS_PER_MAP = 4
BRUTE_FORCE_S = 1.5


def estimate(sizes: list[int], skip_slow: bool, budget_s: float) -> float:
    """Seconds the whole run should take on an idle 2-core machine (from COST_PER_MPX)."""
    c, total = COST_PER_MPX, 0.0
    for images in sizes:
        mpx = images * 65536 / 1e6
        total += mpx * (2 * c["data"] + c["xgen"] + c["xgen_continuous"])
        if skip_slow and mpx * 1e6 > SLOW_PIXELS:
            continue
        total += mpx * (c["sklearn"] + c["sklearn_continuous"] + c["exact"] + c["mvtec"] + c["anomalib_setup"])
        total += mpx * c["mvtec_exact"]
        total += BRUTE_FORCE_S + (mpx * c["exact_continuous"] if mpx * 1e6 <= EXACT_CONTINUOUS_PIXELS else 0)
        per_threshold, per_region = mpx * c["grid_threshold"], mpx * c["anomalib_region"]
        for loop, step in ((100 * per_threshold, per_threshold), (images * REGIONS_PER_MAP * per_region, per_region)):
            total += loop if loop <= FINISH_FACTOR * budget_s else budget_s + step
    return total


def estimate_gb(sizes: list[int], skip_slow: bool) -> float:
    """Peak resident GB of the run: the inputs (5 bytes a pixel) plus the largest consumer, anomalib's per-region
    loop (~62 bytes a pixel; scikit-learn's roc_auc_score on near-continuous maps needs ~58), or xgen's pixel-aupro
    sort path (~15 bytes a pixel) where --skip-slow skips the peers."""
    per_pixel = [5 + (15 if skip_slow and n * 65536 > SLOW_PIXELS else 62) for n in sizes]
    return 0.5 + max(n * 65536 * b for n, b in zip(sizes, per_pixel, strict=True)) / 2**30


def run(images: int, seed: int, with_peers: bool, budget_s: float) -> None:
    pixels = images * 256 * 256
    maps, masks = make_data(images, seed, quantise=True)
    input_mb = header(pixels, images, maps, masks, "quantised to 1/1024 steps (many ties)")
    auroc_section(maps, masks, input_mb, with_peers)
    best_iou_section(maps, masks, with_peers)
    aupro_section(maps, masks, with_peers, budget_s)
    del maps, masks
    gc.collect()
    maps, masks = make_data(images, seed, quantise=False)
    input_mb = header(pixels, images, maps, masks, "the same maps unquantised (near-continuous, few ties)")
    auroc_section(maps, masks, input_mb, with_peers)
    best_iou_section(maps, masks, with_peers)
    continuous_aupro(maps, masks, with_peers and pixels <= EXACT_CONTINUOUS_PIXELS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="306,1725", help="comma-separated map counts (306 = 20.1M pixels)")
    parser.add_argument(
        "--skip-slow", action="store_true", help="skip scikit-learn, the peers and the references above 20M pixels"
    )
    parser.add_argument(
        "--peer-budget",
        type=float,
        default=20.0,
        help="seconds after which anomalib's region loop and RD4AD's threshold loop stop and are extrapolated",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(n) for n in args.images.split(",")]
    registry = new_registry()
    if "pixel-auroc" not in registry.names("metric"):
        registry.add_plugin(xgen_plugins.metrics, "metrics")
    say(
        f"numpy {np.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}, "
        f"{args.threads} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    seconds = estimate(sizes, args.skip_slow, args.peer_budget)
    say(
        f"plan: {', '.join(f'{n * 65536 / 1e6:.1f}M pixels ({n} maps)' for n in sizes)}, each quantised then "
        f"near-continuous; peer budget {args.peer_budget:.0f} s; expected total about "
        f"{f'{seconds / 60:.0f} minutes' if seconds >= 120 else f'{seconds:.0f} s'} on an idle 2-core machine, "
        f"peak memory about {estimate_gb(sizes, args.skip_slow):.1f} GB; progress on stderr"
    )
    with use_registry(registry):
        for images in sizes:
            run(images, args.seed, not (args.skip_slow and images * 65536 > SLOW_PIXELS), args.peer_budget)
    say(f"\ndone {elapsed()}; peak resident memory {PEAK_KB / 2**20:.1f} GB")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a benchmark reports, it never fails the caller
        say(f"benchmark error: {type(exc).__name__}: {exc}")
