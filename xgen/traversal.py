"""Latent traversals, the standard picture of a disentangled model: vary one latent dimension at a time around a few
seed latents and decode, for any model that decodes; beside each row, the seed image's attention map of that
dimension where the model's explainer draws per-dimension maps."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from xgen.api import check_images, evaluation_mode, explain
from xgen.errors import XgenError
from xgen.files import check_output_file
from xgen.model import Model, wrap
from xgen.plugins import lookup
from xgen.visualize import GAP, enlargement, overlays, save_png

#: With `dims=None`, latents with more dimensions than this traverse only the first ones (a note says so).
MAX_DEFAULT_DIMS = 64

_TILE_GAP = 2
_BLOCK_GAP = 16
_HEADER = 14
_GREY = (150, 150, 150)


@dataclass
class Traversal:
    """What `traverse` returns, for S seeds, D traversed dimensions and T steps.

    images: (S, D, T, C, H, W) float32 in [0, 1] on the CPU; images[s, d, t] decodes seed s with latent dimension
    dims[d] set to values[s, d, t], every other dimension kept. values: (S, D, T). dims: the D flat indices of the
    latent traversed (a latent of shape (D1, D2, ...) is indexed flattened); for a categorical row, the first of its
    one-hot columns, and values[s, d, t] the class shown. names: the D row labels (`z<index>` unless the model names
    its dimensions). seeds: (S, L) the seed latents, flat. seed_images: (S, C, H, W) the images the seeds encode, the
    decoded prior samples when an explainer was run on them for maps, else None. maps: (S, D, H, W) each seed
    image's attention map of each traversed dimension, drawn by explainer `plugin`, or None. variation: (D,) how much
    each traversal changes its images (the standard deviation over the steps, averaged over pixels and seeds);
    below `threshold` times the largest variation, or below `floor`, a dimension counts as inactive (collapsed to
    the prior). span, relative: the rule that made the values (see `traverse`). notes: what was left out, and why.
    """

    images: torch.Tensor
    values: torch.Tensor
    dims: list[int]
    seeds: torch.Tensor
    seed_images: torch.Tensor | None
    variation: torch.Tensor
    threshold: float
    floor: float
    span: float
    relative: bool
    maps: torch.Tensor | None = None
    plugin: str | None = None
    notes: list[str] = field(default_factory=list)
    names: list[str] | None = None

    @property
    def inactive(self) -> torch.Tensor:
        """(D,) bool: the dimensions whose variation is below `threshold` times the largest variation or `floor`."""
        return self.variation < max(self.threshold * float(self.variation.max()), self.floor)

    def picture(self, min_size: int = 48) -> Image.Image:
        """The traversal as one picture: a block per seed, side by side; in each, one row per dimension with the
        decoded steps left to right and, where maps were drawn, the seed image's map of that dimension overlaid on it
        (jet colours, red = high). Rows of inactive dimensions come last, below a grey line, with grey labels. Images
        are enlarged (nearest) so their shorter side is at least `min_size` pixels."""
        s, d, t, _, h, w = self.images.shape
        scale = enlargement(h, w, min_size)
        th, tw = h * scale, w * scale
        order = sorted(range(d), key=lambda i: (bool(self.inactive[i]), i))
        steps = _enlarged(_rgb(self.images[:, order]), scale)
        strips = _tiled(steps.reshape(s, d, t, th, tw, 3))
        if self.maps is not None and self.seed_images is not None:
            seeds = _rgb(self.seed_images).astype(np.float32) / np.float32(255.0)
            seeds = np.repeat(np.transpose(seeds, (0, 3, 1, 2)), d, axis=0)
            blended = overlays(seeds, self.maps[:, order].reshape(s * d, h, w).numpy())[:, :, w + GAP :]
            maps = _tiled(_enlarged(blended, scale).reshape(s, d, 1, th, tw, 3))
            strips = np.concatenate(
                [strips, np.full((s, *strips.shape[1:2], 2 * _TILE_GAP, 3), 255, np.uint8), maps], 2
            )
        font = ImageFont.load_default()
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        labels = [self.names[i] if self.names else f"z{self.dims[i]}" for i in order]
        label_w = int(max(probe.textlength(text, font=font) for text in labels)) + 6
        row_h = th + _TILE_GAP
        block_w = strips.shape[2]
        canvas = np.full((_HEADER + d * row_h, label_w + s * block_w + (s - 1) * _BLOCK_GAP, 3), 255, np.uint8)
        for k in range(s):
            x0 = label_w + k * (block_w + _BLOCK_GAP)
            canvas[_HEADER:, x0 : x0 + block_w] = strips[k]
        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        inactive = [bool(self.inactive[i]) for i in order]
        for row, (text, grey) in enumerate(zip(labels, inactive, strict=True)):
            draw.text((2, _HEADER + row * row_h + th // 2 - 6), text, fill=_GREY if grey else (30, 30, 30), font=font)
        if any(inactive) and not all(inactive):
            y = _HEADER + inactive.index(True) * row_h - _TILE_GAP // 2 - 1
            draw.line([(0, y), (picture.width, y)], fill=_GREY, width=1)
        prefix = "" if self.relative else "z="
        ends = (f"{prefix}{-self.span:+g}", f"{prefix}{self.span:+g}")
        for k in range(s):
            x0 = label_w + k * (block_w + _BLOCK_GAP)
            draw.text((x0, 1), ends[0], fill=(30, 30, 30), font=font)
            right = x0 + (t - 1) * (tw + _TILE_GAP)
            draw.text((right, 1), ends[1], fill=(30, 30, 30), font=font)
            if self.maps is not None:
                draw.text((x0 + t * (tw + _TILE_GAP) + 2 * _TILE_GAP, 1), "map", fill=(30, 30, 30), font=font)
        return picture

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `picture()` as a PNG, atomically. The folder must exist."""
        path = check_png_path(path, "path")
        save_png(self.picture(), path)
        return path


def check_png_path(path: str | os.PathLike[str], flag: str) -> Path:
    """`path` as a Path if it names a writable .png file in an existing folder; else XgenError, creating nothing."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise XgenError(f"{flag} {path} must end in .png; the traversal is written as a PNG picture.")
    if not path.parent.is_dir():
        raise XgenError(f"{flag} {path}: folder {path.parent} does not exist; create it or choose another path.")
    return check_output_file(path, flag)


def _rgb(images: torch.Tensor) -> np.ndarray:
    """images: (..., C, H, W) in [0, 1] -> (..., H, W, 3) uint8; one channel is grey, other counts show channel 0
    unless there are three or more (the first three)."""
    images = images.detach().cpu().float()
    c = images.shape[-3]
    rgb = images[..., :3, :, :] if c >= 3 else images[..., :1, :, :].expand(*images.shape[:-3], 3, *images.shape[-2:])
    pixels = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return np.moveaxis(pixels, -3, -1)


def _enlarged(pixels: np.ndarray, scale: int) -> np.ndarray:
    """pixels: (..., H, W, 3) -> (..., H * scale, W * scale, 3), nearest."""
    if scale == 1:
        return pixels
    return np.repeat(np.repeat(pixels, scale, axis=-3), scale, axis=-2)


def _tiled(tiles: np.ndarray) -> np.ndarray:
    """tiles: (S, D, T, h, w, 3) -> (S, D * (h + gap), T * (w + gap) - gap, 3): D rows of T tiles per seed, white
    gaps between them."""
    s, d, t, h, w, _ = tiles.shape
    padded = np.full((s, d, t, h + _TILE_GAP, w + _TILE_GAP, 3), 255, np.uint8)
    padded[:, :, :, :h, :w] = tiles
    return padded.transpose(0, 1, 3, 2, 4, 5).reshape(s, d * (h + _TILE_GAP), t * (w + _TILE_GAP), 3)[:, :, :-_TILE_GAP]


def _check_arguments(n: int | None, span: float, steps: int, threshold: float, floor: float, batch_size: int) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise XgenError(f"n must be a whole number of seeds >= 1, got {n!r}.")
    if not (isinstance(span, (int, float)) and math.isfinite(span) and span > 0):
        raise XgenError(f"span must be a positive number (the half-width of each traversal), got {span!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise XgenError(f"steps must be a whole number >= 2 (values per traversal), got {steps!r}.")
    if not (math.isfinite(threshold) and 0 <= threshold <= 1):
        raise XgenError(f"threshold must be a fraction in [0, 1] of the largest variation, got {threshold!r}.")
    if not (math.isfinite(floor) and floor >= 0):
        raise XgenError(f"floor must be a number >= 0 (a variation in pixel units of [0, 1]), got {floor!r}.")
    if batch_size < 1:
        raise XgenError(f"batch_size must be at least 1, got {batch_size}.")


def _check_dims(dims: Sequence[int] | None, size: int, notes: list[str]) -> list[int]:
    """The flat latent indices to traverse: `dims` checked against a latent of `size`, or the first ones."""
    if dims is None:
        if size > MAX_DEFAULT_DIMS:
            notes.append(
                f"the latent has {size} dimensions; only the first {MAX_DEFAULT_DIMS} are traversed (pass dims= to "
                "choose others)."
            )
        return list(range(min(size, MAX_DEFAULT_DIMS)))
    chosen = list(dims)
    if not chosen:
        raise XgenError("dims is empty; name at least one latent dimension, or pass None for all of them.")
    bad = [d for d in chosen if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d < size]
    if bad:
        raise XgenError(f"dims {bad} are out of range: the latent has {size} dimensions, numbered 0 to {size - 1}.")
    if len(set(chosen)) != len(chosen):
        raise XgenError(f"dims {chosen} name a dimension twice; name each once.")
    return [int(d) for d in chosen]


def _declared_rows(model: Model, size: int) -> list[tuple[str, list[int]]] | None:
    """The rows the model's module declares in a `traverse_dims` attribute, as (name, latent columns): a list of
    (name, flat index) pairs and (name, slice) pairs for a categorical code's one-hot columns; None if it has none."""
    declared = getattr(model.module, "traverse_dims", None)
    if not declared:
        return None
    rows = []
    for entry in declared:
        name, where = entry if isinstance(entry, (tuple, list)) and len(entry) == 2 else (None, None)
        if isinstance(where, slice) and where.step in (None, 1):
            columns = list(range(size))[where]
            ok = len(columns) >= 2 and where.start is not None and where.stop is not None and where.stop <= size
        else:
            ok = isinstance(where, (int, np.integer)) and not isinstance(where, bool) and 0 <= where < size
            columns = [int(where)] if ok else []
        if not isinstance(name, str) or not ok:
            raise XgenError(
                f"the model's traverse_dims entry {entry!r} is not a (name, index or slice of at least two columns) "
                f"pair within its {size} latent dimensions; fix the attribute or pass dims=."
            )
        rows.append((name, columns))
    return rows


def _rows(model: Model, dims: Sequence[int] | None, size: int, notes: list[str]) -> list[tuple[str, list[int]]]:
    """The traversal's rows as (name, latent columns): `dims`, else the model's `traverse_dims`, else the first
    dimensions. A row of several columns is a categorical code whose steps sweep its one-hot classes."""
    declared = _declared_rows(model, size)
    if dims is None and declared is not None:
        return declared
    names = {columns[0]: name for name, columns in declared or [] if len(columns) == 1}
    return [(names.get(d, f"z{d}"), [d]) for d in _check_dims(dims, size, notes)]


def _row_maps(
    details: dict[str, Any], plugin: str, rows: list[str], dims: list[int], expected: tuple, notes: list[str]
) -> torch.Tensor | None:
    """(S, D, H, W) maps of the rows from an explanation's details: matched by name when the explainer names its
    per_dim maps (`per_dim_names`, e.g. one per code), else indexed by latent dimension, (S, L, H, W) expected."""
    found, names = details.get("per_dim"), details.get("per_dim_names")
    if isinstance(found, torch.Tensor) and isinstance(names, (list, tuple)) and len(names) == found.shape[1]:
        if (found.shape[0], *found.shape[2:]) != (expected[0], *expected[2:]):
            raise XgenError(
                f"explainer '{plugin}' gave per_dim maps of shape {tuple(found.shape)} for {expected[0]} "
                f"images of {expected[2]}x{expected[3]}."
            )
        where = {str(name): k for k, name in enumerate(names)}
        matched = [where.get(row) for row in rows]
        if all(k is None for k in matched):
            notes.append(
                f"no per-dimension maps: explainer '{plugin}' draws maps of {', '.join(map(str, names))}, and no "
                "traversed row has one of those names."
            )
            return None
        missing = [row for row, k in zip(rows, matched, strict=True) if k is None]
        if missing:
            notes.append(f"explainer '{plugin}' draws no map of {', '.join(missing)}; those rows' maps show 0.")
        blank = torch.zeros_like(found[:, 0])
        return torch.stack([blank if k is None else found[:, k] for k in matched], 1).detach().float().cpu()
    if not isinstance(found, torch.Tensor) or tuple(found.shape) != expected:
        shape = tuple(getattr(found, "shape", ()))
        raise XgenError(f"explainer '{plugin}' gave per_dim maps of shape {shape}, expected {expected}.")
    return found[:, torch.tensor(dims, device=found.device)].detach().float().cpu()


def _map_explainer(
    model: Model, plugin: str | None, maps: bool | None, has_images: bool, notes: list[str]
) -> str | None:
    """The explainer that draws the per-dimension maps, or None (with a note, or an error when `maps` is True)."""
    if maps is False:
        return None
    name = plugin or model.default_dimension_explainer or model.default_explainer
    reason = None
    if not has_images and name is None:
        reason = "the seeds are prior samples and the model names no default explainer (pass plugin=... naming one"
        reason += " with a per_dim option to explain the decoded samples)"
    elif name is None:
        reason = "the model names no default explainer (pass plugin=... naming one with a per_dim option)"
    else:
        explainer = lookup("explainer", name)
        missing = sorted(set(explainer.requires) - model.capabilities)
        if "per_dim" not in explainer.options():
            reason = f"explainer '{name}' has no per_dim option, so it draws no per-dimension maps"
        elif missing:
            reason = f"explainer '{name}' requires {', '.join(missing)}, which this model does not provide"
    if reason is None:
        return name
    if maps:
        raise XgenError(f"cannot draw per-dimension maps: {reason}.")
    notes.append(f"no per-dimension maps: {reason}.")
    return None


def traverse(
    model: Model | nn.Module,
    images: Any = None,
    *,
    n: int | None = None,
    span: float = 2.0,
    steps: int = 9,
    dims: Sequence[int] | None = None,
    relative: bool = True,
    seed: int = 0,
    generator: torch.Generator | None = None,
    maps: bool | None = None,
    plugin: str | None = None,
    explainer_options: dict[str, Any] | None = None,
    threshold: float = 0.2,
    floor: float = 1e-3,
    batch_size: int = 256,
) -> Traversal:
    """Decode latents varied one dimension at a time around S seed latents.

    Seeds: the encoder mean of `images` (N, C, H, W) in [0, 1] (the first `n` of them if `n` is given), or, with no
    images, `n` (default 3) samples of the model's prior drawn with `generator` (default: seeded with `seed`), which
    is how models without an encoder traverse. Values: with `relative` (default), each dimension takes `steps`
    evenly spaced values from its seed value - span to + span, the +-2 that disentanglement papers show for an
    N(0, 1) prior, so an odd `steps` puts the seed's own decoding in the middle column; `relative=False` sets the
    dimension to -span ... +span regardless of the seed (as disentanglement_lib's `latent_traversal_1d_multi_dim`
    replaces the seed's value).
    dims: flat latent indices (default: the rows the model's module declares in `traverse_dims`, e.g. one per code
    of an InfoGAN, else all dimensions up to MAX_DEFAULT_DIMS). A declared row may be a slice of a categorical code's
    one-hot columns: its steps then sweep the code's k classes left to right, in runs of about steps / k columns.

    maps: None draws the per-dimension maps when possible and otherwise adds a note; True requires them (one error
    sentence when impossible); False draws none. They come from explainer `plugin` (default: the model's
    `default_dimension_explainer`, else its `default_explainer`) called
    with `per_dim=True` and `explainer_options`, read from `Explanation.details["per_dim"]`: (S, L, H, W) indexed by
    latent dimension, or (S, K, H, W) matched to the rows by name when details["per_dim_names"] names the K maps (as
    `q-gradcam` names its codes). Prior seeds are explained as their decoded images when the model names a default
    explainer or `plugin` is given. An explainer without a `per_dim` option or a model it cannot explain give no maps.
    threshold: a dimension whose variation (std over the steps, mean over pixels and seeds) is below this fraction of
    the largest variation counts as inactive (a relative rule: collapsed dimensions still move the images a little,
    by an amount that depends on the data). On a conv-vae trained on digits, 0.2 separated the dimensions that
    visibly change the digit from the rest. floor: below this variation (pixel units in [0, 1]; the default is a
    quarter of an 8-bit grey level) a dimension is inactive whatever the others do, so a model that uses none of its
    latent shows every row as inactive.
    """
    _check_arguments(n, span, steps, threshold, floor, batch_size)
    model = wrap(model)
    model.check_requires({"decode"}, "traverse")
    notes: list[str] = []
    if images is not None:
        if "encode" not in model.capabilities:
            raise XgenError(
                "this model cannot encode images, so it traverses around prior samples: call traverse without "
                "images (or wrap the model with encode=...)."
            )
        x = check_images(images, model)
        x = x[:n] if n is not None else x
    else:
        if "generate" not in model.capabilities:
            raise XgenError(
                "with no images, traverse starts from prior samples, and this model has no prior; pass images to "
                "encode, or wrap the model with prior=... (a callable (n, generator) -> latents)."
            )
        x = None
    map_plugin = _map_explainer(model, plugin, maps, x is not None, notes)
    if map_plugin is not None:
        map_options = {**(explainer_options or {}), "per_dim": True}
        lookup("explainer", map_plugin)(**map_options)
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    with torch.no_grad(), evaluation_mode(model):
        latent = model.encode(x).mean if x is not None else model.sample_prior(3 if n is None else n, generator)
    latent_shape = tuple(latent.shape[1:])
    seeds = latent.detach().flatten(1).float()
    rows = _rows(model, dims, seeds.shape[1], notes)
    chosen = [columns[0] for _, columns in rows]
    s, d = seeds.shape[0], len(chosen)
    index = torch.tensor(chosen, device=seeds.device)
    offsets = torch.linspace(-span, span, steps, device=seeds.device)
    values = seeds[:, index, None] + offsets if relative else offsets.expand(s, d, steps).clone()
    codes = seeds[:, None, None, :].expand(s, d, steps, seeds.shape[1]).clone()
    codes.scatter_(3, index.view(1, d, 1, 1).expand(s, d, steps, 1), values.unsqueeze(3))
    for r, (_, columns) in enumerate(rows):
        if len(columns) > 1:
            classes = torch.arange(steps, device=seeds.device) * len(columns) // steps
            codes[:, r, :, columns] = torch.nn.functional.one_hot(classes, len(columns)).to(codes.dtype)
            values[:, r] = classes.to(values.dtype)
    codes = codes.reshape(s * d * steps, *latent_shape).to(latent.dtype)
    with torch.no_grad(), evaluation_mode(model):
        decoded = torch.cat([model.decode(chunk).float().cpu() for chunk in codes.split(batch_size)])
    decoded = decoded.clamp(0, 1).reshape(s, d, steps, *decoded.shape[1:])
    variation = decoded.std(dim=2).flatten(2).mean(dim=2).mean(dim=0)
    per_dim = None
    if map_plugin is not None:
        if x is None:
            with torch.no_grad(), evaluation_mode(model):
                x = model.decode(latent).float().clamp(0, 1)
        details = explain(model, x, plugin=map_plugin, **map_options).details
        expected = (s, seeds.shape[1], x.shape[2], x.shape[3])
        per_dim = _row_maps(details, map_plugin, [name for name, _ in rows], chosen, expected, notes)
        if per_dim is None and maps:
            raise XgenError(f"cannot draw per-dimension maps: {notes[-1].removeprefix('no per-dimension maps: ')}")
    result = Traversal(
        images=decoded,
        values=values.cpu(),
        dims=chosen,
        seeds=seeds.cpu(),
        seed_images=x.detach().cpu() if x is not None else None,
        variation=variation,
        threshold=threshold,
        floor=floor,
        span=float(span),
        relative=relative,
        maps=per_dim,
        plugin=map_plugin if per_dim is not None else None,
        notes=notes,
        names=[name for name, _ in rows],
    )
    inactive = int(result.inactive.sum())
    if inactive:
        notes.append(
            f"{inactive} of {d} dimensions change the decoded images less than {threshold:g} times the most varying "
            f"one or less than {floor:g} (inactive, collapsed to the prior); the picture shows them last, with grey "
            "labels."
        )
    return result
