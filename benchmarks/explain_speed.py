"""End-to-end speed of `xgen explain` beside reading the same files and calling `xgen.explain` in batches of 64.

Run from the repository root:  python benchmarks/explain_speed.py [--quick] [--json out.json]

In one run on one machine it writes two folders of PNG images into a temporary folder: 2,000 28x28 digits (the
images of `xgen.dataset("digits:normal=1")`, both splits, repeated in order until there are 2,000) and 256x256 crops
of scikit-image's brick, grass and gravel photographs (seeded corners). Each size gets an untrained conv-vae with
seeded weights (training changes the weights, not the time a pass takes; at 256x256 with `hidden=16`, since the
default FC layer of 1,024 units would hold 537M weights), saved as an xgen checkpoint.

Timed, for each size, in alternation (the order rotates every repeat, so a busy machine slows them alike):
- library: `xgen.load`, then for each batch of 64 sorted files: decode with PIL, stack, `xgen.explain` (the maps
  moved to the CPU), and `xgen.score` too for the runs "+ score"; what a user who writes nothing would run. Each at
  torch's default thread count and at one thread; the faster is the peer of `xgen explain` (on a shared 2-core
  machine one thread is often much faster: torch's thread team stalls when another process holds a core).
- `xgen explain`: the CLI's command function in this process (start-up excluded), with the default outputs (a
  `.npy` map and a `.png` overlay per image and `scores.csv`, scores from the model's `recon-error` scorer since
  vae-gradcam gives none; its peer is the library's explain + score), and with `--outputs npy,png` and
  `--outputs npy` (peer: the library's explain alone); each into a fresh folder.
Each figure is the fastest repeat (noise only adds time); `kernel` is the process's kernel CPU per image (ms) in
that repeat: creating files (whose cost on ext4 varied about tenfold between new folders of one disk; the `control`
line measures one file once, in an empty folder) and, for large images, mapping and freeing torch's memory.
Start-up: the median wall time of several `xgen --help` and `xgen explain --help` subprocesses. A measurement, not a
test: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from result_runs import busy_cpu_s, machine

import xgen
from xgen.cli.explain import explain as explain_command
from xgen.explain_job import thread_split
from xgen.plugins import lookup

GOAL = 0.5


def digit_pngs(folder: Path, n: int) -> None:
    """n 28x28 greyscale PNGs of the digits data set, both splits, repeated in order."""
    data = xgen.dataset("digits:normal=1")
    images = torch.cat([data.train().images, data.test().images])
    pixels = (images[:, 0].numpy() * 255 + 0.5).astype(np.uint8)
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(pixels[i % len(pixels)]).save(folder / f"digit{i:05d}.png")


def texture_pngs(folder: Path, n: int, size: int = 256, seed: int = 0) -> None:
    """n size x size greyscale crops of scikit-image's brick, grass and gravel photographs at seeded corners."""
    from skimage import data

    photos = [np.asarray(getattr(data, name)(), dtype=np.uint8) for name in ("brick", "grass", "gravel")]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        row, col = rng.integers(0, photo.shape[0] - size + 1), rng.integers(0, photo.shape[1] - size + 1)
        Image.fromarray(photo[row : row + size, col : col + size]).save(folder / f"crop{i:04d}.png")


def untrained_conv_vae(path: Path, shape: tuple[int, int, int], seed: int = 0, **options: Any) -> Path:
    """An xgen checkpoint of a conv-vae with seeded, untrained weights for images of `shape`."""
    architecture = lookup("architecture", "conv-vae")(**options)
    torch.manual_seed(seed)
    xgen.save(architecture.wrap(architecture.build(shape), shape), path)
    return path


def library(checkpoint: Path, folder: Path, scores: bool, device: str, threads: int, batch: int = 64) -> int:
    """Read the PNGs with PIL and explain them with `xgen.explain` in batches, with `xgen.score` too if `scores`,
    torch on `threads` threads; returns the images explained."""
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = xgen.load(checkpoint, device=device)
        files = sorted(folder.glob("*.png"))
        for start in range(0, len(files), batch):
            arrays = [np.asarray(Image.open(p), dtype=np.float32) / 255.0 for p in files[start : start + batch]]
            x = torch.from_numpy(np.stack(arrays))[:, None]
            xgen.explain(model, x).anomaly_map.cpu()
            if scores:
                xgen.score(model, x).cpu()
    finally:
        torch.set_num_threads(default)
    return len(files)


def job(checkpoint: Path, folder: Path, out: Path, outputs: str, device: str) -> int:
    """`xgen explain --model CHECKPOINT FOLDER --out OUT --outputs OUTPUTS` through its command function."""
    shutil.rmtree(out, ignore_errors=True)
    explain_command(
        model=checkpoint,
        inputs=[folder],
        plugin=None,
        sets=None,
        scorer=None,
        out=out,
        outputs=outputs,
        data=None,
        resize=False,
        batch_size=64,
        device=device,
        trust_checkpoint=False,
    )
    count = len(list(out.glob("*.npy")))
    shutil.rmtree(out, ignore_errors=True)
    return count


def contenders(checkpoint: Path, folder: Path, out: Path, device: str) -> dict[str, Callable[[], int]]:
    """The runs timed against each other on one folder of images."""
    threads = torch.get_num_threads()
    return {
        f"library: explain, {threads} threads": lambda: library(checkpoint, folder, False, device, threads),
        "library: explain, 1 thread": lambda: library(checkpoint, folder, False, device, 1),
        f"library: explain + score, {threads} threads": lambda: library(checkpoint, folder, True, device, threads),
        "library: explain + score, 1 thread": lambda: library(checkpoint, folder, True, device, 1),
        "xgen explain": lambda: job(checkpoint, folder, out, "npy,png,csv", device),
        "xgen explain --outputs npy,png": lambda: job(checkpoint, folder, out, "npy,png", device),
        "xgen explain --outputs npy": lambda: job(checkpoint, folder, out, "npy", device),
    }


def fastest(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, dict[str, float]]:
    """Images per second of each run: the fastest of `repeats`, the runs alternating, the order rotating; with the
    kernel CPU per image of that repeat (files created, memory mapped)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    kernel: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    counts: dict[str, int] = {}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start, system = time.perf_counter(), os.times().system
            counts[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
            kernel[name].append(os.times().system - system)
    figures = {}
    for name, t in times.items():
        best = t.index(min(t))
        figures[name] = {
            "images": counts[name],
            "seconds": t[best],
            "images_per_s": counts[name] / t[best],
            "median_s": statistics.median(t),
            "kernel_ms_per_image": kernel[name][best] / counts[name] * 1e3,
        }
    return figures


def startup(argv: list[str], runs: int) -> dict[str, Any]:
    """Median wall time of `xgen ARGV` subprocesses, and whether torch was imported (it must not be)."""
    code = "import sys; from xgen.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
    check = code + "print('torch' in sys.modules, file=sys.stderr)"
    probe = subprocess.run(
        [sys.executable, "-c", check, *argv], capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"}
    )
    script = shutil.which("xgen", path=str(Path(sys.executable).parent)) or shutil.which("xgen")
    command = [script] if script else [sys.executable, "-c", "from xgen.cli import main; main()"]
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*command, *argv], capture_output=True, check=True)
        seconds.append(time.perf_counter() - start)
    bare = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
    return {
        "command": " ".join(command[:1] + argv) if script else f"python -c '...main()' {' '.join(argv)}",
        "median_s": statistics.median(seconds),
        "runs": [round(s, 3) for s in seconds],
        "python_alone_median_s": statistics.median(bare),
        "imports_torch": probe.stderr.strip().splitlines()[-1] == "True",
    }


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def file_cost_ms(folder: Path, n: int = 2000) -> float:
    """The CPU (mostly kernel) milliseconds one small file costs in a new folder under `folder`: create, write 3 KB,
    close, rename, as xgen explain writes each output. On ext4 it depends on where the folder is placed (measured
    0.02 to 0.4 ms on one disk), so it is the control that says how much of a run's time is the disk's."""
    target = Path(tempfile.mkdtemp(dir=folder))
    payload = os.urandom(3000)
    started = own_cpu_s()
    for i in range(n):
        temporary, final = target / f".{i:05d}.part", target / f"{i:05d}.png"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.write(fd, payload)
        os.close(fd)
        os.replace(temporary, final)
    cost = (own_cpu_s() - started) / n * 1e3
    shutil.rmtree(target)
    return cost


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=2000, help="28x28 images (default 2000)")
    parser.add_argument("--textures", type=int, default=128, help="256x256 images (default 128)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each run (default 3)")
    parser.add_argument("--startup-runs", type=int, default=7, help="subprocesses per start-up figure (default 7)")
    parser.add_argument("--quick", action="store_true", help="200 digits, 32 textures, 1 repeat, 3 start-ups")
    parser.add_argument("--workdir", type=Path, default=None, help="where the images go (default: a temp folder)")
    parser.add_argument("--device", default="cpu", help="where the model runs, as for xgen explain (default cpu)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.digits, args.textures, args.repeats, args.startup_runs = 200, 32, 1, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("xgen explain end-to-end speed benchmark")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        load_start = os.getloadavg()[0]
        busy_start, own_start, start = busy_cpu_s(), own_cpu_s(), time.perf_counter()
        sizes = {
            "1x28x28": (digit_pngs, args.digits, (1, 28, 28), {}),
            "1x256x256": (texture_pngs, args.textures, (1, 256, 256), {"hidden": 16}),
        }
        results: dict[str, Any] = {}
        out = root / "out"
        out.mkdir()
        creation = file_cost_ms(out)
        for label, (make, n, shape, options) in sizes.items():
            folder = root / label
            make(folder, n)
            checkpoint = untrained_conv_vae(root / f"{label}.pt", shape, **options)
            timed = fastest(contenders(checkpoint, folder, out, args.device), args.repeats)
            for name, figures in timed.items():
                kind = "library: explain + score" if "score" in name or name == "xgen explain" else "library: explain,"
                peer = max((n for n in timed if n.startswith(kind)), key=lambda n: timed[n]["images_per_s"])
                figures["peer"] = peer
                figures["ratio"] = figures["images_per_s"] / timed[peer]["images_per_s"]
            results[label] = {"images": n, "model_options": options, "runs": timed}
        runs = {
            "help": startup(["--help"], args.startup_runs),
            "explain_help": startup(["explain", "--help"], args.startup_runs),
        }
        elapsed = time.perf_counter() - start
        busy_end, own_end = busy_cpu_s(), own_cpu_s()
        others = None
        if busy_start is not None and busy_end is not None:
            others = max(0.0, (busy_end - busy_start) - (own_end - own_start)) / elapsed
    writers, threads = thread_split()
    lone, all_threads = thread_split(("npy", "csv"), pixels=256 * 256)
    print(
        f"xgen explain: {writers} writer threads and torch on {threads} with overlays or on small images, else "
        f"{lone} and torch on {all_threads}; load average at start {load_start:.2f}"
    )
    print(f"control: one small file (create, write 3 KB, rename) in the output folder costs {creation:.3f} ms CPU")
    print()
    print(f"{'images':<16}{'run':<40}{'images/s':>10}{'seconds':>10}{'median s':>10}{'kernel':>8}{'ratio':>7}  to")
    for label, result in results.items():
        for name, figures in result["runs"].items():
            print(
                f"{label + ' x ' + str(result['images']):<16}{name:<40}{figures['images_per_s']:>10.1f}"
                f"{figures['seconds']:>10.2f}{figures['median_s']:>10.2f}{figures['kernel_ms_per_image']:>8.3f}"
                f"{figures['ratio']:>7.2f}  {figures['peer']}"
            )
    print()
    for figures in runs.values():
        print(
            f"{figures['command']}: median {figures['median_s']:.2f} s over {len(figures['runs'])} runs "
            f"{figures['runs']} (python -c pass alone: {figures['python_alone_median_s']:.2f} s); "
            f"imports torch: {figures['imports_torch']}"
        )
    print()
    for label, result in results.items():
        for name in ("xgen explain", "xgen explain --outputs npy,png"):
            figures = result["runs"][name]
            verdict = "PASS" if figures["ratio"] >= GOAL else "FAIL"
            print(f"{verdict}: {label} {name} / {figures['peer']} = {figures['ratio']:.2f} (goal >= {GOAL})")
    busy = f"; other processes kept {others:.2f} of {os.cpu_count()} CPUs busy on average" if others is not None else ""
    print(f"{elapsed:.0f} s; load average at end {os.getloadavg()[0]:.2f}{busy}")
    if args.json is not None:
        summary = {
            "machine": machine(),
            "file_cost_ms": creation,
            "sizes": results,
            "startup": runs,
            "others_busy_cpus": others,
        }
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
