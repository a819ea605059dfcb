"""`xgen fit-scorer --model ckpt.pt --scorer NAME:key=value --data SPEC [--out new.pt]`."""

from pathlib import Path
from typing import Annotated

import typer

from xgen.cli.app import app
from xgen.errors import XgenError
from xgen.files import check_output_file


@app.command("fit-scorer")
def fit_scorer_command(
    model: Annotated[Path, typer.Option(help="xgen checkpoint; the fitted state is written into it.")],
    scorer: Annotated[str, typer.Option(help="Scorer that learns, with options, e.g. embedding-lof:tap=mean.")],
    data: Annotated[
        str | None,
        typer.Option(help="Dataset spec whose training split is fitted on (default: the model's training data)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint to write (default: rewrite --model atomically).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Fit a scorer that learns (embedding-ocsvm, embedding-lof) on a dataset's normal training images and keep what
    it learned in the checkpoint, so that xgen evaluate and xgen.score use it without refitting."""
    from xgen.api import fit_scorer, parse_scorer
    from xgen.checkpoint import load, save
    from xgen.plugins import lookup
    from xgen.training import resolve_device

    name, options = parse_scorer(scorer)
    target = out or model
    check_output_file(target, "--out")
    wrapped = load(model, device=resolve_device(device))
    if wrapped.architecture is None:
        raise XgenError(
            f"{model} is not an xgen checkpoint (TorchScript or a pickled module), so it cannot keep a fitted scorer; "
            "use xgen.fit_scorer in Python, or re-save the model with xgen.save."
        )
    if data is None:
        data = wrapped.metadata.get("training", {}).get("data")
        if data is None:
            raise XgenError(f"{model} does not record its training data; pass --data SPEC (e.g. digits:normal=1).")
    fit_scorer(wrapped, data, name, **options)
    key = lookup("scorer", name)(**options).key
    save(wrapped, target)
    typer.echo(f"Fitted {key} on {wrapped.metadata['fitted_scorers'][key]['fitted_on']}; wrote {target}.")
