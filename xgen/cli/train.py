"""`xgen train ARCH --data SPEC --out ckpt.pt`."""

from pathlib import Path
from typing import Annotated

import typer

from xgen.cli.app import app, parse_sets
from xgen.errors import XgenError
from xgen.files import ensure_writable_dir


@app.command()
def train(
    architecture: Annotated[str, typer.Argument(help="Architecture to train, e.g. conv-vae (see `xgen plugins`).")],
    data: Annotated[str, typer.Option(help="Dataset spec, e.g. digits:normal=1.")],
    out: Annotated[Path | None, typer.Option(help="Checkpoint to write (default: ARCHITECTURE.pt).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the architecture's).")] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Train for this many optimiser steps instead of epochs; datasets that render any number of images "
            "(dsprites) draw a fresh batch every step."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default: the architecture's).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for initialisation and shuffling.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    sets: Annotated[list[str] | None, typer.Option("--set", help="Architecture option key=value (repeatable).")] = None,
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads (default: torch's); 1 is faster when other jobs share the CPU")
    ] = None,
    resumable: Annotated[
        bool,
        typer.Option(
            "--resumable",
            help="With --steps: keep the training state in OUT.state (every 1% of the steps), so the same command "
            "started again after a crash resumes there; removed when training ends.",
        ),
    ] = False,
) -> None:
    """Train an architecture on a dataset's training split and write a checkpoint (atomically)."""
    from xgen.machine import torch_threads
    from xgen.training import train as train_model

    out = out or Path(f"{architecture}.pt")
    if out.is_dir():
        raise XgenError(f"--out {out} is a folder; give a checkpoint file path such as {out / 'model.pt'}.")
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    if resumable and steps is None:
        raise XgenError("--resumable needs --steps: the state is saved at step counts.")
    state = out.with_name(out.name + ".state") if resumable else None
    with torch_threads(threads):
        model = train_model(
            architecture,
            data,
            epochs=epochs,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            device=device,
            options=parse_sets(sets),
            out=out,
            progress=True,
            state=state,
        )
    record = model.metadata["training"]
    history = record["history"]
    losses = ", ".join(f"{k} {v:.4g}" for k, v in history[-1].items() if k not in ("epoch", "step", "phase"))
    if "steps" in record:
        source = "fresh images each step" if record["fresh_batches"] else f"{record['train_images']} images"
        length = f"{record['steps']} steps on {record['data']} ({source}"
    else:
        length = f"{record['epochs']} epochs on {record['data']} ({record['train_images']} images"
    resumed = f", resumed at step {record['resumed_at_step']}" if "resumed_at_step" in record else ""
    typer.echo(
        f"Saved {architecture} to {out}: {length}, seed {seed}{resumed}) in {record['seconds']:.1f} s; final {losses}."
    )
