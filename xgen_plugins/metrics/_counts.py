"""Exact per-threshold class counts without a full sort, shared by every threshold-sweeping metric.

`segments(values, positive)` returns two int64 arrays, in ascending order of value, that partition the values into
segments, each of which is either one distinct value (with its positive and negative counts) or a run of values of
a single class. Every ROC vertex lies on a segment boundary (inside a single-class run the ROC curve is a straight
vertical or horizontal line), so AUROC, best IoU and maximum balanced accuracy computed from segments are exact.

Large float32 inputs are counted with up to three bincount passes over order-preserving uint32 keys (16, 8 and
8 bits; see `radix_segments`), refining only buckets that hold both classes. When too many buckets hold both
classes to histogram (nearly continuous values), the keys of each class are sorted instead. Small inputs, and
float64 values that float32 cannot hold exactly, are sorted.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 18
_LIMIT = 1 << 22
#: Inputs with fewer values than this are sorted; tests lower it to exercise the histogram path.
SMALL = 1 << 21
_SIGN = np.uint32(0x80000000)


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


def _sorted_key_segments(
    pos_sorted: np.ndarray, neg_sorted: np.ndarray, pos_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Segments from sorted positives and negatives: per distinct positive value, the run of negatives below it
    (down to the previous positive value) and then the value itself with its tied negatives."""
    if pos_sorted.size == 0:
        return np.zeros(1, dtype=np.int64), np.array([neg_sorted.size], dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], pos_sorted[1:] != pos_sorted[:-1]]))
    distinct = pos_sorted[starts]
    if pos_weights is None:
        counts = np.diff(np.append(starts, pos_sorted.size)).astype(np.int64)
    else:
        counts = np.add.reduceat(pos_weights.astype(np.float64), starts)
    left = np.searchsorted(neg_sorted, distinct, side="left")
    right = np.searchsorted(neg_sorted, distinct, side="right")
    pos = np.zeros(2 * distinct.size + 1, dtype=counts.dtype)
    pos[1::2] = counts
    neg = np.empty(2 * distinct.size + 1, dtype=np.int64)
    neg[0:-1:2] = left - np.concatenate([[0], right[:-1]])
    neg[1::2] = right - left
    neg[-1] = neg_sorted.size - right[-1]
    return pos, neg


def sorted_segments(
    pos_values: np.ndarray, neg_values: np.ndarray, pos_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Segments by sorting (see `_sorted_key_segments`); `pos_weights` makes positive counts weighted sums."""
    neg_sorted = np.sort(neg_values)
    if pos_weights is None:
        return _sorted_key_segments(np.sort(pos_values), neg_sorted)
    order = np.argsort(pos_values, kind="stable")
    return _sorted_key_segments(pos_values[order], neg_sorted, pos_weights[order])


def _small_segments(values: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = values + values.dtype.type(0.0)
    return sorted_segments(values[positive], values[~positive])


def segments(values: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per segment, ascending by value (see the module docstring). 1-D inputs."""
    narrow = as_float32(values)
    if narrow is None or narrow.size < SMALL:
        return _small_segments(values, positive)
    found = radix_segments(narrow, positive)
    if found is not None:
        return found[0], found[1]
    return _sorted_key_segments(*_split_sorted(narrow, positive, int(np.count_nonzero(positive))))


def as_float32(values: np.ndarray) -> np.ndarray | None:
    """The values as float32 when that is exact, else None."""
    if values.dtype == np.float32:
        return values
    narrow = values.astype(np.float32)
    return narrow if np.array_equal(narrow, values) else None


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


def _split_sorted(x: np.ndarray, y: np.ndarray, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the positives and of the negatives, each sorted in place."""
    buffers = _Keys()
    pos = np.empty(n_pos, dtype=np.uint32)
    neg = np.empty(x.size - n_pos, dtype=np.uint32)
    wp = wn = 0
    for s in range(0, x.size, _CHUNK):
        k, yc = buffers.keys(x[s : s + _CHUNK]), y[s : s + _CHUNK]
        kp, kn = k[yc], k[~yc]
        pos[wp : wp + kp.size], neg[wn : wn + kn.size] = kp, kn
        wp, wn = wp + kp.size, wn + kn.size
    pos.sort()
    neg.sort()
    return pos, neg


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
    c1 = _histogram(x, y, [], 1 << 16)[:, 0]
    pos1, neg1 = c1[:, 1], c1[:, 0]
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
