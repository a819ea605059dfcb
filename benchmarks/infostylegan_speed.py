"""Training images per second of InfoStyleGAN against InfoGAN at the same size (issue 13, docs/benchmarks.md).

    python benchmarks/infostylegan_speed.py [--threads 1] [--size 32] [--batch 64] [--steps 20] [--repeats 4]

Both variants run `InfoStyleGANArchitecture.training_step` (one D step, one G + Q step) with the architecture's
defaults apart from `styles` (InfoGAN: styles=false; InfoStyleGAN: styles=true; beta 1 for both), on the same fresh
dSprites batches, average-pooled from 64x64 to `--size`. After one warm-up step each, the variants run in
alternation, `--steps / --repeats` steps at a time, the order rotating every repeat, so a busy machine slows them
alike; a variant's figure is its batch size times its steps over their total time. Always exits 0.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from result_runs import busy_cpu_s, machine

from xgen.plugins import lookup
from xgen_plugins.dsprites import DSprites

VARIANTS = {"InfoGAN": {"styles": False}, "InfoStyleGAN": {"styles": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = DSprites()
    pool = 64 // args.size
    batches = [
        F.avg_pool2d(data.sample_train(args.batch, torch.Generator().manual_seed(i)), pool) for i in range(args.steps)
    ]
    states = {}
    for name, options in VARIANTS.items():
        arch = lookup("architecture", "infostylegan")(**options)
        torch.manual_seed(0)
        module = arch.build((1, args.size, args.size))
        module.train()
        states[name] = (arch, module, arch.configure_optimizers(module))
        arch.training_step(module, batches[0], states[name][2])
    seconds = dict.fromkeys(VARIANTS, 0.0)
    per_repeat = args.steps // args.repeats
    busy_before, wall_before = busy_cpu_s(), time.perf_counter()
    names = list(VARIANTS)
    for repeat in range(args.repeats):
        chunk = batches[repeat * per_repeat : (repeat + 1) * per_repeat]
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            arch, module, optimizers = states[name]
            started = time.perf_counter()
            for x in chunk:
                arch.training_step(module, x, optimizers)
            seconds[name] += time.perf_counter() - started
    busy_after, wall_after = busy_cpu_s(), time.perf_counter()
    print(f"machine: {machine()}")
    if busy_before is not None:
        load = (busy_after - busy_before) / (wall_after - wall_before)
        print(f"all processes kept {load:.2f} CPUs busy on average (this one used {torch.get_num_threads()} thread(s))")
    steps = per_repeat * args.repeats
    print(f"dsprites {args.size}x{args.size}, batch {args.batch}, {steps} training steps per variant (D + G/Q each)")
    base = args.batch * steps / seconds["InfoGAN"]
    print(f"{'variant':14} {'params':>10} {'images/s':>10} {'x InfoGAN':>10}")
    for name, total in seconds.items():
        rate = args.batch * steps / total
        params = sum(p.numel() for p in states[name][1].parameters())
        print(f"{name:14} {params:10,d} {rate:10.1f} {rate / base:10.2f}")


if __name__ == "__main__":
    main()
