"""`xgen explain --model ckpt.pt [--plugin NAME] INPUT... | --data SPEC`."""

from pathlib import Path
from typing import Annotated

import typer

from xgen import images
from xgen.checkpoint import load
from xgen.cli.app import app, file_digest, parse_sets
from xgen.errors import XgenError
from xgen.explain_job import Item, run
from xgen.plugins import open_dataset
from xgen.training import resolve_device


def _file_items(inputs: list[Path], expected: tuple[int, int, int] | None, resize: bool, any_size: bool) -> list[Item]:
    """One item per image file; a model that takes any size gets each image at its own size unless `resize`."""
    files = images.collect(inputs)
    shapes = [images.probe(f.path) for f in files]
    own_size = any_size and expected is not None and not resize
    items = []
    for f, shape in zip(files, shapes, strict=True):
        target = (expected[0], *shape[1:]) if own_size else expected or shapes[0]
        images.check_fits(f.path, shape, target, resize)
        size = (shape[1], shape[2]) if own_size else None
        items.append(Item(f.stem, str(f.path), lambda p=f.path, t=target: images.read(p, t, resize), size))
    return items


def _data_items(spec: str) -> list[Item]:
    test = open_dataset(spec).test()
    return [Item(Path(name), name, lambda i=i: test.images[i]) for i, name in enumerate(test.names)]


@app.command()
def explain(
    model: Annotated[Path, typer.Option(help="Checkpoint: xgen, TorchScript, or trusted pickle.")],
    inputs: Annotated[list[Path] | None, typer.Argument(help="Image files or folders of images.")] = None,
    plugin: Annotated[str | None, typer.Option(help="Explainer (default: the checkpoint's).")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Explainer option key=value (repeatable).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for <stem>.npy, <stem>.png and scores.csv.")] = Path("maps"),
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
) -> None:
    """Write an anomaly map (.npy), an overlay (.png) per image, and scores.csv; reruns finish interrupted work."""
    if bool(inputs) == bool(data):
        raise XgenError("give image files or folders, or --data SPEC, but not both and not neither.")
    if batch_size < 1:
        raise XgenError("--batch-size must be at least 1.")
    options = parse_sets(sets)
    wrapped = load(model, trust=trust_checkpoint, device=resolve_device(device))
    items = _data_items(data) if data else _file_items(inputs or [], wrapped.input_shape, resize, wrapped.any_size)
    result = run(
        wrapped,
        items,
        out,
        plugin=plugin,
        options=options,
        model_id=file_digest(model),
        batch_size=batch_size,
        progress=True,
    )
    skipped = f", {result.skipped} were already done" if result.skipped else ""
    typer.echo(
        f"Explained {result.explained} images{skipped}: maps and overlays in {out}/, scores in {out}/scores.csv."
    )
    if all(score is None for score in result.scores.values()):
        name = plugin or wrapped.default_explainer
        typer.echo(f"Note: {name} gives maps only, so scores.csv lists the files with empty scores.")
