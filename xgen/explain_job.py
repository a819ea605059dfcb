"""Explaining many images into a folder: one `.npy` map and one `.png` overlay per image, and `scores.csv`.

Every file is written atomically, and a manifest (`.xgen-explain.json`) records each finished image after its
batch, so an interrupted run leaves only complete files and a rerun with the same model, plugin and options
finishes the rest instead of starting over.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from xgen.api import explain
from xgen.errors import XgenError
from xgen.files import atomic_path, ensure_writable_dir, write_text
from xgen.model import Model
from xgen.plugins import lookup
from xgen.progress import progress_bar
from xgen.visualize import overlay, save_png

MANIFEST = ".xgen-explain.json"


@dataclass(frozen=True)
class Item:
    """One image to explain: its output stem, the label written in scores.csv, how to load it (C, H, W), and its
    (H, W) when images of several sizes go to a model that takes any size (batches never mix sizes)."""

    stem: PurePath
    label: str
    load: Callable[[], torch.Tensor]
    size: tuple[int, int] | None = None


@dataclass
class JobResult:
    out: Path
    explained: int
    skipped: int
    scores: dict[str, float | None]


def output_path(out: Path, stem: PurePath | str, suffix: str) -> Path:
    """out/stem + suffix; stems may contain dots ("scan.v2"), so the suffix is appended, never substituted."""
    return out / f"{stem}{suffix}"


def _read_manifest(path: Path, identity: dict[str, Any]) -> dict[str, float | None]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if manifest.get("identity") != identity:
        return {}
    return dict(manifest.get("scores", {}))


def run(
    model: Model,
    items: Sequence[Item],
    out: Path,
    *,
    plugin: str | None,
    options: dict[str, Any],
    model_id: str | None,
    batch_size: int = 64,
    progress: bool = False,
) -> JobResult:
    """Explain `items` with `plugin` into `out`; validate everything that can be checked before any work."""
    name = plugin or model.default_explainer
    if name is None:
        raise XgenError("this model names no default explainer; pass --plugin NAME (xgen plugins lists them).")
    explainer_cls = lookup("explainer", name)
    explainer_cls(**options)
    model.check_requires(explainer_cls.requires, f"explainer '{name}'")
    out = ensure_writable_dir(out)
    identity = {"model": model_id, "plugin": name, "options": {k: str(v) for k, v in sorted(options.items())}}
    manifest_path = out / MANIFEST
    done = _read_manifest(manifest_path, identity) if model_id else {}
    done = {
        stem: score
        for stem, score in done.items()
        if output_path(out, stem, ".npy").is_file() and output_path(out, stem, ".png").is_file()
    }
    todo = [item for item in items if str(item.stem) not in done]
    scores = dict(done)
    with progress_bar(progress) as bar:
        task = bar.add_task(f"explain {name}", total=len(todo), status="")
        for batch in _batches(todo, batch_size):
            x = torch.stack([item.load() for item in batch])
            result = explain(model, x, plugin=name, **options).cpu()
            for i, item in enumerate(batch):
                output_path(out, item.stem, "").parent.mkdir(parents=True, exist_ok=True)
                amap = result.anomaly_map[i].numpy().astype(np.float32)
                with atomic_path(output_path(out, item.stem, ".npy")) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, amap)
                save_png(overlay(x[i].cpu().numpy(), amap), output_path(out, item.stem, ".png"))
                scores[str(item.stem)] = None if result.score is None else float(result.score[i])
            write_text(manifest_path, json.dumps({"identity": identity, "scores": scores}, indent=1))
            bar.advance(task, len(batch))
    _write_scores(out / "scores.csv", items, scores)
    return JobResult(out, explained=len(todo), skipped=len(items) - len(todo), scores=scores)


def _batches(items: Sequence[Item], batch_size: int) -> list[list[Item]]:
    """Chunks of at most `batch_size` items of one size each, sizes in order of first appearance."""
    by_size: dict[tuple[int, int] | None, list[Item]] = {}
    for item in items:
        by_size.setdefault(item.size, []).append(item)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def _write_scores(path: Path, items: Sequence[Item], scores: dict[str, float | None]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "score"])
    for item in items:
        score = scores.get(str(item.stem))
        writer.writerow([item.label, "" if score is None or math.isnan(score) else f"{score:.8g}"])
    write_text(path, buffer.getvalue())
