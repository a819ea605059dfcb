"""Liu et al.'s disentanglement claims that `xgen reproduce` re-measures (paper 000, the reproducibility report of
"Towards Visually Explaining Variational Autoencoders", CVPR 2020, section 4.2 and Table 1): FactorVAE against
AD-FactorVAE on dSprites, one training run per (variant, seed) with its curve of measures."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import xgen
from xgen.claims import Finding, Run, RunContext, compare
from xgen_plugins.dsprites import DSprites
from xgen_plugins.factor_vae.attention import attention_maps, dimension_cams
from xgen_plugins.factor_vae.losses import attention_disentanglement, gaussian_kl, total_correlation
from xgen_plugins.factor_vae.regions import region_measures

EXPERIMENT = "factor-vae-dsprites"
GAMMAS = (10, 20, 30, 40, 50)
#: The run settings of each scale (every one is part of the run's identity). `default` is the grid
#: docs/results/disentanglement.md reports: 1,500 steps, 1% of the report's 150,000.
SETTINGS: dict[str, dict[str, int]] = {
    "quick": {
        "steps": 20,
        "curve_every": 10,
        "votes": 20,
        "final_votes": 40,
        "variance_images": 500,
        "mig_images": 1000,
        "chen_images": 2000,
        "probe_n": 100,
        "overlap_n": 50,
    },
    "default": {
        "steps": 1500,
        "curve_every": 500,
        "votes": 300,
        "final_votes": 1000,
        "variance_images": 3000,
        "mig_images": 5000,
        "chen_images": 10_000,
        "probe_n": 1000,
        "overlap_n": 500,
    },
    "paper": {
        "steps": 150_000,
        "curve_every": 10_000,
        "votes": 800,
        "final_votes": 800,
        "variance_images": 10_000,
        "mig_images": 10_000,
        "chen_images": 0,
        "probe_n": 1000,
        "overlap_n": 500,
    },
}
SEEDS = {"quick": [0, 1], "default": [0, 1], "paper": [0, 1]}
#: Variants whose seed-0 checkpoint a run keeps (model.pt in its folder): gamma 40 at lambda 1 with and without L_AD,
#: and the pair and gradient choices, for the map figures and the region measures of docs/results/disentanglement.md.
KEPT = ("fvae-g40", "ad-g40-l1", "ad-g40-l1-consecutive", "ad-g40-l1-all", "ad-g40-l1-activations")


def variants() -> dict[str, dict[str, Any]]:
    """Every variant of the grid: its `factor-vae` options (Table 1: experiment 1 over gamma at lambda 1,
    experiment 3 with lambda 0.5 and 1.5 at gamma 10 and 40, then the pair and gradient choices at gamma 40)."""
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


def cells(seeds: Sequence[int]) -> list[tuple[str, int]]:
    """(variant, seed) in the order that makes each prefix of the grid a complete comparison: gamma 40 first,
    FactorVAE and AD-FactorVAE side by side, then the other gammas, then experiment 3, then the choices (one seed)."""
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
    """Mean eq. 1 overlap of the per-dimension maps at the first conv, images (N, 1, 64, 64): under each pair rule
    with the loss's default maps (abs, each scaled to max 1), and for the top-2 pair with raw ReLU maps (the literal
    reading, which a shrinking map can drive to 0); and where the top-2 maps look (`regions.region_measures`: the
    IoU of their high-response regions, their share on the sprite), which tells separating maps from sharpening ones."""
    cams = dimension_cams(model, images)
    maps = attention_maps(cams, "abs", "max")
    out = {f"overlap_{rule}": float(attention_disentanglement(maps, rule)) for rule in rules}
    out["overlap_top2_raw"] = float(attention_disentanglement(attention_maps(cams, "relu", "none"), "top2"))
    out.update({k: v for k, v in region_measures(maps, images).items() if k != "overlap_top2"})
    return out


def measure(
    model: xgen.Model, data: DSprites, probe: torch.Tensor, settings: dict[str, int], final: bool
) -> dict[str, Any]:
    """The curve point of `model` now, probe: (N, 1, 64, 64) held-out images: recon error (Bernoulli NLL of the
    decoded encoder mean), KL, FactorVAE score, binned MIG, top-2 overlap, the discriminator's TC, active dims; at
    the last step also Chen's MIG and the overlap under every pair rule."""
    started = time.perf_counter()
    mu, logvar = encode_means(model, probe)
    with torch.no_grad():
        recon = model.decode(mu).clamp(1e-6, 1 - 1e-6)
        nll = torch.nn.functional.binary_cross_entropy(recon, probe, reduction="none").flatten(1).sum(1).mean()
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
        tc = total_correlation(model.module.tc_discriminator(z))
        kl_per_dim = (-0.5 * (1 + logvar - mu.square() - logvar.exp())).mean(0)
    generator = torch.Generator().manual_seed(1)
    factors = data.sample_factors(settings["mig_images"], generator)
    codes, _ = encode_means(model, data.render_factors(factors))
    votes = settings["final_votes"] if final else settings["votes"]
    fvs = xgen.metric(
        "factorvae-score",
        train_votes=votes,
        eval_votes=votes // 2,
        variance_images=settings["variance_images"],
        seed=0,
    )
    point: dict[str, Any] = {
        "recon": float(nll),
        "kl": float(gaussian_kl(mu, logvar)),
        "factorvae_score": float(fvs(model=model, data=data)),
        "mig_binned": float(xgen.metric("mig-binned")(codes=codes, factors=factors)),
        "tc_discriminator": float(tc),
        "active_dims": int((kl_per_dim > 0.01).sum()),
        "kl_per_dim": [round(float(v), 4) for v in kl_per_dim],
    }
    rules = ("top2", "consecutive", "all") if final else ("top2",)
    point.update(overlaps(model, probe[: settings["overlap_n"]], rules))
    if final and settings["chen_images"]:
        point["mig"] = float(xgen.metric("mig", images=settings["chen_images"], seed=0)(model=model, data=data))
    point["measure_s"] = round(time.perf_counter() - started, 2)
    return point


def train_and_measure(
    variant: str,
    seed: int,
    settings: dict[str, int],
    device: str = "cpu",
    on_point: Callable[[dict[str, Any]], None] | None = None,
    state: Path | None = None,
    how: dict[str, Any] | None = None,
) -> tuple[xgen.Model, dict[str, Any]]:
    """Train one (variant, seed) on fresh dSprites batches for `settings["steps"]` steps, measuring the curve every
    `curve_every` steps; the model and its record (options, settings, seconds of training, curve, final point).
    With `state`, a run killed halfway resumes from its last curve point (`xgen.train`'s resumable state). `how`:
    options that change how the variant computes, not what (`ad_jacobian`), as some logged runs were made."""
    options = {**variants()[variant], **(how or {})}
    data = DSprites(train_n=64, test_n=settings["probe_n"])
    probe = data.test().images

    def on_log(record: dict[str, Any], model: xgen.Model) -> dict[str, Any]:
        point = measure(model, data, probe, settings, record["step"] == settings["steps"])
        if on_point is not None:
            on_point({**record, **point})
        return point

    model = xgen.train(
        "factor-vae",
        data,
        steps=settings["steps"],
        seed=seed,
        device=device,
        options=options,
        log_every=settings["curve_every"],
        on_log=on_log,
        state=state,
    )
    training = model.metadata["training"]
    curve = training["history"]
    train_s = training["seconds"] - sum(point["measure_s"] for point in curve)
    record = {
        "variant": variant,
        "seed": seed,
        "options": options,
        **settings,
        "train_s": round(train_s, 1),
        "step_s": round(train_s / settings["steps"], 4),
        "curve": curve,
        "final": curve[-1],
        **({"resumed_at_step": training["resumed_at_step"]} if "resumed_at_step" in training else {}),
    }
    return model, record


def as_reproduce_record(record: dict[str, Any], machine: str) -> dict[str, Any]:
    """A record of `benchmarks/disentanglement_results.py`'s log as an `xgen reproduce` log record of the same run
    (the same code made it), so a grid begun by the script resumes under `xgen reproduce` without repeating it."""
    settings = {key: record[key] for key in SETTINGS["default"]}
    run = Run(EXPERIMENT, "dsprites", record["variant"], record["seed"], settings)
    scale = "default" if settings == SETTINGS["default"] else "custom"
    return run.log_record(
        FactorVAETradeoff.name,
        scale,
        "cpu",
        record,
        record["train_s"],
        record.get("machine", machine),
        record.get("finished", ""),
    )


class _DisentanglementClaim(xgen.Claim):
    """The shared grid and run of the disentanglement claims: every variant of `variants()` on dSprites."""

    paper = "000"
    citation = "Liu et al., CVPR 2020 (reproducibility report)"
    data = ("dsprites",)
    accepts_data = False

    def runs(self, scale: str, data: Sequence[str]) -> list[Run]:
        seeds = SEEDS[scale]
        grid = [(v, s) for v, s in cells(seeds) if v in ("fvae-g40", "ad-g40-l1")] if scale == "quick" else cells(seeds)
        return [Run(EXPERIMENT, "dsprites", variant, seed, dict(SETTINGS[scale])) for variant, seed in grid]

    def run(self, run: Run, context: RunContext) -> dict[str, Any]:
        state = context.folder / "training-state.pt"
        model, record = train_and_measure(run.variant, run.seed, run.settings, context.device, state=state)
        if run.seed == 0 and run.variant in KEPT:
            xgen.save(model, context.folder / "model.pt")
        return record

    @staticmethod
    def finals(records: Sequence[dict[str, Any]], variant: str, measure: str) -> list[float]:
        return [
            float(r["result"]["final"][measure])
            for r in records
            if r["run"]["variant"] == variant and measure in r["result"]["final"]
        ]


class FactorVAETradeoff(_DisentanglementClaim):
    """Claim (iv): adding L_AD to FactorVAE gives a better trade-off between reconstruction and disentanglement.
    Judged per gamma on each side of the trade-off: FactorVAE score and Chen's MIG (higher is better),
    reconstruction error (lower is better), AD-FactorVAE against FactorVAE at the same gamma, wherever both have
    finished runs: at lambda 1 for every gamma (experiment 1), then at lambda 0.5 and 1.5 (experiment 3)."""

    name = "ad-factorvae-better-tradeoff"
    description = "AD-FactorVAE trades reconstruction for disentanglement better than FactorVAE (claim iv)."
    source = "section 4.2, Table 1 experiments 1 and 3, Figures 6-7"
    paper_value = "the original: better disentanglement at equal reconstruction; the report: not reproducible"

    def findings(self, records: Sequence[dict[str, Any]]) -> list[Finding]:
        cells = [(g, f"ad-g{g}-l1", f"gamma {g}") for g in GAMMAS]
        cells += [
            (options["gamma"], variant, f"gamma {options['gamma']}, lambda {options['ad_weight']:g}")
            for variant, options in variants().items()
            if variant.startswith("ad-") and options["ad_weight"] != 1.0
        ]
        found = []
        for g, variant, where in cells:
            for measure, label, higher in (
                ("factorvae_score", "FactorVAE score", True),
                ("mig", "MIG", True),
                ("recon", "reconstruction error", False),
            ):
                ad, fv = self.finals(records, variant, measure), self.finals(records, f"fvae-g{g}", measure)
                if ad and fv:
                    found.append(
                        compare(self.name, f"{where}: {label}", ("AD", ad), ("FactorVAE", fv), higher_is_better=higher)
                    )
        return found


class AttentionSeparates(_DisentanglementClaim):
    """Claim (v): with L_AD the high-response regions of different latent dimensions separate. Measured as the
    top-2 overlap (eq. 1 between the Grad-CAMs of each image's two most responding dimensions at the first conv,
    lower is better) of AD-FactorVAE against FactorVAE at the same gamma, for every lambda and choice in the grid
    that has finished runs; and, where the runs recorded it (runs since 2026-12-01), the IoU of the two maps'
    regions >= 0.5 of their maximum (lower is better): eq. 1 also falls when two maps sharpen on the same region."""

    name = "ad-factorvae-separates-attention"
    description = "AD-FactorVAE's per-dimension attention maps overlap less than FactorVAE's (claim v)."
    source = "section 4.2, Table 1 experiments 1 and 3, Figures 4-5"
    paper_value = "the original's Figures 4-5: maps of different dimensions highlight different regions"

    def findings(self, records: Sequence[dict[str, Any]]) -> list[Finding]:
        found = []
        for variant, options in variants().items():
            if not variant.startswith("ad-"):
                continue
            gamma = options["gamma"]
            where = f"gamma {gamma}, {variant.removeprefix(f'ad-g{gamma}-')}"
            for measure, label in (
                ("overlap_top2", "top-2 overlap"),
                ("region_iou_0.5", "top-2 high-response region IoU"),
            ):
                ad, fv = self.finals(records, variant, measure), self.finals(records, f"fvae-g{gamma}", measure)
                if ad and fv:
                    found.append(
                        compare(self.name, f"{where}: {label}", ("AD", ad), ("FactorVAE", fv), higher_is_better=False)
                    )
        return found
