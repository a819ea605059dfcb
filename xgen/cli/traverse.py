"""`xgen traverse --model ckpt.pt --out grid.png [IMAGES... | --data SPEC]`: latent traversal pictures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xgen.cli.app import app, parse_sets
from xgen.errors import XgenError

if TYPE_CHECKING:
    import torch

    from xgen.model import Model


def parse_dims(text: str | None) -> list[int] | None:
    """ "0,1,5" -> [0, 1, 5]; None stays None (every dimension)."""
    if text is None:
        return None
    try:
        dims = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        dims = []
    if not dims:
        raise XgenError(f"--dims takes comma-separated latent indices such as 0,1,2, got '{text}'.")
    return dims


def _file_images(inputs: list[Path], model: Model, n: int, resize: bool) -> tuple[torch.Tensor, str]:
    """The first n images of the files and folders given, read at the model's input size."""
    import torch

    from xgen import images

    files = images.collect(inputs)[:n]
    shapes = [images.probe(f.path) for f in files]
    expected = model.input_shape or shapes[0]
    for f, shape in zip(files, shapes, strict=True):
        images.check_fits(f.path, shape, expected, resize)
    return torch.stack([images.read(f.path, expected, resize) for f in files]), f"{len(files)} images given"


def _data_images(spec: str, n: int, seed: int) -> tuple[torch.Tensor, str]:
    """n test images of dataset `spec`, chosen at random with `seed`."""
    import torch

    from xgen.plugins import open_dataset

    dataset = open_dataset(spec)
    test = dataset.test()
    if len(test) == 0:
        raise XgenError(f"the test split of {dataset.spec()} is empty; check its options or pass image files.")
    chosen = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return test.images[chosen], f"{len(chosen)} test images of {dataset.spec()}"


@app.command()
def traverse(
    model: Annotated[Path, typer.Option(help="Checkpoint: xgen, TorchScript, or trusted pickle.")],
    out: Annotated[Path, typer.Option(help="PNG to write (its folder must exist).")] = Path("traversal.png"),
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="Seed image files or folders (the first --n images are used).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Take seed images from this dataset's test split (default: the data the model trained on)."),
    ] = None,
    n: Annotated[int, typer.Option(help="How many seed images (or prior samples).")] = 3,
    span: Annotated[float, typer.Option(help="Each dimension goes from its seed value - span to + span.")] = 2.0,
    steps: Annotated[int, typer.Option(help="Values per traversal (odd: the seed's own decoding is the middle).")] = 9,
    dims: Annotated[
        str | None,
        typer.Option(help="Latent dimensions to traverse, e.g. 0,1,2 (default: the model's codes, else all)."),
    ] = None,
    absolute: Annotated[
        bool, typer.Option(help="Set each dimension to -span ... +span instead of moving it around the seed value.")
    ] = False,
    plugin: Annotated[
        str | None,
        typer.Option(help="Explainer of the per-dimension maps (default: the checkpoint's dimension explainer)."),
    ] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Explainer option key=value (repeatable).")] = None,
    maps: Annotated[
        bool | None,
        typer.Option("--maps/--no-maps", help="Require the per-dimension maps, or draw none (default: when possible)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the image choice from --data and of prior samples.")] = 0,
    resize: Annotated[bool, typer.Option(help="Resize image files to the model's input size.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    trust_checkpoint: Annotated[
        bool, typer.Option(help="Allow a fully pickled checkpoint, which can run code: only for trusted files.")
    ] = False,
) -> None:
    """Write a latent traversal picture: a block per seed, one row per latent dimension varied over --steps values,
    and beside each row the seed image's attention map of that dimension. Encoder models start from seed images
    (files, --data, or by default the test split of their training data); decoder-only models from prior samples."""
    from xgen.checkpoint import load
    from xgen.training import resolve_device
    from xgen.traversal import check_png_path
    from xgen.traversal import traverse as run_traversal

    if inputs and data:
        raise XgenError("give seed image files or folders, or --data SPEC, not both.")
    if n < 1:
        raise XgenError(f"--n must be at least 1, got {n}.")
    chosen_dims = parse_dims(dims)
    options = parse_sets(sets)
    check_png_path(out, "--out")
    wrapped = load(model, trust=trust_checkpoint, device=resolve_device(device))
    encodes = "encode" in wrapped.capabilities
    if (inputs or data) and not encodes:
        raise XgenError(f"{model} cannot encode images; omit them to traverse around samples of its prior.")
    if encodes and not inputs and data is None:
        data = wrapped.metadata.get("training", {}).get("data")
        if data is None:
            raise XgenError(f"{model} does not record its training data; pass seed images or --data SPEC.")
    if inputs:
        seeds, source = _file_images(inputs, wrapped, n, resize)
    elif data is not None:
        seeds, source = _data_images(data, n, seed)
    else:
        seeds, source = None, f"{n} samples of the prior"
    result = run_traversal(
        wrapped,
        seeds,
        n=n,
        span=span,
        steps=steps,
        dims=chosen_dims,
        relative=not absolute,
        seed=seed,
        maps=maps,
        plugin=plugin,
        explainer_options=options,
    )
    result.save(out)
    drawn = f", with {result.plugin}'s per-dimension maps" if result.plugin else ""
    typer.echo(f"Wrote {out}: {len(result.dims)} dimensions x {steps} steps around {source}{drawn}.")
    for note in result.notes:
        typer.echo(f"Note: {note}")
