"""Speed of xgen's `vae-gradcam` on the conv-vae beside captum, pytorch-grad-cam and the bare gradient floor.

Run from the repository root:  python benchmarks/gradcam.py [--quick] [--json out.json]

Every method makes the same Grad-CAM of the score s = sum_i mu_i(x) at `encoder.2` (the last encoder conv, before
its ReLU). The floor is one forward pass to mu and one backward pass of s to that layer's output, nothing else: no
Grad-CAM can be faster. Methods of one configuration are timed in alternation (the order rotates every repeat),
so a busy machine slows them alike; each number is the fastest repeat (as timeit advises: noise only adds
time). This is a measurement, not a test: the PASS/FAIL lines compare against the targets of the issue, and the
script always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from result_runs import busy_cpu_s, cpu_name
from torch import nn

import xgen
from xgen_plugins.conv_vae.module import ConvVAE
from xgen_plugins.vae_gradcam.latent_sum_gradcam import LatentSumGradCAM

try:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
except ImportError:
    GradCAM = None

SIZES: dict[str, tuple[int, int, int]] = {"1x28x28": (1, 28, 28), "3x128x128": (3, 128, 128)}
#: Batches where per_dim runs by default: captum's 32-target loop on 3x128x128 takes about a minute a call at 64.
PER_DIM_DEFAULT: dict[str, tuple[int, ...]] = {"1x28x28": (1, 16, 64), "3x128x128": (1,)}
LAYER = "encoder.2"
LATENT = 32
TOLERANCE = 1e-4
TARGET_FLOOR_RATIO = 1.2
TARGET_PER_DIM_SPEEDUP = 8.0
FLOOR_BATCH = 64

Maps = Callable[[torch.Tensor], Any]


@dataclass
class Timing:
    """Seconds per call of one method on one batch: the fastest repeat (noise only adds time) and every repeat."""

    method: str
    best_s: float
    samples_s: list[float]
    calls_per_sample: int

    def images_per_s(self, batch: int) -> float:
        return batch / self.best_s

    @property
    def spread(self) -> float:
        """(median - fastest repeat) / fastest: how far a typical repeat sits above the reported number."""
        return (statistics.median(self.samples_s) - self.best_s) / self.best_s


@dataclass
class Row:
    """All timings and map checks of one (input size, batch) configuration."""

    size: str
    batch: int
    timings: dict[str, Timing] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)


def minmax(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-map min-max over the last two dimensions, with the range clamped at `eps` as xgen does."""
    flat = maps.flatten(-2)
    low = flat.min(dim=-1, keepdim=True).values
    span = (flat.max(dim=-1, keepdim=True).values - low).clamp_min(eps)
    return ((flat - low) / span).view_as(maps)


class LatentSum(nn.Module):
    """pytorch-grad-cam wants a classifier: (N, C, H, W) -> (N, 1) holding the VAE score sum_i mu_i."""

    def __init__(self, vae: ConvVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x)[0].sum(dim=1, keepdim=True)


def build(shape: tuple[int, int, int]) -> tuple[ConvVAE, xgen.Model]:
    """The seeded conv-vae in eval mode, and its xgen wrapper."""
    torch.manual_seed(0)
    module = ConvVAE(*shape, latent=LATENT, hidden=1024).eval()
    return module, xgen.wrap(module, layer=LAYER, input_shape=shape)


def methods(module: ConvVAE, model: xgen.Model) -> tuple[dict[str, Maps], dict[str, Maps]]:
    """The map makers (floor, xgen, xgen's plugin alone, captum, pytorch-grad-cam) and the per_dim ones.

    Both groups include the floor, so every ratio compares with a floor timed in alternation with it.
    """
    layer = module.encoder[2]
    captum_sum = LayerGradCam(lambda x: module.encode(x)[0].sum(dim=1), layer)
    captum_mu = LayerGradCam(lambda x: module.encode(x)[0], layer)
    plugin = LatentSumGradCAM()

    def floor(x: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            with torch.enable_grad():
                mu = module.encode(x)[0]
        finally:
            handle.remove()
        return torch.autograd.grad(mu.sum(), seen[0])[0]

    def captum_maps(cam: LayerGradCam, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
        attr = cam.attribute(x, target=target)
        return minmax(LayerAttribution.interpolate(attr, tuple(x.shape[2:]), "bilinear").abs())[:, 0]

    def captum_loop(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([captum_maps(captum_mu, x, d) for d in range(LATENT)], dim=1)

    def grad_cam(x: torch.Tensor) -> np.ndarray:
        with GradCAM(model=LatentSum(module), target_layers=[layer]) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(0)] * x.shape[0])

    main: dict[str, Maps] = {
        "floor": floor,
        "xgen": lambda x: xgen.explain(model, x, plugin="vae-gradcam").anomaly_map,
        "xgen plugin": lambda x: plugin.explain(model, x).anomaly_map,
        "captum": lambda x: captum_maps(captum_sum, x),
    }
    if GradCAM is not None:
        main["pytorch-grad-cam"] = grad_cam
    per_dim: dict[str, Maps] = {
        "floor": floor,
        "xgen per_dim": lambda x: xgen.explain(model, x, plugin="vae-gradcam", per_dim=True).details["per_dim"],
        "captum loop": captum_loop,
    }
    return main, per_dim


def time_calls(fn: Maps, x: torch.Tensor, calls: int) -> float:
    """Seconds per call over `calls` back-to-back calls, with the garbage collector off as timeit does."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        return (time.perf_counter() - start) / calls
    finally:
        gc.enable()


def measure(fns: dict[str, Maps], x: torch.Tensor, args: argparse.Namespace) -> dict[str, Timing]:
    """Warm up, size each sample to about `min_time`, then time every method in rotating order.

    Warm-up stops early at a call slower than `warmup_s`: one such call already warms the caches and allocator.
    """
    calls: dict[str, int] = {}
    round_s = 0.0
    for name, fn in fns.items():
        for _ in range(args.warmup):
            once = time_calls(fn, x, 1)
            if once > args.warmup_s:
                break
        calls[name] = max(1, math.ceil(args.min_time / once))
        round_s += once * calls[name]
    repeats = min(args.repeats, max(args.min_repeats, round(args.budget / max(round_s, 1e-9))))
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(time_calls(fns[name], x, calls[name]))
    return {name: Timing(name, min(s), s, calls[name]) for name, s in samples.items()}


def max_diff(a: Any, b: Any) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).detach().abs().max())


def run(args: argparse.Namespace) -> tuple[list[Row], list[Row]]:
    """Every configuration: the map checks, then the timings of the plain maps and of per_dim."""
    rows: list[Row] = []
    per_dim_rows: list[Row] = []
    generator = torch.Generator().manual_seed(0)
    for size in args.sizes:
        shape = SIZES[size]
        module, model = build(shape)
        main, per_dim = methods(module, model)
        per_dim_batches = PER_DIM_DEFAULT[size] if args.per_dim_batches is None else args.per_dim_batches
        for batch in args.batches:
            x = torch.rand(batch, *shape, generator=generator)
            row = Row(size, batch)
            row.checks["xgen vs captum"] = max_diff(main["xgen"](x), main["captum"](x))
            row.timings = measure(main, x, args)
            rows.append(row)
            print(f"  {size} batch {batch}: maps timed", file=sys.stderr, flush=True)
            if batch in per_dim_batches:
                pd_row = Row(size, batch)
                pd_row.checks["xgen per_dim vs captum loop"] = max_diff(
                    per_dim["xgen per_dim"](x), per_dim["captum loop"](x)
                )
                pd_row.timings = measure(per_dim, x, args)
                per_dim_rows.append(pd_row)
                print(f"  {size} batch {batch}: per_dim timed", file=sys.stderr, flush=True)
        del module, model, main, per_dim
        gc.collect()
    return rows, per_dim_rows


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(threads: int) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "captum": version("captum"),
        "grad-cam": version("grad-cam") if GradCAM is not None else "not installed",
        "threads": threads,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }


def cell(timing: Timing | None, batch: int, floor: Timing) -> str:
    if timing is None:
        return "skipped"
    return f"{timing.images_per_s(batch):9.1f} ({timing.best_s / floor.best_s:5.2f}x)"


def noise(row: Row) -> str:
    """The row's largest spread as a percentage; "-" when a method was timed once."""
    if any(len(timing.samples_s) < 2 for timing in row.timings.values()):
        return "-"
    return f"{max(timing.spread for timing in row.timings.values()):.0%}"


def report(rows: list[Row], per_dim_rows: list[Row]) -> list[dict[str, Any]]:
    """Print the tables and the PASS/FAIL lines; return the verdicts."""
    columns = ["xgen", "xgen plugin", "captum", "pytorch-grad-cam"]
    print("\nimages/s (time / floor time); fastest of the repeats")
    head = f"{'config':<10} {'batch':>5} {'floor':>9}  " + "  ".join(f"{c:>18}" for c in columns)
    print(head + "  noise  xgen vs captum (max |diff|)")
    print("-" * (len(head) + 36))
    for row in rows:
        floor = row.timings["floor"]
        cells = "  ".join(f"{cell(row.timings.get(c), row.batch, floor):>18}" for c in columns)
        check = row.checks["xgen vs captum"]
        status = "equal" if check < TOLERANCE else "DIFFERENT"
        print(
            f"{row.size:<10} {row.batch:>5} {floor.images_per_s(row.batch):9.1f}  {cells}  {noise(row):>5}  "
            f"{status} ({check:.1e})"
        )
    if GradCAM is None:
        print("pytorch-grad-cam: skipped (pip install grad-cam)")
    else:
        print(
            "pytorch-grad-cam applies a ReLU before its cv2 upsampling, so its maps are ReLU maps: timed, not compared."
        )
    print("xgen = xgen.explain (input checks included); xgen plugin = the explainer's explain() called directly.")
    print("noise = the largest (median - fastest repeat) / fastest among the row's methods.")

    if per_dim_rows:
        print(f"\nper_dim: the {LATENT} maps of every latent dimension; images/s (time / floor time)")
        head = f"{'config':<10} {'batch':>5} {'floor':>9}  {'xgen per_dim':>18}  {'captum loop':>18}  {'speed-up':>8}"
        print(head + "  noise  xgen vs captum (max |diff|)")
        print("-" * (len(head) + 36))
        for row in per_dim_rows:
            floor = row.timings["floor"]
            xg, loop = row.timings["xgen per_dim"], row.timings["captum loop"]
            check = row.checks["xgen per_dim vs captum loop"]
            status = "equal" if check < TOLERANCE else "DIFFERENT"
            print(
                f"{row.size:<10} {row.batch:>5} {floor.images_per_s(row.batch):9.1f}  "
                f"{cell(xg, row.batch, floor):>18}  {cell(loop, row.batch, floor):>18}  "
                f"{loop.best_s / xg.best_s:7.2f}x  {noise(row):>5}  {status} ({check:.1e})"
            )
        print(f"captum loop = LayerGradCam.attribute(x, target=d) for d in range({LATENT}), then the same upsampling.")

    verdicts: list[dict[str, Any]] = []

    def verdict(ok: bool, text: str) -> None:
        verdicts.append({"pass": ok, "target": text})
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    print("\ntargets")
    for row in rows:
        xg, cap = row.timings["xgen"], row.timings["captum"]
        ips, cap_ips = xg.images_per_s(row.batch), cap.images_per_s(row.batch)
        verdict(ips >= cap_ips, f"{row.size} batch {row.batch}: xgen {ips:.1f} img/s >= captum {cap_ips:.1f} img/s")
    for row in rows:
        if row.batch == FLOOR_BATCH:
            ratio = row.timings["xgen"].best_s / row.timings["floor"].best_s
            verdict(
                ratio <= TARGET_FLOOR_RATIO,
                f"{row.size} batch {row.batch}: xgen {ratio:.2f}x floor time <= {TARGET_FLOOR_RATIO}x",
            )
    for row in per_dim_rows:
        speedup = row.timings["captum loop"].best_s / row.timings["xgen per_dim"].best_s
        verdict(
            speedup >= TARGET_PER_DIM_SPEEDUP,
            f"{row.size} batch {row.batch}: xgen per_dim {speedup:.2f}x faster than captum's "
            f"{LATENT}-target loop >= {TARGET_PER_DIM_SPEEDUP:g}x",
        )
    for row in [*rows, *per_dim_rows]:
        for name, diff in row.checks.items():
            if diff >= TOLERANCE:
                verdict(False, f"{row.size} batch {row.batch}: {name} max |diff| {diff:.1e} < {TOLERANCE:g}")
    return verdicts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--batches", default="1,16,64", help="comma-separated batch sizes (default 1,16,64)")
    parser.add_argument(
        "--per-dim-batches",
        default=None,
        help="batches that also time per_dim, for every size, or none (default: 1,16,64 on 1x28x28, 1 on 3x128x128)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="most timed repeats per method (default 7)")
    parser.add_argument("--min-repeats", type=int, default=3, help="fewest timed repeats per method (default 3)")
    parser.add_argument("--budget", type=float, default=6.0, help="seconds of timing aimed at per configuration")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds each timed sample lasts at least")
    parser.add_argument("--warmup", type=int, default=3, help="most untimed calls per method before timing")
    parser.add_argument("--warmup-s", type=float, default=0.5, help="a warm-up call slower than this ends warm-up")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter repeats: a rough look in 1-2 minutes")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.per_dim_batches is not None:
        text = args.per_dim_batches.strip().lower()
        args.per_dim_batches = () if text == "none" else tuple(int(b) for b in text.split(",") if b.strip())
    if args.quick:
        args.repeats, args.min_repeats, args.budget, args.min_time, args.warmup = 3, 1, 1.0, 0.05, 1
    args.warmup = max(1, args.warmup)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine(args.threads)
    print("xgen vae-gradcam speed benchmark")
    print(
        f"machine: {info['platform']} | {info['cpu']} | {info['cpu_count']} CPUs | python {info['python']} | "
        f"torch {info['torch']} | captum {info['captum']} | grad-cam {info['grad-cam']} | threads {args.threads} | "
        f"OMP_WAIT_POLICY {info['OMP_WAIT_POLICY']}"
    )
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"conv-vae (latent {LATENT}, hidden 1024), layer {LAYER}; sizes {', '.join(args.sizes)}; "
        f"batches {', '.join(map(str, args.batches))}; load average at start {load_start:.2f}"
    )
    busy_start, own_start, start = busy_cpu_s(), own_cpu_s(), time.perf_counter()
    rows, per_dim_rows = run(args)
    elapsed = time.perf_counter() - start
    busy_end, own_end = busy_cpu_s(), own_cpu_s()
    verdicts = report(rows, per_dim_rows)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    others = None
    if busy_start is not None and busy_end is not None:
        others = max(0.0, (busy_end - busy_start) - (own_end - own_start)) / elapsed
    print(f"\n{elapsed:.0f} s; load average at end {load_end:.2f}", end="")
    if others is not None:
        print(f"; other processes kept {others:.2f} of {os.cpu_count()} CPUs busy on average", end="")
    print()
    if others is not None and others > 0.25:
        print("the CPUs were shared during the run: numbers are slower and noisier than on an idle machine", end="")
        if info["OMP_WAIT_POLICY"] == "unset":
            print("; OMP_WAIT_POLICY=PASSIVE stops OpenMP threads spinning against the other work", end="")
        print()
    if args.json:
        payload = {
            "machine": info,
            "options": {k: v for k, v in vars(args).items() if k != "json"},
            "load_average": [load_start, load_end],
            "other_processes_cpus": others,
            "seconds": elapsed,
            "maps": [asdict(row) for row in rows],
            "per_dim": [asdict(row) for row in per_dim_rows],
            "targets": verdicts,
        }
        with open(args.json, "w") as out:
            json.dump(payload, out, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
