"""Why CAVGA-Du's reconstruction score is near chance on most real MNIST digits at xgen's default scale: does the
convolutional latent reconstruct every digit, not only the normal one?

Run from the repository root:  python benchmarks/cavga_mnist_capacity.py [--digits 2 0] [--out DIR]

For each normal digit and each setting (the claim's own, a coarser latent grid, a flat 100-d latent, five times the
steps) it trains cavga on `mnist:normal=D,size=32` (seed 0, the claim's 600 steps unless the setting says otherwise)
and reports the image AUROC of the claim's score (the mean absolute reconstruction difference) on the 1,000 test
digits, the mean difference on normal and on anomalous digits, and a figure per run (rows: anomalous test digits,
their reconstructions). Results go to DIR/capacity.jsonl, one line per run, and a rerun skips runs already there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score
from torchvision.utils import save_image

import xgen
from xgen.machine import describe

#: name -> (cavga options, optimiser steps)
SETTINGS: dict[str, tuple[dict[str, object], int]] = {
    "claim (grid 8, 600 steps)": ({}, 600),
    "grid 4": ({"grid": 4}, 600),
    "grid 2": ({"grid": 2}, 600),
    "flat z (100-d)": ({"latent": "flat"}, 600),
    "grid 8, 3000 steps": ({}, 3000),
}


def measure(digit: int, options: dict[str, object], steps: int, out: Path, tag: str) -> dict[str, object]:
    """Train cavga on digit `digit` and measure its reconstruction score on the test digits."""
    data = f"mnist:normal={digit},size=32"
    started = time.perf_counter()
    model = xgen.train("cavga", data, steps=steps, seed=0, options=options)
    seconds = time.perf_counter() - started
    test = xgen.dataset(data).test()
    with torch.no_grad():
        recon = model.reconstruct(test.images)
    error = (recon - test.images).abs().flatten(1).mean(dim=1).numpy()
    labels = test.labels.numpy()
    anomalous = test.labels == 1
    save_image(
        torch.cat(
            [test.images[anomalous][:10], recon[anomalous][:10], test.images[~anomalous][:10], recon[~anomalous][:10]]
        ),
        out / f"capacity-{digit}-{tag}.png",
        nrow=10,
    )
    return {
        "image_auroc": float(roc_auc_score(labels, error)),
        "error_normal": float(error[labels == 0].mean()),
        "error_anomalous": float(error[labels == 1].mean()),
        "train_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, nargs="+", default=[2, 0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/cavga-mnist-capacity"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "capacity.jsonl"
    done = (
        {(r["digit"], r["setting"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    )
    for digit in args.digits:
        for index, (name, (options, steps)) in enumerate(SETTINGS.items()):
            if (digit, name) in done:
                continue
            result = measure(digit, options, steps, args.out, str(index))
            record = {"digit": digit, "setting": name, "options": options, "steps": steps, **result}
            record["machine"] = describe()
            with log.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            print(json.dumps(record))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    print(f"\n{'digit':>5}  {'setting':<28} {'AUROC':>6} {'err normal':>10} {'err anomalous':>13}")
    for r in rows:
        print(
            f"{r['digit']:>5}  {r['setting']:<28} {r['image_auroc']:6.3f} {r['error_normal']:10.4f} "
            f"{r['error_anomalous']:13.4f}"
        )


if __name__ == "__main__":
    main()
