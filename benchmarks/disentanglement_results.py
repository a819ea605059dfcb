"""FactorVAE against AD-FactorVAE on dSprites (issue #12, "What must be shown"): the tables, plots and Figure 4
maps of docs/results/disentanglement-log.md, from the runs `xgen reproduce` made for claims (iv) and (v) of Liu et
al. (../shared/seeds/000, Table 1 experiments 1 and 3) and the `ad_pairs` / `ad_gradient` choices.

    xgen reproduce ad-factorvae-better-tradeoff ad-factorvae-separates-attention --threads 1 \
        --out benchmarks/runs/reproduce                                  # the grid; start it again in a second
                                                                         # shell for a second worker on another core
    python benchmarks/disentanglement_results.py report                  # tables, plots and the Figure 4 maps
    python benchmarks/disentanglement_results.py keep fvae-g40:1 ad-g40-l1:1   # retrain logged runs for their
                                                                         # checkpoints, checked against the log

Every run trains `factor-vae` on fresh dSprites batches for 1,500 optimiser steps at batch 64 and measures at every
500 steps, on held-out images: the reconstruction error, the FactorVAE score (reduced preset), the binned MIG, the
top-2 map overlap (eq. 1, claim (v)), the discriminator's TC estimate and the active dimensions. At the last step
it adds the FactorVAE score at a larger preset, Chen et al.'s MIG on a grid subsample and the overlap under every
pair rule (`xgen_plugins/factor_vae/claims.py`). This script's own run loop and worker claims file went away when
the grid moved to `xgen reproduce`, whose log and lock files do the same; its first 8 runs were moved into that log
(`as_reproduce_record`).
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from result_runs import load_runs, machine, shown_path, write_report

import xgen
from xgen.plugins import lookup
from xgen.reproduction import append_record
from xgen_plugins.dsprites import DSprites
from xgen_plugins.factor_vae.attention import attention_maps, dimension_cams
from xgen_plugins.factor_vae.claims import (
    EXPERIMENT,
    GAMMAS,
    KEPT,
    SETTINGS,
    AttentionSeparates,
    FactorVAETradeoff,
    measure,
    train_and_measure,
)
from xgen_plugins.factor_vae.losses import attention_disentanglement, top2_dims
from xgen_plugins.factor_vae.regions import region_measures

RUNS = Path(__file__).parent / "runs"
REPRODUCE = RUNS / "reproduce"
#: How the tables name the gamma-40 variants whose checkpoints the runs keep (`claims.KEPT`).
KEPT_LABELS = {
    "fvae-g40": "FactorVAE gamma 40 (no L_AD)",
    "ad-g40-l1": "AD lambda 1: top2 pairs, full gradient (default)",
    "ad-g40-l1-consecutive": "AD lambda 1: consecutive pairs",
    "ad-g40-l1-all": "AD lambda 1: all pairs",
    "ad-g40-l1-activations": "AD lambda 1: top2, activations only",
}


def reproduce_records(log: Path, steps: int) -> list[dict[str, Any]]:
    """The finished disentanglement runs of `steps` steps in an `xgen reproduce` log, as logged (the last record of a
    run key wins, as in `xgen reproduce`)."""
    records: dict[str, dict[str, Any]] = {}
    for record in load_runs(log):
        run = record.get("run", {})
        if run.get("experiment") == EXPERIMENT and run.get("settings", {}).get("steps") == steps:
            records[record["key"]] = record
    return list(records.values())


def logged_runs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's own result, with the machine it ran on and the folder its files went to (relative to the log's
    folder)."""
    return [{**r["result"], "machine": r["machine"], "folder": r.get("folder")} for r in records]


def grouped(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(r["variant"], []).append(r)
    return out


def values(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r["final"][key]) for r in runs if key in r["final"]]


def verdict_rows(records: list[dict[str, Any]]) -> list[str]:
    """The two claims' findings on these runs, by the rule `xgen reproduce` applies (`xgen.claims.compare`)."""
    lines = ["| claim | comparison | measured (mean ± std over seeds) | verdict | why |", "|---|---|---|---|---|"]
    for claim in (FactorVAETradeoff(), AttentionSeparates()):
        for f in claim.findings(records):
            lines.append(f"| {claim.name} | {f.subject} | {f.measured} | {f.verdict} | {f.reason} |")
    return lines


def untrained_model() -> xgen.Model:
    """A factor-vae with its seed-0 initial weights: the control every trained run is read against."""
    arch = lookup("architecture", "factor-vae")()
    torch.manual_seed(0)
    return arch.wrap(arch.build((1, 64, 64)).eval(), (1, 64, 64))


def controls(args: argparse.Namespace, data: DSprites) -> dict[str, float]:
    """What an untrained factor-vae (seed 0) scores on the same measures: the floor every trained run must clear."""
    path = RUNS / "disentanglement-controls.json"
    if path.exists():
        return json.loads(path.read_text())
    torch.set_num_threads(args.threads)
    settings = {**SETTINGS["default"], "steps": args.steps}
    point = measure(untrained_model(), data, data.test().images, settings, final=True)
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


#: The overlap under each pair rule, for the table of the pair choices (each trains with its own rule).
PAIR_MEASURES = [
    ("overlap_top2", "overlap, top-2 pair", False, "{:.3f}"),
    ("overlap_consecutive", "overlap, consecutive pairs", False, "{:.3f}"),
    ("overlap_all", "overlap, all pairs", False, "{:.3f}"),
]

#: Where the top-2 maps look (`regions.region_measures`), for the runs that logged it.
REGION_MEASURES = [
    ("overlap_top2", "eq. 1 overlap", False, "{:.3f}"),
    ("map_mean", "mean map value", False, "{:.3f}"),
    ("region_iou_0.5", "IoU of the regions >= 0.5", False, "{:.3f}"),
    ("region_iou_0.7", "IoU of the regions >= 0.7", False, "{:.3f}"),
    ("region_on_sprite", "regions >= 0.5 on the sprite", True, "{:.3f}"),
    ("mass_on_sprite", "map mass on the sprite", True, "{:.3f}"),
]


def table_rows(
    by: dict[str, list[dict[str, Any]]], names: list[tuple[str, str]], measures: list[tuple[Any, ...]] = MEASURES
) -> list[str]:
    header = "| variant | seeds | s/step | " + " | ".join(label for _, label, _, _ in measures) + " |"
    lines = [header, "|" + "---|" * (3 + len(measures))]
    for variant, label in names:
        runs = by.get(variant, [])
        step = fmt([r["step_s"] for r in runs], "{:.2f}")
        cells = [fmt(values(runs, key), pattern) for key, _, _, pattern in measures]
        lines.append(f"| {label} | {len(runs)} | {step} | " + " | ".join(cells) + " |")
    return lines


def plots(by: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
    """The trade-off scatter (recon against FactorVAE score and MIG) and the metric curves over steps, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    groups = [
        ("FactorVAE", "tab:blue", "o", [(g, f"fvae-g{g}") for g in GAMMAS]),
        ("AD-FactorVAE, lambda 1", "tab:orange", "s", [(g, f"ad-g{g}-l1") for g in GAMMAS]),
        ("AD-FactorVAE, lambda 0.5", "tab:green", "^", [(g, f"ad-g{g}-l0.5") for g in (10, 40)]),
        ("AD-FactorVAE, lambda 1.5", "tab:red", "v", [(g, f"ad-g{g}-l1.5") for g in (10, 40)]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, label in zip(axes, ("factorvae_score", "mig"), ("FactorVAE score", "MIG (Chen)"), strict=True):
        for name, colour, marker, cells in groups:
            shown = False
            for g, variant in cells:
                xs, ys = values(by.get(variant, []), "recon"), values(by.get(variant, []), key)
                if not (xs and ys):
                    continue
                ax.scatter(xs, ys, color=colour, marker=marker, s=12, alpha=0.35)
                x, y = statistics.mean(xs), statistics.mean(ys)
                sx = statistics.stdev(xs) if len(xs) > 1 else 0.0
                sy = statistics.stdev(ys) if len(ys) > 1 else 0.0
                ax.errorbar(
                    x,
                    y,
                    xerr=sx,
                    yerr=sy,
                    color=colour,
                    marker=marker,
                    ms=6,
                    capsize=2,
                    lw=1,
                    label=None if shown else name,
                )
                ax.annotate(str(g), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, color=colour)
                shown = True
        ax.set_xlabel("reconstruction error (held-out, nats / image; lower is better)")
        ax.set_ylabel(f"{label} (higher is better)")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "Trade-off at the last step (1,500 steps): mean ± std over seeds, numbers are gamma, faint dots single seeds",
        fontsize=9,
    )
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


def kept_checkpoint(args: argparse.Namespace, runs: list[dict[str, Any]], variant: str, seed: int = 0) -> Path | None:
    """The checkpoint of (`variant`, `seed`) that `xgen reproduce` or `keep` left in the run's folder, if any."""
    for r in runs:
        if r["variant"] == variant and r["seed"] == seed and r.get("folder"):
            kept = args.log.parent / r["folder"] / "model.pt"
            if kept.exists():
                return kept
    return None


def region_rows(args: argparse.Namespace, runs: list[dict[str, Any]], probe: torch.Tensor) -> list[str]:
    """`region_measures` (xgen_plugins/factor_vae/regions.py) of the kept gamma-40 checkpoints of every seed (lambda
    1 with and without L_AD, and the pair and gradient choices) and of an untrained factor-vae, on the first
    `--overlap-n` held-out images."""
    images = probe[: args.overlap_n]
    models = [("untrained factor-vae (seed 0)", untrained_model())]
    for variant in KEPT:
        for seed in sorted({r["seed"] for r in runs if r["variant"] == variant}):
            path = kept_checkpoint(args, runs, variant, seed)
            if path is not None:
                models.append((f"{KEPT_LABELS[variant]}; seed {seed}, `{shown_path(path)}`", xgen.load(path)))
    columns = [(key, label) for key, label, _, _ in REGION_MEASURES] + [("sprite_area", "sprite's share of the image")]
    lines = ["| model | " + " | ".join(label for _, label in columns) + " |", "|" + "---|" * (1 + len(columns))]
    for name, model in models:
        m = region_measures(attention_maps(dimension_cams(model, images)), images)
        lines.append(f"| {name} | " + " | ".join(f"{m[key]:.3f}" for key, _ in columns) + " |")
    return lines


def traversals(args: argparse.Namespace, out: Path, runs: list[dict[str, Any]], probe: torch.Tensor) -> list[str]:
    """Latent traversals (`xgen.traverse`, one row per dimension, +-2 around the encoding of one held-out image, with
    each dimension's attention map) of the kept gamma-40 seed-0 FactorVAE and AD-FactorVAE checkpoints."""
    image = probe[:1]
    written = []
    for variant in ("fvae-g40", "ad-g40-l1"):
        path = kept_checkpoint(args, runs, variant)
        if path is not None:
            target = out / f"disentanglement-traversal-{variant}.png"
            xgen.traverse(xgen.load(path), image, maps=True).save(target)
            written.append(target.name)
    return written


def figure4(args: argparse.Namespace, out: Path, runs: list[dict[str, Any]], probe: torch.Tensor) -> str | None:
    """Held-out dSprites images with the maps of their two highest-responding dimensions (Liu et al.'s Figure 4,
    right), for the kept gamma-40 seed-0 FactorVAE and AD-FactorVAE checkpoints."""
    from xgen.visualize import captioned, grid, overlays, save_png

    paths = [kept_checkpoint(args, runs, "fvae-g40"), kept_checkpoint(args, runs, "ad-g40-l1")]
    if None in paths:
        return None
    images = probe[:6]
    tiles = []
    for path in paths:
        model = xgen.load(path)
        exp = xgen.explain(model, images, plugin="vae-gradcam", per_dim=True, layer="encoder.0")
        per_dim = exp.details["per_dim"]
        raw = attention_maps(dimension_cams(model, images))
        top = top2_dims(raw)
        ratio = attention_disentanglement(raw, "top2", reduction="none")
        for i in range(len(images)):
            maps = per_dim[i, top[i]].numpy()
            shown = overlays(images[i : i + 1].repeat(2, 1, 1, 1).numpy(), maps)
            name = "FactorVAE" if path == paths[0] else "AD"
            for k in range(2):
                caption = f"{name} z{int(top[i, k])}" + (f" ov {float(ratio[i]):.2f}" if k == 0 else "")
                tiles.append(captioned(shown[k], caption, min_size=96))
    target = out / "disentanglement-top2-maps.png"
    save_png(grid(tiles, columns=4), target)
    return target.name


def report(args: argparse.Namespace) -> None:
    records = reproduce_records(args.log, args.steps)
    runs = logged_runs(records)
    by = grouped(runs)
    out = args.out.parent
    data = DSprites(train_n=64, test_n=args.probe_n)
    probe = data.test().images
    control = controls(args, data)
    figures = plots(by, out)
    fig4 = figure4(args, out, runs, probe)
    figures += traversals(args, out, runs, probe)
    machines = sorted({r["machine"] for r in runs})
    lines = [
        "# FactorVAE and AD-FactorVAE on dSprites: the run log, every variant (generated)",
        "",
        f"Made by `python benchmarks/disentanglement_results.py report --out {args.out}` from {len(runs)} runs in "
        f"`{shown_path(args.log)}` "
        f"({args.steps} steps each, batch 64, fresh dSprites batches every step). Machines: {'; '.join(machines)}.",
        "Measures at the last step on 1,000 held-out dSprites test images (split_seed 0): reconstruction error = "
        "Bernoulli NLL of the decoded encoder mean, summed over pixels; FactorVAE score with "
        f"{runs[0]['final_votes'] if runs else '?'} training and half as many evaluation votes of 64 images; Chen's "
        f"MIG on a {runs[0]['chen_images'] if runs else '?'}-cell grid subsample; binned MIG on "
        f"{runs[0]['mig_images'] if runs else '?'} images; top-2 overlap = eq. 1 between the two most responding "
        "dimensions' Grad-CAMs at the first conv; TC (D) = the discriminator's density-ratio estimate; active dims = "
        "latents whose mean KL exceeds 0.01 (the report's threshold).",
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
        "## Verdicts, by the rule of `xgen reproduce` (`xgen.claims.compare`)",
        "",
        "A difference counts when it exceeds the spread over seeds (the larger of the two sample standard deviations);"
        " with fewer than two seeds on a side there is no spread, and the comparison is not testable.",
        "",
        *verdict_rows(records),
    ]
    lines += [
        "",
        "## Experiment 3: lambda at two gammas",
        "",
        *table_rows(by, [(f"ad-g{g}-l{lam}", f"AD gamma {g} lambda {lam}") for g in (10, 40) for lam in (0.5, 1, 1.5)]),
        "",
        "## The choices the paper leaves open (gamma 40, lambda 1, seed 0)",
        "",
        *table_rows(by, [(v, KEPT_LABELS[v]) for v in KEPT if v.startswith("ad-")]),
        "",
        "The overlap under each pair rule (each variant's loss uses its own rule):",
        "",
        *table_rows(by, list(KEPT_LABELS.items()), PAIR_MEASURES),
        "",
        "## Where the two most responding dimensions look (claim v, beyond eq. 1)",
        "",
        f"On the first {args.overlap_n} held-out images, with the maps eq. 1 compares (|Grad-CAM| at the first conv, "
        "32 x 32, each scaled to a maximum of 1) of each image's two most responding dimensions: a high-response "
        "region is where a map is at least 0.5 (or 0.7) of its maximum; the sprite is the image downsampled to "
        "32 x 32 and thresholded at 0.5. The seed-0 gamma-40 runs keep their checkpoints (`model.pt` in their run "
        "folders, 18 MB each, not in the repository); `python benchmarks/disentanglement_results.py keep "
        "VARIANT:SEED` retrains any logged run, checks its curve against the log and saves its checkpoint (the "
        "FactorVAE and default AD rows of both seeds were made so, every logged measure bit-identical). Without the "
        "checkpoints this table has the control row only.",
        "",
        *region_rows(args, runs, probe),
        "",
        "The same measures as logged at the last step, mean ± std over the seeds that have them (runs logged again by "
        "`keep`, or made after the measures were added):",
        "",
        *table_rows(
            {v: [r for r in rs if "region_iou_0.5" in r["final"]] for v, rs in by.items()},
            [
                (f"{kind}-g{g}{suffix}", name.format(g=g))
                for g in GAMMAS
                for kind, suffix, name in (("fvae", "", "FactorVAE gamma {g}"), ("ad", "-l1", "AD gamma {g}, lambda 1"))
                if any("region_iou_0.5" in r["final"] for r in by.get(f"{kind}-g{g}{suffix}", []))
            ],
            REGION_MEASURES,
        ),
        "",
        "Figures: " + ", ".join(f"`{f}`" for f in figures + ([fig4] if fig4 else [])),
        "",
    ]
    write_report(args.out, lines)


def curve_differences(logged: list[dict[str, Any]], retrained: list[dict[str, Any]]) -> dict[str, float]:
    """The largest difference of each measure the logged curve has, relative to the logged value (floored at 1),
    over its points against the retrained curve; timings, and measures a later version added, are left out."""
    if [p["step"] for p in logged] != [p["step"] for p in retrained]:
        raise SystemExit("the retrained curve has other steps than the logged one")
    out: dict[str, float] = {}
    for old, new in zip(logged, retrained, strict=True):
        for key, value in old.items():
            if isinstance(value, int | float) and key != "step" and not key.endswith("_s") and key in new:
                diff = abs(float(new[key]) - float(value)) / max(abs(float(value)), 1.0)
                out[key] = max(out.get(key, 0.0), diff)
    return out


def keep(args: argparse.Namespace) -> None:
    """Retrain logged runs (variant:seed) with the logged settings on one thread, as the grid ran, check that every
    measure of the curve is the logged one, and save the model as `model.pt` in the run's folder, where `report`
    reads it: the checkpoints the grid did not keep, or that a clone lacks. Where the retrained curve has measures
    the logged one lacks (added to `claims.overlaps` after the run), the run is logged again with them, its timings
    as first logged; the claims then read the later record."""
    torch.set_num_threads(1)
    records = {(r["run"]["variant"], r["run"]["seed"]): r for r in reproduce_records(args.log, args.steps)}
    if bad := [option for option in args.set if "=" not in option]:
        raise SystemExit(f"--set {bad[0]}: write it as OPTION=VALUE, as --set ad_jacobian=batched")
    how = dict(option.split("=", 1) for option in args.set)
    for cell in args.runs:
        variant, _, seed = cell.rpartition(":")
        record = records.get((variant, int(seed))) if seed.isdigit() else None
        if record is None:
            raise SystemExit(
                f"{cell}: no finished run of that variant and seed in {args.log}; write it as variant:seed"
            )
        model, retrained = train_and_measure(variant, int(seed), record["run"]["settings"], how=how)
        diffs = curve_differences(record["result"]["curve"], retrained["curve"])
        if not diffs:
            raise SystemExit(f"{cell}: the logged curve has no measure to check the retrained run against")
        worst = max(diffs, key=diffs.__getitem__)
        print(
            f"{cell}: {len(diffs)} measures at {len(retrained['curve'])} curve points; largest relative difference "
            f"from the log {diffs[worst]:.2g} ({worst}), train {retrained['train_s']:.0f} s"
        )
        if diffs[worst] > args.tolerance:
            differ = ", ".join(f"{k} {v:.2g}" for k, v in sorted(diffs.items()) if v > args.tolerance)
            raise SystemExit(
                f"{cell}: the retrained run is not the logged one ({worst} differs; relative differences: {differ}); "
                "nothing saved. Was it made another way (--set ad_jacobian=batched)?"
            )
        target = args.log.parent / record["folder"] / "model.pt"
        xgen.save(model, target)
        print(f"{cell}: saved {shown_path(target)}")
        added = sorted(set(retrained["final"]) - set(record["result"]["final"]) - {"measure_s"})
        if added:
            remeasured = {
                "finished": datetime.now().isoformat(timespec="seconds"),
                "machine": machine(),
                "added": added,
            }
            result = {
                **record["result"],
                "curve": retrained["curve"],
                "final": retrained["final"],
                "remeasured": remeasured,
            }
            append_record(args.log, {**record, "result": result})
            print(f"{cell}: logged again with {', '.join(added)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keep", help="retrain logged runs for their checkpoints, checked against the log")
    k.add_argument("runs", nargs="+", help="variant:seed, as fvae-g40:1")
    k.add_argument("--log", type=Path, default=REPRODUCE / "runs.jsonl")
    k.add_argument("--steps", type=int, default=1500)
    k.add_argument("--tolerance", type=float, default=1e-4, help="largest relative difference from the log")
    k.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="how the logged runs computed, where it differs from today's default (ad_jacobian=batched for the "
        "first four AD runs at seed 0)",
    )
    p = sub.add_parser("report", help="tables, plots and the map figure from the xgen reproduce log")
    p.add_argument("--log", type=Path, default=REPRODUCE / "runs.jsonl")
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
        p.add_argument(flag, type=int, default=default, help="as the default scale's runs (the controls use them)")
    args = parser.parse_args()
    if args.command == "keep":
        keep(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
