"""The n x n tile grid of P-WAE (section 3.C): fitting an image to a multiple of n, cutting and pasting tiles,
shuffling them by a permutation and back, and the permutation set with maximal minimum Hamming distance that the
jigsaw head classifies (Noroozi and Favaro's selection, which the paper follows)."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def working_size(height: int, width: int, n: int) -> tuple[int, int]:
    """The smallest (H', W') >= (height, width) with both sides multiples of n: the size the network sees."""
    return n * math.ceil(height / n), n * math.ceil(width / n)


def to_working(x: torch.Tensor, size: tuple[int, int], n: int) -> torch.Tensor:
    """x: (N, C, H, W) -> (N, C, H', W'): resized (bilinear) to the training size `size` when it differs, then
    padded at the bottom and right by edge replication up to multiples of n."""
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    height, width = working_size(size[0], size[1], n)
    pad = (0, width - size[1], 0, height - size[0])
    return F.pad(x, pad, mode="replicate") if any(pad) else x


def from_working(y: torch.Tensor, size: tuple[int, int], out: tuple[int, int]) -> torch.Tensor:
    """y: (N, C, H', W') in working space -> (N, C, *out): the padding cropped off (back to the training size
    `size`), then resized to `out`, the caller's input size, when it differs."""
    y = y[..., : size[0], : size[1]]
    if tuple(out) != tuple(size):
        y = F.interpolate(y, size=out, mode="bilinear", align_corners=False)
    return y


def cut(x: torch.Tensor, n: int) -> torch.Tensor:
    """x: (N, C, n h, n w) -> tiles (N, n*n, C, h, w) in row-major order (tile k = row k // n, column k % n)."""
    batch, channels, height, width = x.shape
    h, w = height // n, width // n
    grid = x.reshape(batch, channels, n, h, n, w).permute(0, 2, 4, 1, 3, 5)
    return grid.reshape(batch, n * n, channels, h, w)


def paste(tiles: torch.Tensor, n: int) -> torch.Tensor:
    """tiles: (N, n*n, C, h, w) -> (N, C, n h, n w); the inverse of `cut`."""
    batch, _, channels, h, w = tiles.shape
    grid = tiles.reshape(batch, n, n, channels, h, w).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(batch, channels, n * h, n * w)


def _take(items: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """items: (N, K, ...), index: (N, K) -> (N, K, ...) with out[i, j] = items[i, index[i, j]]."""
    rows = torch.arange(items.shape[0], device=items.device)[:, None]
    return items[rows, index]


def shuffle(items: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """items: (N, K, ...) in place order, perms: (N, K) -> (N, K, ...) where slot j holds item perms[i, j]."""
    return _take(items, perms)


def unshuffle(slots: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """slots: (N, K, ...) as `shuffle` left them, perms: (N, K) -> (N, K, ...) back in place order."""
    return _take(slots, perms.argsort(dim=1))


def hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a: (A, K), b: (B, K) permutations -> (A, B) the number of positions where they differ."""
    return (a[:, None, :] != b[None, :, :]).sum(dim=2)


def min_hamming(perms: torch.Tensor) -> int:
    """perms: (P, K) -> the smallest Hamming distance between two of them (K for a single one)."""
    if len(perms) < 2:
        return perms.shape[1]
    distances = hamming(perms, perms)
    distances.fill_diagonal_(perms.shape[1] + 1)
    return int(distances.min())


def candidate_pool(k: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(M, K) distinct permutations of range(k) to choose from: all k! when k! <= size, else `size` seeded random
    ones (9! = 362,880 for n = 3 would make the selection slow and gains little)."""
    if math.factorial(k) <= size:
        return torch.tensor(list(itertools.permutations(range(k))), dtype=torch.long)
    pool = torch.rand(size, k, generator=generator).argsort(dim=1)
    return torch.unique(pool, dim=0)


def permutation_set(k: int, count: int, seed: int = 0, pool: int = 20000) -> torch.Tensor:
    """(count, k) permutations for the jigsaw task: the identity first, then greedily the candidate whose minimum
    Hamming distance to those chosen is largest (first in the seeded pool on ties). Deterministic for a seed, so
    a checkpoint also stores it as a buffer rather than trusting the recomputation."""
    if count > math.factorial(k):
        raise ValueError(f"{count} permutations of {k} tiles requested; there are only {math.factorial(k)}")
    generator = torch.Generator().manual_seed(seed)
    candidates = candidate_pool(k, max(pool, count), generator)
    candidates = candidates[torch.randperm(len(candidates), generator=generator)]
    identity = torch.arange(k)[None]
    chosen = [identity[0]]
    nearest = hamming(candidates, identity)[:, 0]
    while len(chosen) < count:
        best = int(nearest.argmax())
        if int(nearest[best]) == 0:
            raise ValueError(f"the candidate pool holds fewer than {count} distinct permutations; enlarge it")
        chosen.append(candidates[best])
        nearest = torch.minimum(nearest, hamming(candidates, candidates[best][None])[:, 0])
    return torch.stack(chosen)
