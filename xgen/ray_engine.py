"""The Ray engine of `xgen explain` and `xgen evaluate`: the same batches as the local engine, on Ray Data workers.

The driver forms the batches exactly as the local engine does and hands Ray Data one row per batch; a fixed pool of
actors (`ray.data.ActorPoolStrategy(size=workers)`, the `compute=` keyword of Ray 2.60) loads the checkpoint once per
worker with xgen's safe loader and runs `explain_job.Work.process` (or, for evaluate, `_EvaluateBatch`) on each.
Ray restarts a killed actor and retries its batch, so a batch may run twice: every file is named from the image's
stem and written to a temporary name beside it, then renamed, so a second run rewrites the same bytes and nothing is
duplicated. The driver alone appends to the manifest, after a batch's files are in place; it shows the one progress
bar and, at the end, removes temporary files that a killed worker left. Plugins on the workers are found through the
entry points of the installed packages, as on the driver.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xgen.errors import XgenError

if TYPE_CHECKING:
    from xgen.explain_job import Item, Work, _Manifest
    from xgen.model import Model

#: Ray versions the engine is tested with; the batch-inference keywords changed twice between 2.9 and 2.60.
TESTED = "2.60"
_PRIVATE_MODEL = ".xgen-ray-model.pt"
#: How long the workers may take to start and load the model before the job fails (Ray Data's default is to start
#: work as soon as one is ready).
WAIT_FOR_WORKERS_S = 600


@dataclass(frozen=True)
class RaySettings:
    """Where and on how many workers: `address` "local" (a private instance sized to this machine, started and
    stopped here), "auto" (the running cluster) or HOST:PORT; `workers` actors with `cpus_per_worker` CPUs (a
    fraction is allowed) and `gpus_per_worker` GPUs each."""

    address: str = "local"
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise XgenError(f"--workers must be at least 1, got {self.workers}.")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise XgenError("--cpus-per-worker must be above 0 and --gpus-per-worker at least 0.")
        if not self.address:
            raise XgenError("--address takes local, auto or HOST:PORT of a Ray cluster.")

    @property
    def device(self) -> str:
        """Where a worker runs the model: the GPU Ray assigned it, if it asked for one."""
        return "cuda" if self.gpus_per_worker > 0 else "cpu"


def import_ray() -> Any:
    """The ray module, or XgenError saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise XgenError(
            "--engine ray needs Ray; install it with pip install 'xgen[ray]' on the driver and on every worker."
        ) from None
    return ray


@contextlib.contextmanager
def session(settings: RaySettings) -> Iterator[Any]:
    """Connect to Ray (or start a private instance for address "local", stopped on exit; a connection made
    earlier in this process is reused as is), with the dashboard and usage reporting off, Ray Data's own progress
    bars off; check the cluster can hold the workers before any work."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common = {"logging_level": logging.WARNING, "log_to_driver": False}
        if settings.address == "local":
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **common)
        else:
            try:
                ray.init(address=settings.address, **common)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                raise XgenError(
                    f"cannot connect to a Ray cluster at {settings.address} ({detail}); start one with 'ray start "
                    "--head' or pass --address local."
                ) from None
        started = True
    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.verbose_stats_logs = False
        _check_resources(ray, settings)
        yield ray
    finally:
        if started:
            ray.shutdown()


def _check_resources(ray: Any, settings: RaySettings) -> None:
    """XgenError unless the cluster has the CPUs and GPUs the workers ask for (a pool that cannot start waits)."""
    resources = ray.cluster_resources()
    for what, each in (("CPU", settings.cpus_per_worker), ("GPU", settings.gpus_per_worker)):
        need, have = settings.workers * each, float(resources.get(what, 0))
        if need > have + 1e-9:
            flag = f"--{what.lower()}s-per-worker"
            raise XgenError(
                f"{settings.workers} workers with {each:g} {what}s each need {need:g} {what}s but the Ray cluster "
                f"has {have:g}; pass fewer --workers or a smaller {flag}."
            )


def worker_name() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _map_batches(
    ray: Any, settings: RaySettings, rows: list[dict[str, Any]], actor: type, kwargs: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Each row through `actor(**kwargs)` on a fixed pool of workers, one row per call; the results (JSON in the
    column "result") as they arrive. Work starts once every worker has loaded the model (Ray Data would otherwise
    hand every batch to the first worker ready), and each worker holds at most two batches, so all share the job."""
    if not rows:
        return
    ray.data.DataContext.get_current().wait_for_min_actors_s = WAIT_FOR_WORKERS_S
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        actor,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=settings.workers, max_tasks_in_flight_per_actor=2),
        num_cpus=settings.cpus_per_worker,
        num_gpus=settings.gpus_per_worker or None,
        fn_constructor_kwargs=kwargs,
        batch_format="numpy",
    )
    for row in dataset.iter_rows():
        result = json.loads(row["result"])
        if "error" in result:
            raise XgenError(result["error"])
        if "arrays" in row:
            result["arrays"] = row["arrays"]
        yield result


def _threads(cpus: float) -> None:
    """torch on the whole CPUs a worker was given (at least one)."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))


class _ExplainBatch:
    """A Ray Data actor: loads the checkpoint once, then `Work.process` on each batch of items it is handed."""

    def __init__(self, checkpoint: str, trust: bool, settings: RaySettings, work: bytes, out: str) -> None:
        import ray.cloudpickle

        from xgen.checkpoint import load

        _threads(settings.cpus_per_worker)
        self.model = load(checkpoint, trust=trust, device=settings.device)
        self.work: Work = ray.cloudpickle.loads(work)
        self.out = Path(out)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray.cloudpickle

        items: list[Item] = ray.cloudpickle.loads(bytes(batch["items"][0]))
        try:
            rows, source = self.work.process(self.model, self.out, items)
            result: dict[str, Any] = {"rows": rows, "source": source, "worker": worker_name()}
        except XgenError as exc:
            result = {"error": str(exc)}
        except OSError as exc:
            from xgen.explain_job import write_error

            result = {"error": str(write_error(self.out, exc))}
        return {"result": np.array([json.dumps(result)])}


def _checkpoint_for_workers(model: Model, checkpoint: str | os.PathLike[str] | None, out: Path) -> str:
    """The checkpoint every worker loads: the one given, else `model` saved into the output folder."""
    if checkpoint is not None:
        return os.fspath(Path(checkpoint).resolve())
    if model.architecture is None:
        raise XgenError(
            "engine 'ray' loads the model from a checkpoint on every worker; pass checkpoint=PATH (a file every "
            "worker can read), or a model built by an xgen architecture."
        )
    from xgen.checkpoint import save

    return os.fspath(save(model, out / _PRIVATE_MODEL).resolve())


def sweep_temporaries(out: Path) -> int:
    """Remove the temporary files (`.NAME.*.part`) under `out` that a killed worker left; their count."""
    removed = 0
    for path in out.rglob(".*.part"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def explain_on_ray(
    settings: RaySettings,
    model: Model,
    checkpoint: str | os.PathLike[str] | None,
    trust: bool,
    work: Work,
    out: Path,
    batches: Sequence[Sequence[Item]],
    manifest: _Manifest,
    bar: Any,
    task: Any,
) -> set[str]:
    """`explain_job.run`'s batches on Ray; each batch enters the manifest as its result arrives. Returns the
    workers (host:pid) that explained the batches."""
    import ray.cloudpickle

    if not batches:
        return set()
    path = _checkpoint_for_workers(model, checkpoint, out)
    seen: set[str] = set()
    with session(settings) as ray:
        sweep_temporaries(out)
        rows = [{"items": ray.cloudpickle.dumps(list(batch))} for batch in batches]
        kwargs = {
            "checkpoint": path,
            "trust": trust,
            "settings": settings,
            "work": ray.cloudpickle.dumps(work),
            "out": os.fspath(out.resolve()),
        }
        try:
            for result in _map_batches(ray, settings, rows, _ExplainBatch, kwargs):
                rows_done = [tuple(row) for row in result["rows"]]
                manifest.add(result["source"], rows_done)
                seen.add(result["worker"])
                bar.advance(task, len(rows_done))
        finally:
            sweep_temporaries(out)
    return seen


class _EvaluateBatch:
    """A Ray Data actor for `xgen evaluate`: loads the checkpoint once; per batch of test images explains them,
    normalises each map as asked, and returns the explainer's scores, the scores of `how` and the partial of
    every map metric (stored as `.npy` files by the driver)."""

    def __init__(
        self,
        checkpoint: str,
        trust: bool,
        settings: RaySettings,
        plugin: str,
        options: dict[str, Any],
        scorer: str | None,
        metrics: list[str],
        scale: tuple[float, float] | None,
        normalize: str,
        seed: int,
    ) -> None:
        from xgen.checkpoint import load
        from xgen.evaluation import _parse_metrics

        _threads(settings.cpus_per_worker)
        self.model = load(checkpoint, trust=trust, device=settings.device)
        self.plugin, self.options, self.scorer = plugin, options, scorer
        self.metrics = _parse_metrics(metrics) or []
        self.scale, self.normalize, self.seed = scale, normalize, seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from xgen.api import explain
        from xgen.evaluation import _image_scores, _min_max, _per_image

        start = int(batch["start"][0])
        images = torch.from_numpy(np.ascontiguousarray(batch["images"][0]))
        masks = torch.from_numpy(np.ascontiguousarray(batch["masks"][0])) if "masks" in batch else None
        try:
            torch.manual_seed(self.seed + start)
            result = explain(self.model, images, self.plugin, **self.options)
            maps = result.anomaly_map.cpu()
            given = None if result.score is None else result.score.cpu()
            how = self.scorer or ("explainer" if given is not None else self.model.default_scorer) or "map max"
            scores = _image_scores(self.model, images, maps, given, how, len(images))
            if self.normalize == "per-image":
                maps = _per_image(maps)
            elif self.normalize == "normal-stats":
                assert self.scale is not None
                maps = _min_max(maps, *self.scale)
            arrays = {}
            if masks is not None:
                for k, item in enumerate(self.metrics):
                    for key, value in item.metric.shard(maps=maps, masks=masks).items():
                        arrays[f"{k}/{key}"] = value
            packed = io.BytesIO()
            np.savez(packed, **arrays)
            flags = {
                item.spec: int((maps >= item.metric.threshold).sum())
                for item in self.metrics
                if getattr(item.metric, "threshold", None) is not None
            }
            out = {
                "start": start,
                "how": how,
                "scores": scores.double().tolist(),
                "low": float(maps.min()),
                "high": float(maps.max()),
                "flagged": flags,
                "worker": worker_name(),
            }
        except XgenError as exc:
            return {"result": np.array([json.dumps({"error": str(exc)})]), "arrays": np.array([b""], dtype=object)}
        return {"result": np.array([json.dumps(out)]), "arrays": np.array([packed.getvalue()], dtype=object)}


def evaluate_on_ray(
    settings: RaySettings,
    model: Model,
    checkpoint: str | os.PathLike[str] | None,
    trust: bool,
    images: Any,
    masks: Any,
    plugin: str,
    options: dict[str, Any],
    scorer: str | None,
    metrics: Sequence[Any],
    scale: tuple[float, float] | None,
    normalize: str,
    seed: int,
    batch_size: int,
    bar: Any,
    task: Any,
    folder: Path,
) -> dict[str, Any]:
    """The test images (N, C, H, W) explained on Ray in batches of `batch_size`; returns image scores (N,) in
    order, where they came from, the metrics' merged values and what their thresholds flagged. Each batch's partials
    are stored in `folder` as `.npy` files as they arrive and merged from there a chunk at a time, so the driver
    never holds more than one batch's partials and one chunk of the merge."""
    path = _checkpoint_for_workers(model, checkpoint, folder)
    n = len(images)
    scores = np.zeros(n, dtype=np.float64)
    hows: set[str] = set()
    stored: dict[str, list[Path]] = {item.spec: [] for item in metrics}
    flagged: dict[str, int] = {}
    low, high = np.inf, -np.inf
    with session(settings) as ray:
        rows = []
        for start in range(0, n, batch_size):
            row = {"start": start, "images": images[start : start + batch_size].numpy()}
            if masks is not None:
                row["masks"] = masks[start : start + batch_size].numpy()
            rows.append(row)
        kwargs = {
            "checkpoint": path,
            "trust": trust,
            "settings": settings,
            "plugin": plugin,
            "options": options,
            "scorer": scorer,
            "metrics": [item.spec for item in metrics],
            "scale": scale,
            "normalize": normalize,
            "seed": seed,
        }
        for result in _map_batches(ray, settings, rows, _EvaluateBatch, kwargs):
            start = result["start"]
            values = result["scores"]
            scores[start : start + len(values)] = values
            hows.add(result["how"])
            low, high = min(low, result["low"]), max(high, result["high"])
            with np.load(io.BytesIO(result["arrays"]), allow_pickle=False) as packed:
                for name in packed.files:
                    k, key = name.split("/", 1)
                    shard = folder / f"{k}-{start}"
                    if not shard.exists():
                        shard.mkdir()
                        stored[metrics[int(k)].spec].append(shard)
                    np.save(shard / f"{key}.npy", packed[name], allow_pickle=False)
            for spec, count in result["flagged"].items():
                flagged[spec] = flagged.get(spec, 0) + count
            bar.advance(task, len(values))
    return {"scores": scores, "hows": hows, "stored": stored, "flagged": flagged, "low": low, "high": high}


class StoredPartial:
    """A partial kept as `.npy` files in a folder, each array memory-mapped afresh on every access (and unmapped
    when dropped), so merging reads it a slice at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __getitem__(self, key: str) -> np.ndarray:
        return np.load(self.folder / f"{key}.npy", mmap_mode="r", allow_pickle=False)

    def keys(self) -> list[str]:
        return [p.stem for p in self.folder.glob("*.npy")]


def merged_value(metric: Any, folders: Sequence[Path]) -> float:
    """A metric's value from the partials stored in `folders`."""
    return metric.merged(StoredPartial(folder) for folder in folders)
