"""Explaining many images into a folder: per image a `.npy` map and a `.png` overlay, and one `scores.csv`.

The batch loop explains while a bounded pool of writer threads colours, encodes and writes the previous batches'
files (zlib, numpy and file I/O release the GIL, so this uses every core) and a reader thread decodes the next batch.
Every file is written atomically (a temporary file, then a rename), and a manifest (`.xgen-explain.jsonl`) gets one
line per group of images only after all of that group's files are in place, with their sizes: an interrupted run
leaves only complete files, and a rerun with the same model, plugin, options and scorer writes only the images that
are missing, or whose files no longer have the recorded size (as after a power cut before the data reached the disk).

What happens to a batch (explain, score, write each file atomically under a name from the image's stem) is `Work`,
the same on both engines: the local one runs its steps in the pipeline above; `engine="ray"` (`xgen.ray_engine`)
runs `Work.process` on whole batches in Ray workers, and the driver keeps the manifest.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import IO, Any

import numpy as np
import torch

from xgen.api import _scorer, explain, parse_scorer, score
from xgen.errors import XgenError
from xgen.files import ensure_writable_dir, write_bytes, write_text
from xgen.methods import Explanation
from xgen.model import Model
from xgen.plugins import lookup
from xgen.progress import progress_bar
from xgen.visualize import encode_pngs, enlargement, overlays

MANIFEST = ".xgen-explain.jsonl"
_Sizes = tuple[int | None, int | None]
#: A manifest row: stem, score, .npy size, .png size.
Row = tuple[str, float | None, int | None, int | None]
OUTPUTS: tuple[str, ...] = ("npy", "png", "csv")
ENGINES: tuple[str, ...] = ("local", "ray")


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
    """What `run` did: images explained now and found done, each stem's score (None where none was asked for),
    where the scores came from ("explainer cavga", "scorer recon-error", "maximum of each map") and, on Ray, the
    worker processes (host:pid) that explained them."""

    out: Path
    explained: int
    skipped: int
    scores: dict[str, float | None]
    sources: list[str] = field(default_factory=list)
    workers: set[str] = field(default_factory=set)


def output_path(out: Path, stem: PurePath | str, suffix: str) -> Path:
    """out/stem + suffix; stems may contain dots ("scan.v2"), so the suffix is appended, never substituted."""
    return out / f"{stem}{suffix}"


def parse_outputs(text: str) -> tuple[str, ...]:
    """ "npy,png,csv" or any non-empty subset, in any order -> the outputs in the order of OUTPUTS."""
    asked = {part.strip() for part in text.split(",") if part.strip()}
    if not asked or not asked <= set(OUTPUTS):
        raise XgenError(f"--outputs takes a comma-separated list of npy, png and csv (e.g. npy,csv), got '{text}'.")
    return tuple(kind for kind in OUTPUTS if kind in asked)


@dataclass
class _Scoring:
    """Image scores the way `xgen evaluate` finds them: the scorer asked for, else the explainer's own scores, else
    the model's default scorer, else the maximum of each map. A default scorer that cannot run on this model is an
    error only if it is needed."""

    explainer: str
    name: str | None
    options: dict[str, str]
    spec: str | None
    chosen: bool
    error: XgenError | None = None

    @classmethod
    def resolve(cls, model: Model, explainer: str, spec: str | None) -> _Scoring:
        if spec is not None:
            name, options = parse_scorer(spec)
            _check_scorer(model, name, options)
            return cls(explainer, name, options, spec, chosen=True)
        name, error = model.default_scorer, None
        if name is not None:
            try:
                _check_scorer(model, name, {})
            except XgenError as exc:
                error = exc
        return cls(explainer, name, {}, name, chosen=False, error=error)

    def __call__(self, model: Model, x: torch.Tensor, result: Explanation, maps: np.ndarray) -> tuple[list[float], str]:
        """Scores of the batch x: (N, C, H, W) explained as `result` with maps (N, H, W), and their source."""
        if self.chosen or (result.score is None and self.name is not None):
            if self.error is not None:
                raise self.error
            values = score(model, x, self.name, **self.options).cpu().double()
            return values.tolist(), f"scorer {self.spec}"
        if result.score is not None:
            return result.score.detach().cpu().double().tolist(), f"explainer {self.explainer}"
        return maps.reshape(len(maps), -1).max(axis=1).astype(np.float64).tolist(), "maximum of each map"


def _check_scorer(model: Model, name: str, options: dict[str, str]) -> None:
    scorer = _scorer(model, name, options)
    if scorer.learns():
        scorer.fitted(model)


@dataclass(frozen=True)
class Work:
    """What a job does to each batch, the same on every engine: explain it, score it, write its files atomically
    under names from each image's stem. The local engine runs these steps in its pipeline; a Ray worker runs
    `process` on whole batches (`xgen.ray_engine`)."""

    name: str
    options: dict[str, Any]
    scoring: _Scoring
    outputs: tuple[str, ...]
    durable: bool

    @classmethod
    def build(
        cls, model: Model, name: str, options: dict[str, Any], scorer: str | None, outputs: Sequence[str], durable: bool
    ) -> Work:
        """Check the explainer, its options and the scorer against `model` before any work."""
        explainer_cls = lookup("explainer", name)
        explainer_cls(**options)
        model.check_requires(explainer_cls.requires, f"explainer '{name}'")
        return cls(name, options, _Scoring.resolve(model, name, scorer), tuple(outputs), durable)

    def explain(self, model: Model, x: torch.Tensor) -> tuple[np.ndarray, list[float | None], str | None]:
        """x: (n, C, H, W) -> maps (n, H, W) little-endian float32, each image's score (None unless csv is
        written) and the scores' source."""
        result = explain(model, x, plugin=self.name, **self.options)
        maps = result.anomaly_map.detach().cpu().numpy().astype("<f4", copy=False)
        values: list[float | None] = [None] * len(x)
        source = None
        if "csv" in self.outputs:
            values[:], source = self.scoring(model, x, result, maps)
        return maps, values, source

    def write(self, out: Path, stems: list[str], images: np.ndarray | None, maps: np.ndarray) -> list[_Sizes]:
        """The files of some images of one batch, images: (n, C, H, W) or None without png, maps: (n, H, W)
        float32; the sizes of each image's .npy and .png (None for an output not asked for)."""
        return _write_group(out, stems, images, maps, self.outputs, self.durable)

    def process(self, model: Model, out: Path, batch: Sequence[Item]) -> tuple[list[Row], str | None]:
        """A whole batch at once: load, explain, score, write; its manifest rows (stem, score, .npy and .png
        sizes) and the scores' source. Rerunning it rewrites the same bytes under the same names."""
        x = _load(batch)
        maps, values, source = self.explain(model, x)
        stems = [str(item.stem) for item in batch]
        images = x.numpy() if "png" in self.outputs else None
        sizes = self.write(out, stems, images, maps)
        return [(s, v, npy, png) for s, v, (npy, png) in zip(stems, values, sizes, strict=True)], source


class _Manifest:
    """The record of finished images: a JSON-lines file whose first line is the job's identity and each further line
    a group of images whose files are all on disk: {"source": ..., "images": [[stem, score, npy bytes, png bytes]]}.
    A line cut short by an interruption is ignored; so is the whole file when the identity differs."""

    def __init__(self, path: Path, identity: dict[str, Any], resume: bool, durable: bool) -> None:
        self.entries: dict[str, tuple[float | None, str | None, int | None, int | None]] = {}
        self.path, self.identity, self.durable = path, identity, durable
        self.file: IO[str] | None = None
        lines = _read_lines(path) if resume else []
        self.fresh = not lines or lines[0] != {"identity": identity}
        if not self.fresh:
            for line in lines[1:]:
                for stem, value, npy, png in line.get("images", []):
                    self.entries[stem] = (value, line.get("source"), npy, png)

    def done(self, out: Path, stem: str, outputs: Sequence[str]) -> bool:
        """Whether `stem` was finished with every output asked for, and its files still have the recorded sizes."""
        entry = self.entries.get(stem)
        if entry is None:
            return False
        value, _, npy, png = entry
        for kind, size in (("npy", npy), ("png", png)):
            if kind in outputs and (size is None or _size(output_path(out, stem, f".{kind}")) != size):
                return False
        return "csv" not in outputs or value is not None

    def add(self, source: str | None, rows: list[tuple[str, float | None, int | None, int | None]]) -> None:
        """Record a group of finished images (stem, score, .npy size, .png size), starting the file if needed."""
        if self.file is None:
            if self.fresh:
                write_text(self.path, json.dumps({"identity": self.identity}) + "\n")
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())
        for stem, value, npy, png in rows:
            self.entries[stem] = (value, source, npy, png)
        self.file.write(json.dumps({"source": source, "images": rows}) + "\n")
        self.file.flush()
        if self.durable:
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def run(
    model: Model,
    items: Sequence[Item],
    out: Path,
    *,
    plugin: str | None,
    options: dict[str, Any],
    model_id: str | None,
    scorer: str | None = None,
    outputs: Sequence[str] = OUTPUTS,
    batch_size: int = 64,
    writers: int | None = None,
    threads: int | None = None,
    durable: bool = False,
    progress: bool = False,
    engine: str = "local",
    checkpoint: str | os.PathLike[str] | None = None,
    trust: bool = False,
    address: str = "local",
    workers: int = 2,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
) -> JobResult:
    """Explain `items` with `plugin` into `out`, writing `outputs` (a subset of npy, png, csv); validate everything
    that can be checked before any work. `scorer` ("NAME" or "NAME:key=value,...") chooses the image scores.
    `writers` threads write the files while torch explains on `threads` (restored afterwards); the defaults come from
    `thread_split`. `model_id` (e.g. the checkpoint's sha256) lets a rerun resume. `durable` syncs every file to
    disk before it counts as done, which costs more than explaining small images; without it a file that a power
    cut left short is caught by its recorded size and redone.

    `engine="ray"` explains the same batches on a Ray cluster (`xgen.ray_engine`): `workers` processes with
    `cpus_per_worker` CPUs and `gpus_per_worker` GPUs each, on the cluster at `address` ("local" starts a private
    one, "auto" finds a running one, or HOST:PORT). Each worker loads `checkpoint` (default: `model` saved into
    `out`) with xgen's safe loader (`trust` as for `xgen.load`); `out` must be a folder every worker can write."""
    name = plugin or model.default_explainer
    if name is None:
        raise XgenError("this model names no default explainer; pass --plugin NAME (xgen plugins lists them).")
    outputs = parse_outputs(",".join(outputs))
    if batch_size < 1 or (writers is not None and writers < 1) or (threads is not None and threads < 1):
        raise XgenError("batch_size, writers and threads must be at least 1.")
    if engine not in ENGINES:
        raise XgenError(f"engine must be one of {', '.join(ENGINES)}, got '{engine}'.")
    settings = None
    if engine == "ray":
        from xgen.ray_engine import RaySettings, import_ray

        settings = RaySettings(address, workers, cpus_per_worker, gpus_per_worker)
        import_ray()
    work = Work.build(model, name, options, scorer, outputs, durable)
    out = ensure_writable_dir(out)
    identity = {
        "model": model_id,
        "plugin": name,
        "options": {k: str(v) for k, v in sorted(options.items())},
        "scorer": scorer,
    }
    manifest = _Manifest(out / MANIFEST, identity, resume=model_id is not None, durable=durable)
    todo = [item for item in items if not manifest.done(out, str(item.stem), outputs)]
    workers_seen: set[str] = set()
    try:
        with progress_bar(progress) as bar:
            task = bar.add_task(f"explain {name}", total=len(todo), status="")
            if settings is not None:
                from xgen.ray_engine import explain_on_ray

                workers_seen = explain_on_ray(
                    settings, model, checkpoint, trust, work, out, _batches(todo, batch_size), manifest, bar, task
                )
            else:
                _explain_locally(model, todo, out, work, batch_size, writers, threads, manifest, bar, task)
    finally:
        manifest.close()
    entries = [manifest.entries.get(str(item.stem), (None, None, None, None)) for item in items]
    scores = {str(item.stem): entry[0] for item, entry in zip(items, entries, strict=True)}
    sources = sorted({entry[1] for entry in entries if entry[0] is not None and entry[1] is not None})
    if "csv" in outputs:
        _write_scores(out / "scores.csv", items, manifest)
    return JobResult(
        out, explained=len(todo), skipped=len(items) - len(todo), scores=scores, sources=sources, workers=workers_seen
    )


def _explain_locally(
    model: Model,
    todo: Sequence[Item],
    out: Path,
    work: Work,
    batch_size: int,
    writers: int | None,
    threads: int | None,
    manifest: _Manifest,
    bar: Any,
    task: Any,
) -> None:
    """The local engine: the pipeline of `_explain_and_write` on this process's CPUs (see `thread_split`)."""
    pixels = model.input_shape[1] * model.input_shape[2] if model.input_shape is not None else None
    default_writers, default_threads = thread_split(work.outputs, writers, pixels)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    try:
        _explain_and_write(model, todo, out, work, batch_size, writers or default_writers, manifest, bar, task)
    finally:
        torch.set_num_threads(torch_threads)


def _explain_and_write(
    model: Model,
    todo: Sequence[Item],
    out: Path,
    work: Work,
    batch_size: int,
    writers: int,
    manifest: _Manifest,
    bar: Any,
    task: Any,
) -> None:
    """The pipeline: read batch k+1 | explain batch k | write batches k-1, k-2 in groups on `writers` threads. At
    most two batches' files wait to be written; a group enters the manifest once all its files are on disk. When
    the job stops (an interrupt, a bad image), the groups already explained are still written and recorded."""
    batches = _batches(todo, batch_size)
    groups_per_batch = min(writers, batch_size)
    pending: collections.deque[tuple[Future[list[_Sizes]], list[str], list[float | None], str | None]]
    pending = collections.deque()

    def finish(keep: int) -> None:
        """Record finished groups, oldest first, waiting for the oldest while more than `keep` are pending."""
        while pending and (len(pending) > keep or pending[0][0].done()):
            future, stems, values, source = pending.popleft()
            try:
                sizes = future.result()
            except OSError as exc:
                raise write_error(out, exc) from None
            manifest.add(source, [(s, v, npy, png) for s, v, (npy, png) in zip(stems, values, sizes, strict=True)])
            bar.advance(task, len(stems))

    reader = ThreadPoolExecutor(1, thread_name_prefix="xgen-read")
    pool = ThreadPoolExecutor(writers, thread_name_prefix="xgen-write")
    try:
        upcoming = reader.submit(_load, batches[0]) if batches else None
        for k, batch in enumerate(batches):
            assert upcoming is not None
            x = upcoming.result()
            if k + 1 < len(batches):
                upcoming = reader.submit(_load, batches[k + 1])
            maps, values, source = work.explain(model, x)
            images = x.numpy() if "png" in work.outputs else None
            step = -(-len(batch) // groups_per_batch)
            for start in range(0, len(batch), step):
                part = slice(start, start + step)
                stems = [str(item.stem) for item in batch[part]]
                future = pool.submit(work.write, out, stems, None if images is None else images[part], maps[part])
                pending.append((future, stems, values[part], source))
            finish(keep=2 * groups_per_batch)
        finish(keep=0)
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True)
        while pending:
            future, stems, values, source = pending.popleft()
            if future.done() and not future.cancelled() and future.exception() is None:
                sizes = future.result()
                manifest.add(source, [(s, v, n, p) for s, v, (n, p) in zip(stems, values, sizes, strict=True)])


def write_error(out: Path, exc: OSError) -> XgenError:
    """The one sentence for a failed write into `out`."""
    return XgenError(
        f"cannot write to {out} ({exc.strerror or type(exc).__name__}); free some space or choose another --out folder."
    )


def thread_split(
    outputs: Sequence[str] = OUTPUTS, writers: int | None = None, pixels: int | None = None
) -> tuple[int, int]:
    """The default (writer threads, torch threads) of `run` on this machine, for images of `pixels` pixels. Overlays
    cost CPU: half the CPUs this process may use write them (at most 4) and torch explains on the rest, so the two
    never fight over a core, which stalls torch's thread team. Without overlays, on images of 128 x 128 pixels or
    more, one writer suffices and torch gets every CPU; smaller images gain less from torch's threads than the
    reader and writer threads then cost them (measured in benchmarks/explain_speed.py)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if "png" not in outputs and (pixels is None or pixels >= 128 * 128):
        return writers or 1, cpus
    writers = writers or max(1, min(4, cpus // 2))
    return writers, max(1, cpus - writers)


def _load(batch: Sequence[Item]) -> torch.Tensor:
    return torch.stack([item.load() for item in batch])


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy header of a little-endian float32 C-order array of `shape` (the bytes np.save writes first)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _write_group(
    out: Path, stems: list[str], images: np.ndarray | None, maps: np.ndarray, outputs: tuple[str, ...], durable: bool
) -> list[_Sizes]:
    """On a writer thread: the files of some images of one batch, images: (n, C, H, W), maps: (n, H, W) float32.
    Returns the sizes of each image's .npy and .png (None for an output not asked for)."""
    header = _npy_header(maps.shape[1:])
    pngs = encode_pngs(overlays(images, maps), enlargement(*maps.shape[1:])) if images is not None else None
    sizes = []
    for i, stem in enumerate(stems):
        base = os.path.join(out, stem)
        if "/" in stem or os.sep in stem:
            os.makedirs(os.path.dirname(base), exist_ok=True)
        npy = png = None
        if "npy" in outputs:
            npy = write_bytes(base + ".npy", header, maps[i].tobytes(), durable=durable)
        if pngs is not None:
            png = write_bytes(base + ".png", pngs[i], durable=durable)
        sizes.append((npy, png))
    return sizes


def _batches(items: Sequence[Item], batch_size: int) -> list[list[Item]]:
    """Chunks of at most `batch_size` items of one size each, sizes in order of first appearance."""
    by_size: dict[tuple[int, int] | None, list[Item]] = {}
    for item in items:
        by_size.setdefault(item.size, []).append(item)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def _write_scores(path: Path, items: Sequence[Item], manifest: _Manifest) -> None:
    """scores.csv: file, score and where the score came from, one row per item in input order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "score", "source"])
    for item in items:
        value, source, _, _ = manifest.entries.get(str(item.stem), (None, None, None, None))
        shown = "" if value is None or math.isnan(value) else f"{value:.8g}"
        writer.writerow([item.label, shown, source or ""])
    write_text(path, buffer.getvalue())
