"""FactorVAE against AD-FactorVAE on dSprites (issue #12, "What must be shown"): claims (iv) and (v) of Liu et al.
(../shared/seeds/000, Table 1 experiments 1 and 3), and the `ad_pairs` / `ad_gradient` choices.

    python benchmarks/disentanglement_results.py run                     # the grid; start it again in a second
                                                                         # shell for a second worker on another core
    python benchmarks/disentanglement_results.py report                  # tables, plots and the Figure 4 maps
    python benchmarks/disentanglement_results.py run --quick --log /tmp/q.jsonl   # a smoke check (about a minute)

Every run trains `factor-vae` on fresh dSprites batches (`xgen train --steps`) for `--steps` optimiser steps at batch
64, and measures at every `--curve-every` steps, on held-out images: the reconstruction error, the FactorVAE score
(reduced preset), the binned MIG, the top-2 map overlap (eq. 1, claim (v)), the discriminator's TC estimate and the
active dimensions. At the last step it adds the FactorVAE score at a larger preset, Chen et al.'s MIG on a grid
subsample and the overlap under every pair rule. A run appends one JSON line to `--log` when it finishes; a rerun
skips the runs already there (the key is variant, seed and every setting), so the grid resumes where it stopped.
Workers claim cells in a claims file beside the log (a claim whose process is gone counts as free), so any number of
workers, started at any time, share the grid without running a cell twice.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from result_runs import load_runs, machine

import xgen
from xgen_plugins.dsprites import DSprites
from xgen_plugins.factor_vae.attention import latent_gradcams
from xgen_plugins.factor_vae.losses import attention_disentanglement, gaussian_kl, total_correlation

RUNS = Path(__file__).parent / "runs"
GAMMAS = [10, 20, 30, 40, 50]


def variants() -> dict[str, dict[str, Any]]:
    """Every variant of the grid: its `factor-vae` options."""
    out: dict[str, dict[str, Any]] = {}
    for g in GAMMAS:
        out[f"fvae-g{g}"] = {"gamma": g}
        out[f"ad-g{g}-l1"] = {"gamma": g, "ad_weight": 1.0}
    for g in (10, 40):
        for lam in (0.5, 1.5):
            out[f"ad-g{g}-l{lam}"] = {"gamma": g, "ad_weight": lam}
    out["ad-g40-l1-consecutive"] = {"gamma": 40, "ad_weight": 1.0, "ad_pairs": "consecutive"}
    out["ad-g40-l1-all"] = {"gamma": 40, "ad_weight": 1.0, "ad_pairs": "all"}
    out["ad-g40-l1-activations"] = {"gamma": 40, "ad_weight": 1.0, "ad_gradient": "activations"}
    return out


def cells(seeds: list[int]) -> list[tuple[str, int]]:
    """(variant, seed) in the order that makes each prefix of the grid a complete comparison: gamma 40 first, FactorVAE
    and AD-FactorVAE side by side, then the other gammas, then experiment 3, then the pair and gradient choices."""
    order = [40, 10, 20, 30, 50]
    out = []
    for s in seeds:
        out += [(f"{kind}-g{g}{suffix}", s) for g in order for kind, suffix in (("fvae", ""), ("ad", "-l1"))]
    for s in seeds:
        out += [(f"ad-g{g}-l{lam}", s) for g in (40, 10) for lam in (0.5, 1.5)]
    out += [(v, seeds[0]) for v in ("ad-g40-l1-consecutive", "ad-g40-l1-all", "ad-g40-l1-activations")]
    return out


def encode_means(model: xgen.Model, images: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, 1, 64, 64) -> (mean, logvar), each (N, D), without gradients."""
    means, logvars = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            latent = model.encode(images[start : start + batch])
            means.append(latent.mean)
            logvars.append(latent.logvar)
    return torch.cat(means), torch.cat(logvars)


def overlaps(model: xgen.Model, images: torch.Tensor, rules: tuple[str, ...]) -> dict[str, float]:
    """Mean eq. 1 overlap of the per-dimension maps at the first conv under each pair rule, images (N, 1, 64, 64)."""
    with xgen.gradients.capture(model.layer("encoder.0"), cut=True) as seen, torch.enable_grad():
        mu = model.encode(images).mean
    maps = latent_gradcams(mu, seen[0], gradient="activations").detach()
    return {rule: float(attention_disentanglement(maps, rule)) for rule in rules}


def measure(model: xgen.Model, data: DSprites, probe: torch.Tensor, args: argparse.Namespace, final: bool) -> dict:
    """The curve point of `model` now: held-out recon error, FactorVAE score, binned MIG, overlap, TC, active dims."""
    started = time.perf_counter()
    mu, logvar = encode_means(model, probe)
    with torch.no_grad():
        recon = model.decode(mu).clamp(1e-6, 1 - 1e-6)
        nll = torch.nn.functional.binary_cross_entropy(recon, probe, reduction="none").flatten(1).sum(1).mean()
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
        tc = total_correlation(model.module.tc_discriminator(z))
        kl_per_dim = (-0.5 * (1 + logvar - mu.square() - logvar.exp())).mean(0)
    generator = torch.Generator().manual_seed(1)
    factors = data.sample_factors(args.mig_images, generator)
    codes, _ = encode_means(model, data.render_factors(factors))
    votes = args.final_votes if final else args.votes
    fvs = xgen.metric(
        "factorvae-score", train_votes=votes, eval_votes=votes // 2, variance_images=args.variance_images, seed=0
    )
    point = {
        "recon": float(nll),
        "kl": float(gaussian_kl(mu, logvar)),
        "factorvae_score": float(fvs(model=model, data=data)),
        "mig_binned": float(xgen.metric("mig-binned")(codes=codes, factors=factors)),
        "tc_discriminator": float(tc),
        "active_dims": int((kl_per_dim > 0.01).sum()),
        "kl_per_dim": [round(float(v), 4) for v in kl_per_dim],
    }
    rules = ("top2", "consecutive", "all") if final else ("top2",)
    point.update({f"overlap_{rule}": value for rule, value in overlaps(model, probe[: args.overlap_n], rules).items()})
    if final and args.chen_images:
        point["mig"] = float(xgen.metric("mig", images=args.chen_images, seed=0)(model=model, data=data))
    point["measure_s"] = round(time.perf_counter() - started, 2)
    return point


def one_run(variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one (variant, seed) with the curve measured along the way; the finished record."""
    options = variants()[variant]
    data = DSprites(train_n=64, test_n=args.probe_n)
    probe = data.test().images
    curve: list[dict[str, Any]] = []
    clock = {"measure": 0.0}

    def on_log(record: dict[str, Any], model: xgen.Model) -> None:
        started = time.perf_counter()
        final = record["step"] == args.steps
        curve.append({**record, **measure(model, data, probe, args, final)})
        clock["measure"] += time.perf_counter() - started
        last = curve[-1]
        print(
            f"  {variant} seed {seed} step {record['step']}: recon {last['recon']:.1f} "
            f"fvs {last['factorvae_score']:.3f} mig-b {last['mig_binned']:.3f} overlap {last['overlap_top2']:.3f} "
            f"({last['measure_s']} s)",
            flush=True,
        )

    started = time.perf_counter()
    model = xgen.train(
        "factor-vae",
        data,
        steps=args.steps,
        seed=seed,
        device=args.device,
        options=options,
        log_every=args.curve_every,
        on_log=on_log,
    )
    total = time.perf_counter() - started
    if args.keep and seed == 0 and variant in ("fvae-g40", "ad-g40-l1"):
        xgen.save(model, RUNS / "disentanglement" / f"{variant}-s{seed}.pt")
    return {
        "variant": variant,
        "seed": seed,
        "options": options,
        **settings(args),
        "train_s": round(total - clock["measure"], 1),
        "step_s": round((total - clock["measure"]) / args.steps, 4),
        "curve": curve,
        "final": curve[-1],
    }


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs of a variant comparable; part of the run key."""
    return {
        "steps": args.steps,
        "curve_every": args.curve_every,
        "votes": args.votes,
        "final_votes": args.final_votes,
        "variance_images": args.variance_images,
        "mig_images": args.mig_images,
        "chen_images": args.chen_images,
        "probe_n": args.probe_n,
        "overlap_n": args.overlap_n,
    }


def run_key(record: dict[str, Any]) -> str:
    return json.dumps([record["variant"], record["seed"], {k: record[k] for k in settings_keys()}])


def settings_keys() -> list[str]:
    return ["steps", "curve_every", "votes", "final_votes", "variance_images", "mig_images", "chen_images", "probe_n"]


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock beside the log, so that workers append and claim cells one at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(args: argparse.Namespace, todo: list[tuple[str, int]]) -> tuple[str, int] | None:
    """The first cell neither in the log nor claimed by a live worker, now claimed by this process; None when none."""
    claims = args.log.with_suffix(".claims")
    base = settings(args)
    with locked(args.log):
        done = {run_key(r) for r in load_runs(args.log)}
        taken = {c["key"] for c in load_runs(claims) if _alive(c["pid"]) and c["pid"] != os.getpid()}
        for variant, seed in todo:
            key = run_key({"variant": variant, "seed": seed, **base})
            if key not in done and key not in taken:
                with claims.open("a") as fh:
                    fh.write(json.dumps({"key": key, "pid": os.getpid()}) + "\n")
                return variant, seed
    return None


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    warnings.simplefilter("once")
    todo = cells([int(s) for s in args.seeds.split(",")])
    if args.quick:
        todo = todo[:2]
    while (cell := claim(args, todo)) is not None:
        variant, seed = cell
        label = f"[pid {os.getpid()}, cell {todo.index(cell) + 1}/{len(todo)}] {variant} seed {seed}"
        print(f"{label}: training {args.steps} steps", flush=True)
        record = one_run(variant, seed, args)
        record["machine"] = machine()
        with locked(args.log), args.log.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        final = record["final"]
        print(
            f"{label}: {record['train_s']} s training; fvs {final['factorvae_score']:.3f}, "
            f"mig {final.get('mig', 'n/a')}",
            flush=True,
        )
    print(f"no cell left to claim in {args.log}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and measure the grid (resumable)")
    r.add_argument("--steps", type=int, default=1500)
    r.add_argument("--curve-every", type=int, default=500)
    r.add_argument("--seeds", default="0,1")
    r.add_argument("--votes", type=int, default=300, help="FactorVAE score training votes on the curve")
    r.add_argument("--final-votes", type=int, default=1000, help="... at the last step")
    r.add_argument("--variance-images", type=int, default=3000)
    r.add_argument("--mig-images", type=int, default=5000, help="images for the binned MIG")
    r.add_argument("--chen-images", type=int, default=10_000, help="grid subsample for Chen's MIG (0: skip)")
    r.add_argument("--probe-n", type=int, default=1000, help="held-out dSprites test images")
    r.add_argument("--overlap-n", type=int, default=500)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device", default="cpu")
    r.add_argument("--keep", action="store_true", help="save the gamma-40 seed-0 checkpoints for the map figure")
    r.add_argument("--log", type=Path, default=RUNS / "disentanglement.jsonl")
    r.add_argument("--quick", action="store_true", help="20 steps, tiny presets, two cells: checks the script")
    args = parser.parse_args()
    if args.command == "run":
        if args.quick:
            args.steps, args.curve_every, args.votes, args.final_votes = 20, 10, 20, 40
            args.variance_images, args.mig_images, args.chen_images, args.probe_n = 500, 1000, 2000, 100
            args.overlap_n, args.seeds = 50, "0"
        run(args)


if __name__ == "__main__":
    main()
