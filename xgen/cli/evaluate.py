"""`xgen evaluate --model ckpt.pt --data SPEC [--metric NAME ...] [--json out.json] [--report out.html]`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xgen.cli.app import app, file_digest, parse_sets
from xgen.errors import XgenError
from xgen.files import check_output_file

if TYPE_CHECKING:
    from xgen.evaluation import Evaluation


def _table(evaluation: Evaluation) -> Table:
    table = Table(title=f"{evaluation.plugin} on {evaluation.data} ({len(evaluation.test)} test images)")
    for column in ("metric", "value", "95% CI", "flagged"):
        table.add_column(column, justify="left" if column == "metric" else "right", overflow="fold")
    for r in evaluation.metrics:
        interval = f"[{r.interval[0]:.4f}, {r.interval[1]:.4f}]" if r.interval else ""
        flagged = f"{100 * r.flagged:.1f}%" if r.flagged is not None else ""
        table.add_row(r.spec, f"{r.value:.4f}", interval, flagged)
    return table


@app.command("evaluate")
def evaluate_command(
    model: Annotated[Path, typer.Option(help="Checkpoint: xgen, TorchScript, or trusted pickle.")],
    data: Annotated[
        str | None, typer.Option(help="Dataset spec, e.g. textures:brick (default: the data the model was trained on).")
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Explainer (default: the checkpoint's).")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Explainer option key=value (repeatable).")] = None,
    scorer: Annotated[
        str | None,
        typer.Option(
            help="Scorer for image scores, e.g. embedding-lof:tap=mean (default: the explainer's, else the model's); "
            "one that learns and was never fitted on the checkpoint is fitted on the training split first."
        ),
    ] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Metric, e.g. iou:threshold=0.3 (repeatable; default: all the data supports)."),
    ] = None,
    normalize: Annotated[
        str, typer.Option(help="How maps are scaled for the metrics: per-image, normal-stats or none.")
    ] = "per-image",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the values and provenance as JSON.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report.")] = None,
    validation_images: Annotated[int, typer.Option(help="Training images that set the scale for normal-stats.")] = 256,
    batch_size: Annotated[int, typer.Option(help="Images per forward/backward pass.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed for stochastic explainers, sampling and bootstrap intervals.")] = 0,
    features: Annotated[
        str | None,
        typer.Option(
            help="Feature extractor for fid, precision and recall: inception:PATH (local Inception-v3 weights) or an "
            "xgen checkpoint whose encoder mean is used; the model must generate."
        ),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(help="Images generated for fid, precision and recall (papers use 50,000; 1,000 fit a CPU)."),
    ] = 1000,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    trust_checkpoint: Annotated[
        bool, typer.Option(help="Allow a fully pickled checkpoint, which can run code: only for trusted files.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="local, or ray: explain on a Ray cluster and merge the metrics from shards.")
    ] = "local",
    address: Annotated[
        str,
        typer.Option(help="With --engine ray: local (a private instance), auto (the running cluster) or HOST:PORT."),
    ] = "local",
    workers: Annotated[int, typer.Option(help="With --engine ray: worker processes.")] = 2,
    cpus_per_worker: Annotated[float, typer.Option(help="With --engine ray: CPUs each worker claims.")] = 1.0,
    gpus_per_worker: Annotated[float, typer.Option(help="With --engine ray: GPUs each worker claims.")] = 0.0,
) -> None:
    """Explain a dataset's test split, print the metrics, and write JSON and an HTML report if asked."""
    from xgen.checkpoint import load
    from xgen.evaluation import NORMALIZATIONS, evaluate
    from xgen.report import write_html, write_json
    from xgen.training import resolve_device

    if normalize not in NORMALIZATIONS:
        raise XgenError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got '{normalize}'.")
    if engine == "ray" and report is not None:
        raise XgenError("--report draws the maps, which --engine ray never gathers; use --json, or --engine local.")
    for path, flag in ((json_out, "--json"), (report, "--report")):
        if path is not None:
            check_output_file(path, flag)
    wrapped = load(model, trust=trust_checkpoint, device=resolve_device(device))
    if data is None:
        data = wrapped.metadata.get("training", {}).get("data")
        if data is None:
            raise XgenError(f"{model} does not record its training data; pass --data SPEC (e.g. textures:brick).")
    result = evaluate(
        wrapped,
        data,
        plugin,
        options=parse_sets(sets),
        scorer=scorer,
        metrics=metrics,
        normalize=normalize,
        validation_images=validation_images,
        batch_size=batch_size,
        seed=seed,
        progress=True,
        features=features,
        samples=samples,
        engine=engine,
        checkpoint=model,
        trust=trust_checkpoint,
        address=address,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
    )
    console = Console()
    console.print(_table(result))
    if result.generation is not None:
        g = result.generation
        console.print(
            f"fid, precision and recall: {g['generated_images']:,} generated images against {g['real_images']:,} "
            f"{g['real_split']} images, "
            f"features: {escape(g['features'])} ({g['dimensions']}-d)",
            highlight=False,
            soft_wrap=True,
        )
    for warning in result.warnings:
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    command = "xgen " + shlex.join(sys.argv[1:])
    info = {"path": str(model), "sha256": file_digest(model), "architecture": wrapped.architecture}
    written = []
    if json_out is not None:
        write_json(json_out, result, command, info)
        written.append(str(json_out))
    if report is not None:
        write_html(report, result, command, info)
        written.append(str(report))
    norm = f"maps normalised {result.normalization['method']}, image scores from {result.score_source}"
    typer.echo(f"Evaluated in {result.seconds:.1f} s ({norm})" + (f"; wrote {', '.join(written)}." if written else "."))
