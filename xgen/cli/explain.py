"""`xgen explain --model ckpt.pt [--plugin NAME] INPUT... | --data SPEC`."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xgen.cli.app import app, file_digest, parse_sets
from xgen.errors import XgenError

if TYPE_CHECKING:
    import torch

    from xgen.data import ImageSet
    from xgen.explain_job import Item, JobResult


def _file_items(inputs: list[Path], expected: tuple[int, int, int] | None, resize: bool, any_size: bool) -> list[Item]:
    """One item per image file; a model that takes any size gets each image at its own size unless `resize`."""
    from xgen import images
    from xgen.explain_job import Item

    files = images.collect(inputs)
    shapes = [images.probe(f.path) for f in files]
    own_size = any_size and expected is not None and not resize
    items = []
    for f, shape in zip(files, shapes, strict=True):
        target = (expected[0], *shape[1:]) if own_size else expected or shapes[0]
        images.check_fits(f.path, shape, target, resize)
        size = (shape[1], shape[2]) if own_size else None
        items.append(Item(f.stem, str(f.path), functools.partial(images.read, f.path, target, resize), size))
    return items


@functools.cache
def _test_split(spec: str) -> ImageSet:
    """The test split of a dataset, opened once per process (a Ray worker opens it on its first image)."""
    from xgen.plugins import open_dataset

    return open_dataset(spec).test()


@dataclass(frozen=True)
class _DataImage:
    """Image `index` of the test split of `spec`: a loader that pickles as two values, for Ray workers."""

    spec: str
    index: int

    def __call__(self) -> torch.Tensor:
        return _test_split(self.spec).images[self.index]


def _data_items(spec: str) -> list[Item]:
    from xgen.explain_job import Item

    test = _test_split(spec)
    return [Item(Path(name), name, _DataImage(spec, i)) for i, name in enumerate(test.names)]


@app.command()
def explain(
    model: Annotated[Path, typer.Option(help="Checkpoint: xgen, TorchScript, or trusted pickle.")],
    inputs: Annotated[list[Path] | None, typer.Argument(help="Image files or folders of images.")] = None,
    plugin: Annotated[str | None, typer.Option(help="Explainer (default: the checkpoint's).")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Explainer option key=value (repeatable).")] = None,
    scorer: Annotated[
        str | None,
        typer.Option(
            help="Scorer for scores.csv, e.g. recon-error or NAME:key=value (default: the explainer's scores, "
            "else the model's scorer, else each map's maximum)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for <stem>.npy, <stem>.png and scores.csv.")] = Path("maps"),
    outputs: Annotated[
        str, typer.Option(help="What to write: a comma-separated subset of npy (maps), png (overlays), csv (scores).")
    ] = "npy,png,csv",
    data: Annotated[
        str | None, typer.Option(help="Explain a dataset's test split instead, e.g. digits:normal=1.")
    ] = None,
    resize: Annotated[
        bool, typer.Option(help="Resize images to the model's input size (models that take any size need not).")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Images per forward/backward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    trust_checkpoint: Annotated[
        bool, typer.Option(help="Allow a fully pickled checkpoint, which can run code: only for trusted files.")
    ] = False,
    engine: Annotated[str, typer.Option(help="local, or ray: a Ray cluster (needs the ray extra of xgen).")] = "local",
    address: Annotated[
        str,
        typer.Option(
            help="With --engine ray: local (a private Ray instance), auto (the running cluster) or HOST:PORT."
        ),
    ] = "local",
    workers: Annotated[int, typer.Option(help="With --engine ray: worker processes.")] = 2,
    cpus_per_worker: Annotated[float, typer.Option(help="With --engine ray: CPUs each worker claims.")] = 1.0,
    gpus_per_worker: Annotated[float, typer.Option(help="With --engine ray: GPUs each worker claims.")] = 0.0,
) -> None:
    """Write an anomaly map (.npy), an overlay (.png) per image, and scores.csv; reruns finish interrupted work."""
    from xgen.checkpoint import load
    from xgen.explain_job import parse_outputs, run
    from xgen.training import resolve_device

    if bool(inputs) == bool(data):
        raise XgenError("give image files or folders, or --data SPEC, but not both and not neither.")
    if batch_size < 1:
        raise XgenError("--batch-size must be at least 1.")
    if engine == "ray":
        from xgen.ray_engine import RaySettings, import_ray

        RaySettings(address, workers, cpus_per_worker, gpus_per_worker)
        import_ray()
    elif engine != "local":
        raise XgenError(f"--engine takes local or ray, got '{engine}'.")
    asked = parse_outputs(outputs)
    options = parse_sets(sets)
    with ThreadPoolExecutor(1) as hasher:
        wrapped = load(model, trust=trust_checkpoint, device=resolve_device(device))
        digest = hasher.submit(file_digest, model)
        items = _data_items(data) if data else _file_items(inputs or [], wrapped.input_shape, resize, wrapped.any_size)
        model_id = digest.result()
    result = run(
        wrapped,
        items,
        out,
        plugin=plugin,
        options=options,
        model_id=model_id,
        scorer=scorer,
        outputs=asked,
        batch_size=batch_size,
        progress=True,
        engine=engine,
        checkpoint=model,
        trust=trust_checkpoint,
        address=address,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
    )
    typer.echo(summary(result, out, asked))


def summary(result: JobResult, out: Path, outputs: tuple[str, ...]) -> str:
    """The closing line: what was explained, where each output went, and where the scores came from."""
    skipped = f", {result.skipped} were already done" if result.skipped else ""
    written = [what for kind, what in (("npy", "maps"), ("png", "overlays")) if kind in outputs]
    parts = [f"{' and '.join(written)} in {out}/"] if written else []
    if "csv" in outputs:
        parts.append(f"scores in {out}/scores.csv (from {' and '.join(result.sources) or 'nowhere'})")
    line = f"Explained {result.explained} images{skipped}: {', '.join(parts)}."
    values = [v for v in result.scores.values() if v is not None]
    flat = len(values) > 1 and min(values) == max(values)
    if "csv" in outputs and result.sources == ["maximum of each map"] and flat:
        line += (
            "\nNote: every map has the same maximum, so these scores do not rank the images; pass --scorer NAME "
            "(xgen plugins lists the scorers)."
        )
    return line
