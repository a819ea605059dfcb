"""Synthetic defects: each plants one seeded defect in a clean crop and returns the defective crop and its exact mask.

Sizes are fractions of the crop side S (widths scale with S / 64), so a 128-pixel crop looks like a 64-pixel one
enlarged. Every planter returns a proposed image and the region it meant to change; `_settle` then enforces the
contract: inside the region every pixel moves by at least `MIN_CHANGE`, outside it every pixel is bit-identical.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from skimage import draw

MIN_CHANGE = 2 / 255

Planter = Callable[[np.ndarray, np.random.Generator, Sequence[np.ndarray]], tuple[np.ndarray, np.ndarray]]


def plant(
    kind: str, clean: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Plant defect `kind` in `clean`: (S, S) float32 in [0, 1].

    donors: other photographs (H, W) in [0, 1] that `paste` cuts from. Returns the defective crop, (S, S) float32
    in [0, 1], and its mask, (S, S) bool, with mask == (defective != clean) exactly; the mask is never empty."""
    changed, region = _PLANTERS[kind](clean.astype(np.float64), rng, donors)
    return _settle(clean, changed, region), region


def _settle(clean: np.ndarray, changed: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`changed` inside `region` and `clean` outside; a region pixel that moved less than MIN_CHANGE is pushed to
    exactly MIN_CHANGE from `clean`, in the direction it moved (or away from the nearer bound), staying in [0, 1]."""
    original = clean.astype(np.float64)
    changed = np.clip(changed, 0.0, 1.0)
    delta = changed - original
    direction = np.where(delta != 0, np.sign(delta), np.where(original < 0.5, 1.0, -1.0))
    pushed = original + direction * MIN_CHANGE
    pushed = np.where((pushed < 0) | (pushed > 1), original - direction * MIN_CHANGE, pushed)
    changed = np.where(np.abs(delta) < MIN_CHANGE, pushed, changed)
    return np.where(region, changed.astype(np.float32), clean)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (reflecting at the border). scipy is imported here: it costs a quarter second at plugin load."""
    from scipy import ndimage

    return ndimage.gaussian_filter(image, sigma, mode="reflect")


def _blob(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """An irregular soft blob: (S, S) float64, 1 at its centre pixel, falling to 0 at its rim and 0 outside.

    An ellipse (semi-axes 0.6-1 x radius, any angle) whose rim is warped by smooth noise by up to 40 %, so it
    reaches at most radius / 0.6 from its centre. The centre lies in the middle 60 % of the crop, so for
    radius <= 0.3 S the blob never covers the whole crop."""
    centre = rng.integers(round(0.2 * size), round(0.8 * size), size=2, endpoint=True)
    axes = radius * rng.uniform(0.6, 1.0, size=2)
    angle = rng.uniform(0, np.pi)
    rows, cols = np.mgrid[:size, :size].astype(np.float64) - centre[:, None, None]
    along = (rows * np.cos(angle) + cols * np.sin(angle)) / axes[0]
    across = (cols * np.cos(angle) - rows * np.sin(angle)) / axes[1]
    noise = _gaussian(rng.standard_normal((size, size)), max(radius / 3, 1.0))
    noise /= np.abs(noise).max()
    return np.clip(1 - np.hypot(along, across) * (1 + 0.4 * noise), 0.0, 1.0)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def scratch(clean: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A thin polyline (2-4 segments of 0.12-0.3 S, turning up to 45 degrees, 1-2 px wide at S = 64; shrunk if it
    would not fit, then placed at random inside the crop), drawn 60-90 % of the way to near-black or near-white."""
    size = clean.shape[0]
    width = max(1, round(rng.uniform(1, 2) * size / 64))
    turns = rng.uniform(-np.pi / 4, np.pi / 4, size=rng.integers(2, 4, endpoint=True))
    headings = rng.uniform(0, 2 * np.pi) + np.cumsum(turns)
    steps = rng.uniform(0.12, 0.3, size=(len(turns), 1)) * size * np.stack([np.sin(headings), np.cos(headings)], 1)
    points = np.cumsum(np.concatenate([np.zeros((1, 2)), steps]), axis=0)
    room = size - width
    points -= points.min(axis=0)
    points *= min(1.0, room / points.max())
    points += rng.uniform(0, room - points.max(axis=0))
    vertices = np.round(points).astype(int)
    region = np.zeros((size, size), dtype=bool)
    for (r0, c0), (r1, c1) in itertools.pairwise(vertices):
        for dr in range(width):
            for dc in range(width):
                region[draw.line(r0 + dr, c0 + dc, r1 + dr, c1 + dc)] = True
    target = rng.choice([0.05, 0.95])
    return clean + rng.uniform(0.6, 0.9) * (target - clean), region


def stain(clean: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged blob (radius 0.12-0.25 S) darkened or lightened by 30-60 % at its core, fading smoothly over
    the outer half of the blob; its mask is the whole blob (alpha > 0)."""
    size = clean.shape[0]
    field = _blob(rng, size, rng.uniform(0.12, 0.25) * size)
    alpha = rng.uniform(0.3, 0.6) * _smoothstep(2 * field)
    toward = 0.0 if rng.random() < 0.5 else 1.0
    return clean + alpha * (toward - clean), field > 0


def hole(clean: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A dark blob (radius 0.06-0.14 S) with a steep rim: grey level 0-0.08 plus a tenth of the texture."""
    size = clean.shape[0]
    field = _blob(rng, size, rng.uniform(0.06, 0.14) * size)
    alpha = np.clip(5 * field, 0.0, 1.0)
    dark = rng.uniform(0.0, 0.08) + 0.1 * clean
    return clean + alpha * (dark - clean), field > 0


def paste(clean: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle (sides 0.15-0.35 S) replaced by the same-sized patch of a random donor photograph."""
    size = clean.shape[0]
    donor = donors[rng.integers(len(donors))]
    height, width = np.maximum(2, np.round(rng.uniform(0.15, 0.35, size=2) * size).astype(int))
    top, left = rng.integers(0, [size - height, size - width], endpoint=True)
    source = rng.integers(0, [donor.shape[0] - height, donor.shape[1] - width], endpoint=True)
    changed = clean.copy()
    changed[top : top + height, left : left + width] = donor[
        source[0] : source[0] + height, source[1] : source[1] + width
    ]
    region = np.zeros((size, size), dtype=bool)
    region[top : top + height, left : left + width] = True
    return changed, region


def blur(clean: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A blob (radius 0.15-0.3 S) blended into a Gaussian blur of the crop (sigma 1.5-3 px at S = 64), fully
    blurred over its inner two thirds."""
    size = clean.shape[0]
    field = _blob(rng, size, rng.uniform(0.15, 0.3) * size)
    blurred = _gaussian(clean, rng.uniform(1.5, 3.0) * size / 64)
    alpha = np.clip(3 * field, 0.0, 1.0)
    return clean + alpha * (blurred - clean), field > 0


_PLANTERS: dict[str, Planter] = {"scratch": scratch, "stain": stain, "hole": hole, "paste": paste, "blur": blur}
DEFECTS = tuple(_PLANTERS)
