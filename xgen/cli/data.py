"""`xgen data show SPEC --out grid.png`: look at a dataset before training on it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xgen.cli.app import app
from xgen.errors import XgenError
from xgen.files import check_output_file

if TYPE_CHECKING:
    from xgen.data import ImageSet

data_app = typer.Typer(help="Look at datasets: xgen data show SPEC --out grid.png.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def pick(images: ImageSet, n: int) -> list[int]:
    """Up to n positions, taking classes in turn (good, then each defect type, ...) so every class is shown."""
    import torch

    if images.classes is None:
        return list(range(min(n, len(images))))
    groups = [(images.classes == c).nonzero().flatten().tolist() for c in torch.unique(images.classes).tolist()]
    chosen: list[int] = []
    for row in range(max(len(g) for g in groups)):
        chosen.extend(g[row] for g in groups if row < len(g))
        if len(chosen) >= n:
            break
    return sorted(chosen[:n])


def caption(images: ImageSet, i: int) -> str:
    """The class name, else normal/anomalous, else the image's name."""
    if images.classes is not None:
        value = int(images.classes[i])
        return images.class_names.get(value, f"class {value}")
    if images.labels is not None:
        return "anomalous" if int(images.labels[i]) else "normal"
    return images.names[i]


@data_app.command()
def show(
    spec: Annotated[str, typer.Argument(help="Dataset spec, e.g. textures:brick or mvtec:PATH.")],
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("data.png"),
    split: Annotated[str, typer.Option(help="test or train.")] = "test",
    n: Annotated[int, typer.Option(help="How many images.")] = 32,
    columns: Annotated[int, typer.Option(help="Images per row.")] = 8,
) -> None:
    """Write a grid of a dataset's images with their ground-truth masks outlined in red and their class below."""
    import numpy as np

    from xgen.plugins import open_dataset
    from xgen.visualize import captioned, grid, outline, save_png

    if split not in ("test", "train"):
        raise XgenError(f"--split must be test or train, got '{split}'.")
    if n < 1 or columns < 1:
        raise XgenError("--n and --columns must be at least 1.")
    check_output_file(out, "--out")
    dataset = open_dataset(spec)
    images = dataset.test() if split == "test" else dataset.train()
    if len(images) == 0:
        raise XgenError(f"the {split} split of {dataset.spec()} is empty; check its options.")
    chosen = pick(images, n)
    tiles = []
    for i in chosen:
        picture = images.images[i]
        rgb = picture.repeat(3, 1, 1) if picture.shape[0] == 1 else picture[:3]
        rgb = (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        if images.masks is not None:
            rgb = outline(rgb, images.masks[i].numpy() > 0)
        tiles.append(captioned(rgb, caption(images, i)))
    save_png(grid(tiles, min(columns, len(tiles))), out)
    masks = " with masks outlined in red" if images.masks is not None else ""
    typer.echo(f"Wrote {out}: {len(chosen)} of {len(images)} {split} images of {dataset.spec()}{masks}.")
