"""Cost of one AD-FactorVAE training step against one FactorVAE step, and against the same loss with its
per-dimension Grad-CAMs from a Python loop over the latent dimensions (issue #12).

    python benchmarks/factorvae_step.py [--threads 1] [--repeats 7] [--batch 64] [--latent 10]

Every variant runs `FactorVAEArchitecture.training_step` on the same fresh dSprites batches (64 x 1 x 64 x 64, the
paper's batch), from the same initial weights: FactorVAE (ad_weight 0), AD-FactorVAE with `ad_gradient=full` (the
maps built with create_graph, the default) and `activations`, each with the maps from xgen's batched backward pass
(`ad_jacobian=batched`) and from a loop of one backward pass per dimension (`ad_jacobian=loop`, the same maps).
Variants are timed in alternation, the order rotating every repeat, so a busy machine slows them alike; each number
is the median over the repeats of the mean over `--steps` steps. Always exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from result_runs import busy_cpu_s, machine

from xgen.plugins import lookup
from xgen_plugins.dsprites import DSprites

AD = {"ad_weight": 1.0}
VARIANTS = {
    "FactorVAE": {},
    "AD full, batched": AD,
    "AD full, loop over dims": {**AD, "ad_jacobian": "loop"},
    "AD activations, batched": {**AD, "ad_gradient": "activations"},
    "AD activations, loop over dims": {**AD, "ad_gradient": "activations", "ad_jacobian": "loop"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--latent", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = DSprites()
    batches = [data.sample_train(args.batch, torch.Generator().manual_seed(i)) for i in range(args.steps)]
    states = {}
    for name, options in VARIANTS.items():
        arch = lookup("architecture", "factor-vae")(latent=args.latent, **options)
        torch.manual_seed(0)
        module = arch.build((1, 64, 64))
        states[name] = (arch, module, arch.configure_optimizers(module))
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    busy_before, wall_before = busy_cpu_s(), time.perf_counter()
    names = list(VARIANTS)
    for repeat in range(args.repeats + 1):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            arch, module, optimizers = states[name]
            started = time.perf_counter()
            for x in batches:
                arch.training_step(module, x, optimizers)
            if repeat:
                times[name].append((time.perf_counter() - started) / len(batches))
    busy_after, wall_after = busy_cpu_s(), time.perf_counter()
    base = statistics.median(times["FactorVAE"])
    print(f"machine: {machine()}")
    if busy_before is not None:
        load = (busy_after - busy_before) / (wall_after - wall_before)
        print(f"all processes kept {load:.2f} CPUs busy on average (this one used {torch.get_num_threads()} thread(s))")
    shape = f"batch {args.batch} x 1 x 64 x 64, latent {args.latent}"
    print(f"{shape}, median of {args.repeats} repeats of {args.steps} steps")
    print(f"{'variant':34} {'s/step':>8} {'x FactorVAE':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34} {median:8.3f} {median / base:12.2f}")
    for gradient in ("full", "activations"):
        batched = statistics.median(times[f"AD {gradient}, batched"])
        loop = statistics.median(times[f"AD {gradient}, loop over dims"])
        print(f"AD {gradient}: the loop over dimensions takes {loop / batched:.2f}x the batched step")


if __name__ == "__main__":
    main()
