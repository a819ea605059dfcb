"""Exact per-threshold class counts, shared by every threshold-sweeping metric.

`segments(values, positive)` returns two arrays, in ascending order of value, that partition the values into
segments, each of which is either one distinct value (with its positive and negative counts) or a run of values of
a single class. Every ROC vertex lies on a segment boundary (inside a single-class run the ROC curve is a straight
vertical or horizontal line), so AUROC, best IoU and maximum balanced accuracy computed from segments are exact.
`twice_u(values, positive)` is twice the Mann-Whitney U statistic (an exact integer), without the segments.

Large float32 inputs take one of two paths, chosen by how many distinct values a strided sample holds (a choice
of speed and memory only; both are exact):

- Very few distinct values (at most `FEW_VALUES` in the sample): up to three bincount passes over order-preserving
  uint32 keys (`keys32`): the top 16 bits, then 8 more bits at a time only inside the buckets that hold both
  classes (`radix_segments`). Nothing per pixel is kept.
- Otherwise (and when too many buckets hold both classes): the sample's quantiles cut the values into ranges of
  about `RANGE_SHARE` of the pixels each; one pass of comparisons counts each range's classes, then one pass per
  range gathers its values by class, sorts them in place (numpy's SIMD sort) and counts each class against the
  other by binary search (`_over_ranges`). The extra memory is that share of the maps. On an AVX-512 machine this
  measured about twice as fast as the histogram passes even on maps quantised to 1/1024 steps, and counting instead
  of sorting on nearly continuous maps (a 16-bit histogram per bucket that holds both classes) slower still: random
  increments into a table larger than the caches cost more per value than the whole sort (docs/benchmarks.md).

Small inputs, and float64 values that float32 cannot hold exactly, are sorted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

_CHUNK = 1 << 18
_LIMIT = 1 << 22
#: Inputs with fewer values than this are sorted; tests lower it to exercise the histogram path.
SMALL = 1 << 21
#: The share of the values one range of the sorting path holds (its values are the path's extra memory).
RANGE_SHARE = 0.5
#: Values sampled to decide between the two paths, and where to cut the ranges.
_SAMPLE = 1 << 16
#: At most this many distinct values in the sample take the histogram path (see `few_values`).
FEW_VALUES = 64
_SIGN = np.uint32(0x80000000)
T = TypeVar("T")


def keys32(x: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values (-0.0 and +0.0 get the same key); a new array."""
    k = (x + np.float32(0.0)).view(np.uint32)
    m = (k.view(np.int32) >> 31).view(np.uint32)
    m |= _SIGN
    k ^= m
    return k


def _expand(seq: list[np.ndarray], mixed: np.ndarray, sub: list[np.ndarray], width: int) -> list[np.ndarray]:
    """Replace each mixed element of the parallel arrays `seq` by its `width` sub-elements from `sub` (in order)."""
    size = np.where(mixed, width, 1)
    starts = np.cumsum(size) - size
    total = int(size.sum())
    where = (starts[mixed][:, None] + np.arange(width)).ravel()
    out = []
    for whole, part in zip(seq, sub, strict=True):
        joined = np.empty(total, dtype=whole.dtype)
        joined[starts[~mixed]] = whole[~mixed]
        joined[where] = part
        out.append(joined)
    return out


def _distinct(pos_sorted: np.ndarray, pos_weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of sorted positives and their counts (or summed weights)."""
    starts = np.flatnonzero(np.concatenate([[True], pos_sorted[1:] != pos_sorted[:-1]]))
    if pos_weights is None:
        return pos_sorted[starts], np.diff(np.append(starts, pos_sorted.size)).astype(np.int64)
    return pos_sorted[starts], np.add.reduceat(pos_weights.astype(np.float64), starts)


def _sorted_key_segments(
    pos_sorted: np.ndarray, neg_sorted: np.ndarray, pos_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Segments from sorted positives and negatives: per distinct positive value, the run of negatives below it
    (down to the previous positive value) and then the value itself with its tied negatives."""
    if pos_sorted.size == 0:
        return np.zeros(1, dtype=np.int64), np.array([neg_sorted.size], dtype=np.int64)
    distinct, counts = _distinct(pos_sorted, pos_weights)
    left = np.searchsorted(neg_sorted, distinct, side="left")
    right = np.searchsorted(neg_sorted, distinct, side="right")
    pos = np.zeros(2 * distinct.size + 1, dtype=counts.dtype)
    pos[1::2] = counts
    neg = np.empty(2 * distinct.size + 1, dtype=np.int64)
    neg[0:-1:2] = left - np.concatenate([[0], right[:-1]])
    neg[1::2] = right - left
    neg[-1] = neg_sorted.size - right[-1]
    return pos, neg


def _sorted_twice_u(pos_sorted: np.ndarray, neg_sorted: np.ndarray, _weights: None = None, below: int = 0) -> int:
    """Twice the Mann-Whitney U of sorted positives against sorted negatives and `below` more negatives under all of
    them: per positive, the negatives below it plus those at or below it (ties count one half). One binary search
    per distinct positive value v, for v and the next float32 up, side by side (the second search finds the first
    one's path in cache)."""
    if pos_sorted.size == 0:
        return 0
    distinct, counts = _distinct(pos_sorted, None)
    queries = np.empty(2 * distinct.size, dtype=distinct.dtype)
    queries[0::2] = distinct
    np.nextafter(distinct, distinct.dtype.type(np.inf), out=queries[1::2])
    found = np.searchsorted(neg_sorted, queries)
    if np.isposinf(distinct[-1]):
        found[-1] = neg_sorted.size
    return int(np.dot(counts, found[0::2] + found[1::2])) + 2 * pos_sorted.size * below


def sorted_segments(
    pos_values: np.ndarray, neg_values: np.ndarray, pos_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Segments by sorting (see `_sorted_key_segments`); `pos_weights` makes positive counts weighted sums."""
    neg_sorted = np.sort(neg_values)
    if pos_weights is None:
        return _sorted_key_segments(np.sort(pos_values), neg_sorted)
    order = np.argsort(pos_values, kind="stable")
    return _sorted_key_segments(pos_values[order], neg_sorted, pos_weights[order])


def as_float32(values: np.ndarray) -> np.ndarray | None:
    """The values as float32 when that is exact, else None."""
    if values.dtype == np.float32:
        return values
    narrow = values.astype(np.float32)
    return narrow if np.array_equal(narrow, values) else None


def segments(
    values: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per segment, ascending by value (see the module docstring). 1-D inputs.
    `weights` (one per positive value, in order) makes the positive counts weighted sums."""
    narrow = as_float32(values)
    if narrow is None or narrow.size < SMALL:
        values = values + values.dtype.type(0.0)
        return sorted_segments(values[positive], values[~positive], weights)
    found = radix_segments(narrow, positive) if few_values(narrow) else None
    if found is None:
        parts = _over_ranges(narrow, positive, lambda p, n, w, _: _sorted_key_segments(p, n, w), weights)
        return np.concatenate([p for p, _ in parts]), np.concatenate([n for _, n in parts])
    pos, neg, low = found
    if weights is not None:
        where = np.searchsorted(low, keys32(narrow[positive]), side="right") - 1
        pos = np.bincount(where, weights=weights, minlength=low.size)
    return pos, neg


def twice_u(values: np.ndarray, positive: np.ndarray) -> tuple[int, int, int]:
    """(2 U, positives, negatives): twice the Mann-Whitney U statistic of the positive values against the negative
    ones, ties counted one half, so AUROC = 2 U / (2 P N) exactly. 1-D inputs."""
    narrow = as_float32(values)
    if narrow is None or narrow.size < SMALL:
        pos, neg = segments(values, positive)
    else:
        found = radix_segments(narrow, positive) if few_values(narrow) else None
        if found is None:
            n_pos = int(np.count_nonzero(positive))
            return sum(_over_ranges(narrow, positive, _sorted_twice_u)), n_pos, positive.size - n_pos
        pos, neg = found[0], found[1]
    negatives_below = np.cumsum(neg) - neg
    return int(np.dot(pos, 2 * negatives_below + neg)), int(pos.sum()), int(neg.sum())


def few_values(x: np.ndarray) -> bool:
    """Whether an evenly strided sample of `_SAMPLE` values holds at most `FEW_VALUES` distinct ones: then the
    histogram passes are about as fast as sorting and keep nothing per pixel. Decides speed and memory only."""
    sample = x[:: max(1, x.size // _SAMPLE)][:_SAMPLE] + np.float32(0.0)
    return np.unique(sample).size <= FEW_VALUES


class _Keys:
    """Chunk-wise keys and bin indices into reused buffers: fresh allocations per chunk cost more than the
    arithmetic."""

    def __init__(self, size: int = _CHUNK) -> None:
        self.key = np.empty(size, dtype=np.uint32)
        self.mask = np.empty(size, dtype=np.int32)
        self.index = np.empty(size, dtype=np.int64)
        self.low = np.empty(size, dtype=np.int64)

    def keys(self, x: np.ndarray) -> np.ndarray:
        """keys32(x) in a buffer that the next call overwrites."""
        k, m = self.key[: x.size], self.mask[: x.size]
        np.add(x, np.float32(0.0), out=k.view(np.float32))
        np.right_shift(k.view(np.int32), 31, out=m)
        m |= np.int32(-(1 << 31))
        np.bitwise_xor(k, m.view(np.uint32), out=k)
        return k

    def bins(self, k: np.ndarray, ranks: list[np.ndarray]) -> np.ndarray:
        """The bin of each key: its top 16 bits, then per table in `ranks` (the rank of a mixed bin, or the
        spare last rank) times 256 plus the next 8 bits of the key."""
        index, low = self.index[: k.size], self.low[: k.size]
        np.right_shift(k, 16, out=index)
        for level, rank in enumerate(ranks):
            np.take(rank, index, out=index, mode="clip")
            index <<= 8
            np.right_shift(k, 8 * (1 - level), out=low)
            low &= 255
            index += low
        return index


def _histogram(
    x: np.ndarray, y: np.ndarray, ranks: list[np.ndarray], bins: int, *, flag_low: bool = False
) -> np.ndarray:
    """Counts of `x` over `bins` bins (see `_Keys.bins`), shape (bins, 2, 2): [bin, low byte != 0, class] when
    `flag_low`, else (bins, 1, 2)."""
    chunk = min(max(_CHUNK, bins), 8 * _CHUNK)
    buffers = _Keys(chunk)
    flag = np.empty(chunk, dtype=bool)
    width = 4 if flag_low else 2
    counts = np.zeros(width * bins, dtype=np.int64)
    for s in range(0, x.shape[0], chunk):
        k = buffers.keys(x[s : s + chunk])
        index = buffers.bins(k, ranks)
        if flag_low:
            index <<= 1
            np.bitwise_and(k, 255, out=buffers.low[: k.size])
            index += np.not_equal(buffers.low[: k.size], 0, out=flag[: k.size])
        index <<= 1
        index += y[s : s + chunk]
        counts += np.bincount(index, minlength=width * bins)
    return counts.reshape(bins, width // 2, 2)


def _first_pass(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per 16-bit key bucket (65536 each)."""
    counts = _histogram(x, y, [], 1 << 16)[:, 0]
    return counts[:, 1], counts[:, 0]


def _ranks(mixed: np.ndarray) -> np.ndarray:
    """Rank of each mixed bin among the mixed bins; the others get the spare rank (one past the last)."""
    rank = np.cumsum(mixed, dtype=np.int64) - 1
    rank[~mixed] = rank[-1] + 1
    return rank


def radix_segments(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Segments of float32 `x` by class `y` as (positives, negatives, lowest key of each segment), ascending;
    None when too many 16- or 24-bit buckets hold both classes to histogram them (nearly continuous values).

    At most three passes over the values, each one bincount: the top 16 bits of the keys; then the next 8 bits
    within the 16-bit buckets that hold both classes (noting which 24-bit buckets hold keys with a nonzero low
    byte); then the last 8 bits within the 24-bit buckets that hold both classes and more than one key. Nothing
    per pixel is kept between passes: the extra memory is the histograms (bounded by the input) and chunk buffers.
    """
    limit = min(_LIMIT, max(1 << 16, x.size // 16))
    pos1, neg1 = _first_pass(x, y)
    low1 = np.arange(1 << 16, dtype=np.int64) << 16
    mixed1 = (pos1 > 0) & (neg1 > 0)
    m1 = int(mixed1.sum())
    if m1 == 0:
        return pos1, neg1, low1
    if (m1 + 1) * 512 > limit:
        return None
    rank1 = _ranks(mixed1)
    c2 = _histogram(x, y, [rank1], (m1 + 1) * 256, flag_low=True)[: m1 * 256]
    pos2, neg2 = c2[:, :, 1].sum(axis=1), c2[:, :, 0].sum(axis=1)
    low2 = (low1[mixed1][:, None] + (np.arange(256, dtype=np.int64) << 8)).ravel()
    refine = (pos2 > 0) & (neg2 > 0) & (c2[:, 1, :].sum(axis=1) > 0)
    seq = _expand([pos1, neg1, low1, np.zeros(1 << 16, dtype=bool)], mixed1, [pos2, neg2, low2, refine], 256)
    m2 = int(refine.sum())
    if m2 == 0:
        return seq[0], seq[1], seq[2]
    if (m2 + 1) * 256 > limit:
        return None
    rank2 = _ranks(np.concatenate([refine, np.zeros(256, dtype=bool)]))
    c3 = _histogram(x, y, [rank1, rank2], (m2 + 1) * 256)[: m2 * 256, 0]
    low3 = (low2[refine][:, None] + np.arange(256, dtype=np.int64)).ravel()
    pos, neg, low = _expand(seq[:3], seq[3], [c3[:, 1], c3[:, 0], low3], 256)
    return pos, neg, low


def _plan(x: np.ndarray, y: np.ndarray) -> list[tuple[np.float32 | None, np.float32 | None, int, int, int]]:
    """Cut the values at quantiles of a strided sample into ranges holding about `RANGE_SHARE` of them each, and
    count each range's classes in one pass of comparisons: per non-empty range, its bounds (lo <= x < hi; None for
    unbounded), its positive and negative counts, and the negatives below it."""
    sample = np.sort(x[:: max(1, x.size // _SAMPLE)][:_SAMPLE] + np.float32(0.0))
    parts = max(1, int(np.ceil(1 / RANGE_SHARE)))
    cuts = np.unique(sample[(np.arange(1, parts) * sample.size) // parts])
    below_all, below_pos = np.zeros(cuts.size + 2, dtype=np.int64), np.zeros(cuts.size + 2, dtype=np.int64)
    below_all[-1], below_pos[-1] = x.size, int(np.count_nonzero(y))
    under, under_pos = np.empty(_CHUNK, dtype=bool), np.empty(_CHUNK, dtype=bool)
    for s in range(0, x.size, _CHUNK):
        xc, yc = x[s : s + _CHUNK], y[s : s + _CHUNK]
        for k, cut in enumerate(cuts, start=1):
            m = np.less(xc, cut, out=under[: xc.size])
            below_all[k] += np.count_nonzero(m)
            below_pos[k] += np.count_nonzero(np.logical_and(m, yc, out=under_pos[: xc.size]))
    n_pos, n_all = np.diff(below_pos), np.diff(below_all)
    n_neg = n_all - n_pos
    bounds = [None, *cuts, None]
    below = np.cumsum(n_neg) - n_neg
    return [(bounds[k], bounds[k + 1], int(n_pos[k]), int(n_neg[k]), int(below[k])) for k in np.flatnonzero(n_all > 0)]


def _gather(
    x: np.ndarray, y: np.ndarray, lo, hi, n_pos: int, n_neg: int, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The positive and the negative values with lo <= x < hi (None: unbounded), each in a new array, and the
    weights of those positives; one pass over chunks with reused masks."""
    pos, neg = np.empty(n_pos, dtype=np.float32), np.empty(n_neg, dtype=np.float32)
    pos_weights = None if weights is None else np.empty(n_pos, dtype=np.float64)
    inside, upper = np.empty(_CHUNK, dtype=bool), np.empty(_CHUNK, dtype=bool)
    is_pos, is_neg = np.empty(_CHUNK, dtype=bool), np.empty(_CHUNK, dtype=bool)
    wp = wn = ww = 0
    for s in range(0, x.size, _CHUNK):
        xc, yc = x[s : s + _CHUNK], y[s : s + _CHUNK]
        size = xc.size
        if lo is None and hi is None:
            p, q = yc, np.logical_not(yc, out=is_neg[:size])
        else:
            m = inside[:size]
            if lo is None:
                np.less(xc, hi, out=m)
            else:
                np.greater_equal(xc, lo, out=m)
                if hi is not None:
                    m &= np.less(xc, hi, out=upper[:size])
            p = np.logical_and(m, yc, out=is_pos[:size])
            q = np.greater(m, yc, out=is_neg[:size])
        part = xc[p]
        pos[wp : wp + part.size] = part
        if pos_weights is not None:
            cy = int(np.count_nonzero(yc))
            pos_weights[wp : wp + part.size] = weights[ww : ww + cy] if p is yc else weights[ww : ww + cy][m[yc]]
            ww += cy
        wp += part.size
        part = xc[q]
        neg[wn : wn + part.size] = part
        wn += part.size
    return pos, neg, pos_weights


def _over_ranges(
    x: np.ndarray,
    y: np.ndarray,
    reduce: Callable[[np.ndarray, np.ndarray, np.ndarray | None, int], T],
    weights: np.ndarray | None = None,
) -> list[T]:
    """`reduce(positives, negatives, weights of the positives or None, negatives below the range)` per range of
    `_plan`, ascending, each class's values sorted; one range's values are held at a time."""
    results = []
    for lo, hi, n_pos, n_neg, below in _plan(x, y):
        pos, neg, pos_weights = _gather(x, y, lo, hi, n_pos, n_neg, weights)
        neg.sort()
        if pos_weights is None:
            pos.sort()
        else:
            order = np.argsort(pos)
            pos, pos_weights = pos[order], pos_weights[order]
            del order
        results.append(reduce(pos, neg, pos_weights, below))
        del pos, neg, pos_weights
    return results
