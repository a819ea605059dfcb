"""Per-value count tables: the mergeable partials of the threshold-sweeping metrics (`xgen.Metric.partial`).

A shard's table holds, per distinct value of its maps (or scores) in ascending order, the positive count (or the
summed positive weights, for AUPRO) and the negative count. Tables of disjoint shards add up: the union of their
values with the counts summed is the table of all shards together, so AUROC, best IoU, maximum balanced accuracy and
AUPRO computed from it are exactly the single-process values (counts are integers; AUPRO's weights are float64 sums,
equal up to the order of addition).

`descending_chunks` merges any number of tables in bounded memory: it cuts the value axis at strided samples of every
table into chunks of at most about `BUDGET` table entries, merges one chunk at a time from the highest values down,
and compacts each merged chunk to segments (runs of values without positives become one segment, as in
`_counts.segments`). The metrics consume the chunks as they come, with running sums from the top (`from_top`) and
the totals of a first pass (`totals`), so nothing larger than a chunk is ever held. Tables may be memory-mapped
`.npy` files; each array is read a slice at a time and released before the next chunk.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

#: Table entries merged at once (summed over the shards): about 100 MB of working memory.
BUDGET = 1 << 20


def count_table(values: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """values: (P,) float32 or float64, positive: (P,) bool -> {"values", "pos", "neg"}, one entry per distinct
    value, ascending; `weights` (one per positive value, in order) makes "pos" the summed weights (float64)."""
    values = values + values.dtype.type(0.0)
    distinct, inverse = np.unique(values, return_inverse=True)
    inverse = inverse.reshape(-1)
    if weights is None:
        pos = np.bincount(inverse[positive], minlength=distinct.size).astype(np.int64)
    else:
        pos = np.bincount(inverse[positive], weights=weights.astype(np.float64), minlength=distinct.size)
    neg = np.bincount(inverse[~positive], minlength=distinct.size).astype(np.int64)
    return {"values": distinct, "pos": pos, "neg": neg}


def counts(partials: Sequence[Mapping[str, np.ndarray]], *names: str) -> list[int]:
    """The sums over the shards of the named 0-d integer entries."""
    return [sum(int(p[name]) for p in partials) for name in names]


def _compact(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments of a merged, ascending table: every value with positives alone, each run of values without
    positives between them summed into one."""
    has_pos = pos > 0
    starts = np.flatnonzero(has_pos | np.concatenate([[True], has_pos[:-1]]))
    return np.add.reduceat(pos, starts), np.add.reduceat(neg, starts)


def _cuts(partials: Sequence[Mapping[str, np.ndarray]], budget: int) -> np.ndarray:
    """Ascending values that cut the value axis into chunks of at most `budget` entries over all S tables: each
    table sampled every budget / 2S entries, and a cut at every S-th of the pooled samples. Between two of its own
    samples a table holds at most budget / 2S entries, so a chunk spanning S pooled samples holds at most
    (S + S) budget / 2S of them."""
    tables = max(1, len(partials))
    stride = max(1, budget // (2 * tables))
    samples = []
    for p in partials:
        column = p["values"]
        samples.append(np.array(column[stride::stride]))
        del column
    pooled = np.sort(np.concatenate(samples)) if samples else np.zeros(0)
    return np.unique(pooled[tables - 1 :: tables])


def totals(partials: Sequence[Mapping[str, np.ndarray]], column: str) -> int | float:
    """The sum of one column ("pos" or "neg") over every table, read `BUDGET` entries at a time: an exact int for
    counts, a float64 sum for weights."""
    total: int | float = 0
    for p in partials:
        size = p[column].shape[0]
        for start in range(0, size, BUDGET):
            part = np.asarray(p[column][start : start + BUDGET])
            total += int(part.sum()) if part.dtype.kind in "iu" else float(part.sum())
    return total


def descending_chunks(
    partials: Sequence[Mapping[str, np.ndarray]], budget: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The segments (positive counts or weights, negative counts) of the tables of all shards merged, from the
    highest value down: one chunk of at most `budget` (default `BUDGET`) table entries at a time, each chunk's
    segments in descending order (see the module docstring). Nothing is kept between chunks."""
    cuts = _cuts(partials, budget or BUDGET)
    bounds = [None, *cuts, None]
    for lo, hi in reversed(list(itertools.pairwise(bounds))):
        values, pos, neg = [], [], []
        for p in partials:
            column = p["values"]
            start = 0 if lo is None else int(np.searchsorted(column, lo))
            end = column.shape[0] if hi is None else int(np.searchsorted(column, hi))
            values.append(np.array(column[start:end]))
            pos.append(np.array(p["pos"][start:end]))
            neg.append(np.array(p["neg"][start:end]))
            del column
        joined = np.concatenate(values) if values else np.zeros(0)
        if joined.size == 0:
            continue
        distinct, inverse = np.unique(joined, return_inverse=True)
        del joined, values
        all_pos = np.concatenate(pos)
        summed = np.bincount(inverse, weights=all_pos, minlength=distinct.size)
        if all_pos.dtype.kind in "iu":
            summed = summed.astype(np.int64)
        summed_neg = np.bincount(inverse, weights=np.concatenate(neg), minlength=distinct.size).astype(np.int64)
        del inverse, all_pos, pos, neg
        segment_pos, segment_neg = _compact(summed, summed_neg)
        yield segment_pos[::-1], segment_neg[::-1]


def merged_segments(
    partials: Sequence[Mapping[str, np.ndarray]], budget: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All merged segments at once, ascending (for tests and small inputs; metrics stream `descending_chunks`)."""
    chunks = list(descending_chunks(partials, budget))
    if not chunks:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate([p for p, _ in chunks])[::-1], np.concatenate([n for _, n in chunks])[::-1]


def from_top(
    partials: Sequence[Mapping[str, np.ndarray]],
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per chunk of `descending_chunks`: its segments' positives and negatives, and the positives and negatives at or
    above each segment's lowest value (weights summed in the order of one `np.cumsum` over every segment from the
    top, whatever the chunks)."""
    pos_carry: int | float = 0
    neg_carry = 0
    for pos, neg in descending_chunks(partials):
        above_pos = np.cumsum(np.concatenate([np.array([pos_carry], dtype=pos.dtype), pos]))[1:]
        above_neg = neg_carry + np.cumsum(neg)
        pos_carry, neg_carry = above_pos[-1], int(above_neg[-1])
        yield pos, neg, above_pos, above_neg
