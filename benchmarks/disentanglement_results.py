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
import statistics
import warnings
from pathlib import Path
from typing import Any

import torch
from result_runs import load_runs, machine, write_report

import xgen
from xgen.machine import process_alive
from xgen.plugins import lookup
from xgen_plugins.dsprites import DSprites
from xgen_plugins.factor_vae.attention import attention_maps, dimension_cams
from xgen_plugins.factor_vae.claims import GAMMAS, cells, measure, train_and_measure
from xgen_plugins.factor_vae.losses import attention_disentanglement

RUNS = Path(__file__).parent / "runs"


def one_run(variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one (variant, seed) with the curve measured along the way (the code `xgen reproduce` runs for the
    disentanglement claims); the finished record."""

    def shown(last: dict[str, Any]) -> None:
        print(
            f"  {variant} seed {seed} step {last['step']}: recon {last['recon']:.1f} "
            f"fvs {last['factorvae_score']:.3f} mig-b {last['mig_binned']:.3f} overlap {last['overlap_top2']:.3f} "
            f"({last['measure_s']} s)",
            flush=True,
        )

    model, record = train_and_measure(variant, seed, settings(args), args.device, on_point=shown)
    if args.keep and seed == 0 and variant in ("fvae-g40", "ad-g40-l1"):
        xgen.save(model, RUNS / "disentanglement" / f"{variant}-s{seed}.pt")
    return record


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


#: The settings that make runs comparable; `overlap_n` is recorded but not part of the key.
KEY_SETTINGS = (
    "steps",
    "curve_every",
    "votes",
    "final_votes",
    "variance_images",
    "mig_images",
    "chen_images",
    "probe_n",
)


def run_key(record: dict[str, Any]) -> str:
    return json.dumps([record["variant"], record["seed"], {k: record[k] for k in KEY_SETTINGS}])


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


def claim(args: argparse.Namespace, todo: list[tuple[str, int]]) -> tuple[str, int] | None:
    """The first cell neither in the log nor claimed by a live worker, now claimed by this process; None when none."""
    claims = args.log.with_suffix(".claims")
    base = settings(args)
    with locked(args.log):
        done = {run_key(r) for r in load_runs(args.log)}
        taken = {c["key"] for c in load_runs(claims) if process_alive(c["pid"]) and c["pid"] != os.getpid()}
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


CONTROL_RULE = (
    "a difference counts when the two means differ by more than the sum of their seed standard deviations; with one "
    "seed on either side the comparison is not testable yet"
)


def grouped(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(r["variant"], []).append(r)
    return out


def values(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r["final"][key]) for r in runs if key in r["final"]]


def verdict(a: list[float], b: list[float], higher_is_better: bool) -> str:
    """Whether a beats b under CONTROL_RULE: 'better', 'worse', 'level' or 'not testable (n seeds)'."""
    if len(a) < 2 or len(b) < 2:
        return f"not testable ({len(a)} and {len(b)} seeds)"
    diff = statistics.mean(a) - statistics.mean(b)
    if abs(diff) <= statistics.stdev(a) + statistics.stdev(b):
        return "level"
    return "better" if (diff > 0) == higher_is_better else "worse"


def controls(args: argparse.Namespace) -> dict[str, float]:
    """What an untrained factor-vae (seed 0) scores on the same measures: the floor every trained run must clear."""
    path = args.log.with_name("disentanglement-controls.json")
    if path.exists():
        return json.loads(path.read_text())
    torch.set_num_threads(args.threads)
    data = DSprites(train_n=64, test_n=args.probe_n)
    arch = lookup("architecture", "factor-vae")()
    torch.manual_seed(0)
    module = arch.build((1, 64, 64)).eval()
    model = arch.wrap(module, (1, 64, 64))
    point = measure(model, data, data.test().images, settings(args), final=True)
    noise = torch.rand(2, 20_000, 32, 32, generator=torch.Generator().manual_seed(0))
    point["overlap_uniform_noise"] = float(attention_disentanglement(noise.transpose(0, 1), "top2"))
    path.write_text(json.dumps(point, indent=1))
    return point


MEASURES = [
    ("recon", "recon error", False, "{:.1f}"),
    ("factorvae_score", "FactorVAE score", True, "{:.3f}"),
    ("mig", "MIG (Chen)", True, "{:.3f}"),
    ("mig_binned", "MIG (binned)", True, "{:.3f}"),
    ("overlap_top2", "top-2 overlap", False, "{:.3f}"),
    ("overlap_top2_raw", "top-2 overlap, raw ReLU maps", False, "{:.3f}"),
    ("tc_discriminator", "TC (D)", False, "{:.2f}"),
    ("active_dims", "active dims", None, "{:.1f}"),
]


def fmt(vals: list[float], pattern: str) -> str:
    if not vals:
        return "–"
    if len(vals) == 1:
        return pattern.format(vals[0])
    return f"{pattern.format(statistics.mean(vals))} ± {pattern.format(statistics.stdev(vals))}"


def table_rows(by: dict[str, list[dict[str, Any]]], names: list[tuple[str, str]]) -> list[str]:
    header = "| variant | seeds | s/step | " + " | ".join(label for _, label, _, _ in MEASURES) + " |"
    lines = [header, "|" + "---|" * (3 + len(MEASURES))]
    for variant, label in names:
        runs = by.get(variant, [])
        step = fmt([r["step_s"] for r in runs], "{:.2f}")
        cells = [fmt(values(runs, key), pattern) for key, _, _, pattern in MEASURES]
        lines.append(f"| {label} | {len(runs)} | {step} | " + " | ".join(cells) + " |")
    return lines


def plots(by: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
    """The trade-off scatter (recon against FactorVAE score and MIG) and the metric curves over steps, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in zip(axes, ("factorvae_score", "mig"), ("FactorVAE score", "MIG (Chen)"), strict=True):
        for kind, colour in (("fvae", "tab:blue"), ("ad", "tab:orange")):
            for g in GAMMAS:
                runs = by.get(f"{kind}-g{g}" if kind == "fvae" else f"ad-g{g}-l1", [])
                xs, ys = values(runs, "recon"), values(runs, key)
                if xs and ys:
                    ax.scatter(xs, ys, color=colour, s=25)
                    ax.annotate(f"{g}", (statistics.mean(xs), statistics.mean(ys)), fontsize=7)
        ax.set_xlabel("reconstruction error (held-out, nats / image)")
        ax.set_ylabel(label)
    axes[0].scatter([], [], color="tab:blue", label="FactorVAE")
    axes[0].scatter([], [], color="tab:orange", label="AD-FactorVAE (lambda 1)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Trade-off at the last step; numbers are gamma; one dot per seed", fontsize=9)
    fig.tight_layout()
    path = out / "disentanglement-tradeoff.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path.name)

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    keys = [
        ("recon", "recon error"),
        ("factorvae_score", "FactorVAE score (curve preset)"),
        ("mig_binned", "MIG (binned)"),
        ("overlap_top2", "top-2 overlap"),
    ]
    for ax, (key, label) in zip(axes, keys, strict=True):
        for variant, colour in (
            ("fvae-g40", "tab:blue"),
            ("ad-g40-l1", "tab:orange"),
            ("fvae-g10", "tab:green"),
            ("ad-g10-l1", "tab:red"),
        ):
            for i, r in enumerate(by.get(variant, [])):
                ax.plot(
                    [c["step"] for c in r["curve"]],
                    [c[key] for c in r["curve"]],
                    color=colour,
                    marker="o",
                    ms=3,
                    label=variant if i == 0 else None,
                    alpha=0.8,
                )
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "disentanglement-curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path.name)
    return written


def figure4(args: argparse.Namespace, out: Path) -> str | None:
    """Held-out dSprites images with the maps of their two highest-responding dimensions (Liu et al.'s Figure 4,
    right), for the kept gamma-40 seed-0 FactorVAE and AD-FactorVAE checkpoints."""
    from xgen.visualize import captioned, grid, overlays, save_png

    folder = RUNS / "disentanglement"
    paths = [folder / "fvae-g40-s0.pt", folder / "ad-g40-l1-s0.pt"]
    if not all(p.exists() for p in paths):
        return None
    data = DSprites(train_n=64, test_n=args.probe_n)
    images = data.test().images[:6]
    tiles = []
    for path in paths:
        model = xgen.load(path)
        exp = xgen.explain(model, images, plugin="vae-gradcam", per_dim=True, layer="encoder.0")
        per_dim = exp.details["per_dim"]
        raw = attention_maps(dimension_cams(model, images))
        top = raw.flatten(2).sum(2).topk(2, dim=1).indices
        ratio = attention_disentanglement(raw, "top2", reduction="none")
        for i in range(len(images)):
            maps = per_dim[i, top[i]].numpy()
            shown = overlays(images[i : i + 1].repeat(2, 1, 1, 1).numpy(), maps)
            name = path.stem.split("-s")[0]
            for k in range(2):
                caption = f"{name} z{int(top[i, k])}" + (f" ov {float(ratio[i]):.2f}" if k == 0 else "")
                tiles.append(captioned(shown[k], caption, min_size=96))
    target = out / "disentanglement-top2-maps.png"
    save_png(grid(tiles, columns=4), target)
    return target.name


def report(args: argparse.Namespace) -> None:
    runs = [r for r in load_runs(args.log) if r["steps"] == args.steps]
    by = grouped(runs)
    out = args.out.parent
    control = controls(args)
    figures = plots(by, out)
    fig4 = figure4(args, out)
    machines = sorted({r["machine"] for r in runs})
    lines = [
        "# FactorVAE and AD-FactorVAE on dSprites: the run log, every variant (generated)",
        "",
        f"Made by `python benchmarks/disentanglement_results.py report --out {args.out}` from {len(runs)} runs in "
        f"`{args.log.name}` "
        f"({args.steps} steps each, batch 64, fresh dSprites batches every step). Machines: {'; '.join(machines)}.",
        "Measures at the last step on 1,000 held-out dSprites test images (split_seed 0): reconstruction error = "
        "Bernoulli NLL of the decoded encoder mean, summed over pixels; FactorVAE score with "
        f"{runs[0]['final_votes'] if runs else '?'} training and half as many evaluation votes of 64 images; Chen's "
        f"MIG on a {runs[0]['chen_images'] if runs else '?'}-cell grid subsample; binned MIG on "
        f"{runs[0]['mig_images'] if runs else '?'} images; top-2 overlap = eq. 1 between the two most responding "
        "dimensions' Grad-CAMs at the first conv; TC (D) = the discriminator's density-ratio estimate; active dims = "
        "latents whose mean KL exceeds 0.01 (the report's threshold).",
        "",
        f"Verdict rule: {CONTROL_RULE}.",
        "",
        "## Controls: an untrained factor-vae (seed 0) on the same measures",
        "",
        "| measure | value |",
        "|---|---|",
        *[
            f"| {key} | {control[key]:.3f} |"
            for key in ("recon", "factorvae_score", "mig", "mig_binned", "overlap_top2", "overlap_uniform_noise")
            if key in control
        ],
        "",
        "FactorVAE score chance level with five factors: 0.2. overlap_uniform_noise: two independent uniform-noise "
        "maps (eq. 1 expectation 2/3).",
        "",
        "## Experiment 1: FactorVAE against AD-FactorVAE (lambda 1) over gamma",
        "",
        *table_rows(
            by,
            [
                (f"{k}-g{g}{s}", f"{n} gamma {g}")
                for g in GAMMAS
                for k, s, n in (("fvae", "", "FactorVAE"), ("ad", "-l1", "AD"))
            ],
        ),
        "",
        "| gamma | FactorVAE score: AD vs FactorVAE | MIG: AD vs FactorVAE | recon: AD vs FactorVAE | "
        "top-2 overlap: AD vs FactorVAE |",
        "|---|---|---|---|---|",
    ]
    for g in GAMMAS:
        fv, ad = by.get(f"fvae-g{g}", []), by.get(f"ad-g{g}-l1", [])
        cells = [
            verdict(values(ad, k), values(fv, k), hib)
            for k, hib in (("factorvae_score", True), ("mig", True), ("recon", False), ("overlap_top2", False))
        ]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Experiment 3: lambda at two gammas",
        "",
        *table_rows(by, [(f"ad-g{g}-l{lam}", f"AD gamma {g} lambda {lam}") for g in (10, 40) for lam in (0.5, 1, 1.5)]),
        "",
        "## The choices the paper leaves open (gamma 40, lambda 1, seed 0)",
        "",
        *table_rows(
            by,
            [
                ("ad-g40-l1", "top2 pairs, full gradient (default)"),
                ("ad-g40-l1-consecutive", "consecutive pairs"),
                ("ad-g40-l1-all", "all pairs"),
                ("ad-g40-l1-activations", "top2, activations only"),
            ],
        ),
        "",
        "Figures: " + ", ".join(f"`{f}`" for f in figures + ([fig4] if fig4 else [])),
        "",
    ]
    write_report(args.out, lines)


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
    p = sub.add_parser("report", help="tables, plots and the map figure from the run log")
    p.add_argument("--log", type=Path, default=RUNS / "disentanglement.jsonl")
    p.add_argument("--out", type=Path, default=RUNS / "disentanglement.md")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    for flag, default in (
        ("--votes", 300),
        ("--final-votes", 1000),
        ("--variance-images", 3000),
        ("--mig-images", 5000),
        ("--chen-images", 10_000),
        ("--probe-n", 1000),
        ("--overlap-n", 500),
    ):
        p.add_argument(flag, type=int, default=default, help="as for run (the controls use them)")
    args = parser.parse_args()
    if args.command == "report":
        report(args)
    if args.command == "run":
        if args.quick:
            args.steps, args.curve_every, args.votes, args.final_votes = 20, 10, 20, 40
            args.variance_images, args.mig_images, args.chen_images, args.probe_n = 500, 1000, 2000, 100
            args.overlap_n, args.seeds = 50, "0"
        run(args)


if __name__ == "__main__":
    main()
