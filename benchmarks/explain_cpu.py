"""Where `xgen explain`'s CPU goes, stage by stage: thread CPU time per image of reading, explaining, drawing the
overlays, encoding the PNGs and writing the files, from wrappers around the job's own functions.

Run from the repository root:  python benchmarks/explain_cpu.py [--outputs npy,png] [--images 2000]

It writes `--images` 28x28 digit PNGs (the images of `digits:normal=1`, repeated) and an untrained conv-vae (seed 0)
into a temporary folder, then runs the CLI's `xgen explain` in this process. Thread CPU time (`time.thread_time`)
does not count time spent waiting for a core, so the shares hold on a busy machine; wall time does not.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

import xgen
import xgen.cli  # registers the commands
import xgen.explain_job as job
from xgen.cli.app import app

STAGES = {"_load": "read", "_write_group": "write (all)", "encode_pngs": "  encode PNGs", "overlays": "  overlays"}
STAGES["write_bytes"] = "  write files"


def timed(cpu: dict[str, float], label: str, function: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            cpu[label] = cpu.get(label, 0.0) + time.thread_time() - started

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", default="npy,png", help="as for xgen explain (default npy,png)")
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    cpu: dict[str, float] = {}
    for name, label in STAGES.items():
        setattr(job, name, timed(cpu, label, getattr(job, name)))
    job.Work.explain = timed(cpu, "explain", job.Work.explain)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        digits = xgen.dataset("digits:normal=1").test().images
        for i in range(args.images):
            pixels = (digits[i % len(digits), 0].numpy() * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:05d}.png")
        torch.manual_seed(0)
        xgen.save(xgen.train("conv-vae", "digits:normal=1", steps=1, seed=0), Path(tmp) / "m.pt")
        command = ["explain", "--model", f"{tmp}/m.pt", str(folder), "--out", f"{tmp}/out", "--outputs", args.outputs]
        started, process = time.perf_counter(), time.process_time()
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, result.output
        wall, total = time.perf_counter() - started, time.process_time() - process
    n = args.images
    per_image = total / n * 1e3
    print(f"xgen explain --outputs {args.outputs}, {n} 28x28 images: {wall:.2f} s wall, {per_image:.2f} ms CPU/image")
    for label, seconds in cpu.items():
        print(f"  {label:14s} {seconds / n * 1e3:.3f} ms CPU/image")


if __name__ == "__main__":
    main()
