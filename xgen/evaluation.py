"""`xgen.evaluate`: explain a dataset's test split, normalise the maps as asked, and compute metrics on them.

Everything that can be checked (the plugins, their options, which metrics the data supports) is checked before
the first image is explained. Thresholded metrics report what fraction of pixels or images their threshold
flags, and a threshold that flags all or none is a warning, never a silent number.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from warnings import catch_warnings, simplefilter

import torch

from xgen.api import evaluation_mode, explain, fit_scorer, parse_scorer, score, shape_text
from xgen.data import Dataset, Factors, ImageSet, parse_spec
from xgen.errors import XgenError
from xgen.features import Extractor, open_extractor
from xgen.methods import Metric, Scorer
from xgen.model import Model, wrap
from xgen.plugins import get_registry, lookup, open_dataset
from xgen.progress import progress_bar

Normalization = Literal["per-image", "normal-stats", "none"]
NORMALIZATIONS: tuple[str, ...] = ("per-image", "normal-stats", "none")
FLAT = 1e-12
#: The inputs computed from features of real and generated images, and how to get them.
GENERATED_INPUTS = ("real", "fake")
#: The inputs that need a dataset with ground-truth factors (and, for codes, a model that encodes).
FACTOR_INPUTS = ("codes", "factors", "data")
FACTORS_REMEDY = "choose data with ground-truth factors (dsprites) and a model that encodes"
FEATURES_REMEDY = "pass --features SPEC (inception:PATH, or an xgen checkpoint whose encoder mean serves as features)"


@dataclass
class MetricResult:
    """One metric's value. `spec` is the metric as asked (`iou:threshold=0.3`); `interval` a 95% bootstrap
    interval where the metric gives one; `flagged` the fraction of pixels or images at or above its threshold."""

    spec: str
    name: str
    value: float
    options: dict[str, Any]
    interval: tuple[float, float] | None = None
    flagged: float | None = None
    note: str | None = None


@dataclass
class Evaluation:
    """What `xgen.evaluate` measured. maps: (N, H, W) as the explainer gave them; normalized: (N, H, W) as the
    metrics saw them (both None after engine "ray", which never gathers maps); scores / normalized_scores: (N,) image
    scores or None; test: the test split explained."""

    data: str
    plugin: str
    options: dict[str, Any]
    score_source: str
    normalization: dict[str, Any]
    metrics: list[MetricResult]
    test: ImageSet
    maps: torch.Tensor | None
    normalized: torch.Tensor | None
    scores: torch.Tensor | None
    normalized_scores: torch.Tensor | None
    seed: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    generation: dict[str, Any] | None = None

    def __getitem__(self, spec: str) -> float:
        """The value of the metric asked as `spec`."""
        for result in self.metrics:
            if result.spec == spec:
                return result.value
        raise KeyError(f"no metric '{spec}' in this evaluation; it has {', '.join(r.spec for r in self.metrics)}.")

    def summary(self) -> dict[str, Any]:
        """The JSON-ready record: metric values, data, plugin and options, normalisation, counts, warnings."""
        test = self.test
        counts: dict[str, Any] = {"images": len(test)}
        if test.labels is not None:
            counts["anomalous_images"] = int(test.labels.sum())
        if test.masks is not None:
            counts["pixels"] = int(test.masks.numel())
            counts["anomalous_pixels"] = int(test.masks.sum())
        return {
            "data": self.data,
            "plugin": self.plugin,
            "options": self.options,
            "image_score": self.score_source,
            "normalization": self.normalization,
            "seed": self.seed,
            "test": counts,
            "metrics": {
                r.spec: {
                    "value": r.value,
                    **({"interval_95": list(r.interval)} if r.interval else {}),
                    **({"options": r.options} if r.options else {}),
                    **({"flagged": r.flagged} if r.flagged is not None else {}),
                    **({"note": r.note} if r.note else {}),
                }
                for r in self.metrics
            },
            **({"generation": self.generation} if self.generation else {}),
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Asked:
    spec: str
    name: str
    options: dict[str, Any]
    metric: Metric


def _parse_metrics(specs: Sequence[str] | None) -> list[_Asked] | None:
    if specs is None:
        return None
    asked = []
    for spec in specs:
        name, options, bare = parse_spec(spec)
        if bare is not None:
            raise XgenError(f"metric spec '{spec}' has a value without a key; write NAME:key=value.")
        asked.append(_Asked(spec, name, options, lookup("metric", name)(**options)))
    return asked


def _architecture_metrics(model: Model) -> tuple[list[_Asked], list[str]]:
    """The metrics that the architecture of `model` adds to the default selection (`Architecture.default_metrics`),
    built before any work, and a warning for each spec that cannot be built (its plugin missing, say). Nothing for a
    model without a registered architecture, such as a wrapped module."""
    if model.architecture is None:
        return [], []
    try:
        architecture = lookup("architecture", model.architecture)
    except XgenError:
        return [], []
    specs = architecture.default_metrics
    added, warnings = [], []
    for spec in (specs,) if isinstance(specs, str) else specs:
        try:
            added.extend(_parse_metrics([spec]) or [])
        except XgenError as exc:
            warnings.append(
                f"architecture {architecture.name} adds metric {spec} to the default selection, but it cannot be "
                f"used ({str(exc).rstrip('.')}), so it is left out"
            )
    return added, warnings


def _check_scorer(model: Model, spec: str) -> Scorer | None:
    """Check scorer `spec` against `model` before any work; the scorer when it learns and was never fitted on the
    model with these options, else None."""
    name, options = parse_scorer(spec)
    scorer = lookup("scorer", name)(**options)
    model.check_requires(scorer.requires, f"scorer '{name}'")
    scorer.check_model(model)
    return scorer if scorer.learns() and not scorer.is_fitted(model) else None


def _inputs_available(test: ImageSet, have_scores: bool) -> dict[str, str | None]:
    """For each metric input, None if the data provides it, else the reason it does not."""
    no_scores = "gets no image scores (the explainer gives none and its maps' maxima are all equal)"
    why: dict[str, str | None] = {"maps": None, "scores": None if have_scores else no_scores}
    if test.masks is None:
        why["masks"] = "has no masks"
    else:
        anomalous = int(test.masks.sum())
        if anomalous == 0:
            why["masks"] = "has only empty masks"
        elif anomalous == test.masks.numel():
            why["masks"] = "has masks that cover every pixel"
        else:
            why["masks"] = None
    if test.labels is None:
        why["labels"] = "has no labels"
    else:
        anomalous = int(test.labels.sum())
        if anomalous in (0, len(test)):
            kind = "anomalous" if anomalous else "normal"
            why["labels"] = f"has only {kind} test images ({len(test)})"
        else:
            why["labels"] = None
    return why


def _factor_inputs(model: Model, dataset: Dataset) -> dict[str, str | None]:
    """For `model`, `data`, `codes` and `factors`, None when available, else the reason (said of the data)."""
    why: dict[str, str | None] = {"model": None}
    why["data"] = None if isinstance(dataset, Factors) else "has no ground-truth factors"
    encodes = "encode" in model.capabilities
    why["codes"] = why["factors"] = why["data"] or (
        None if encodes else "is evaluated with a model that does not encode"
    )
    return why


def _supported(metric_cls: type[Metric], why: dict[str, str | None]) -> bool:
    return all(why.get(need, "") is None for need in metric_cls.requires)


def _choose_metrics(
    asked: list[_Asked] | None, why: dict[str, str | None], data: str, added: Sequence[_Asked] = ()
) -> list[_Asked]:
    """The metrics asked for, each checked against what the data supports; or every metric it supports that is
    computed by default, followed by those of `added` (the architecture's `default_metrics`) that it supports."""
    if asked is None:
        chosen = []
        for info in get_registry().list():
            if info.kind != "metric":
                continue
            metric_cls = lookup("metric", info.name)
            if metric_cls.by_default and _supported(metric_cls, why):
                chosen.append(_Asked(info.name, info.name, {}, metric_cls()))
        specs = {item.spec for item in chosen}
        for item in added:
            if item.spec not in specs and _supported(type(item.metric), why):
                chosen.append(item)
                specs.add(item.spec)
        if not chosen:
            raise XgenError(
                f"no metric can be computed: {data} {'; '.join(dict.fromkeys(filter(None, why.values())))}."
            )
        return chosen
    for item in asked:
        for need in sorted(item.metric.requires):
            if why.get(need, f"gives no {need}") is not None:
                remedy = (
                    "pass --scorer NAME (xgen plugins lists the scorers)"
                    if need == "scores"
                    else FEATURES_REMEDY
                    if need in GENERATED_INPUTS
                    else FACTORS_REMEDY
                    if need in FACTOR_INPUTS
                    else "choose data that has them (textures:brick and mvtec:PATH have masks and labels)"
                )
                raise XgenError(
                    f"metric '{item.spec}' needs {need}, but {data} {why.get(need, f'gives no {need}')}; drop the "
                    f"metric or {remedy}."
                )
    return asked


def _explain_all(
    model: Model, images: torch.Tensor, plugin: str, options: dict[str, Any], batch_size: int, bar: Any, what: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Maps (N, H, W) and the explainer's scores (N,) or None, of images (N, C, H, W), batch by batch."""
    task = bar.add_task(what, total=len(images), status="")
    maps, scores = [], []
    for x in images.split(batch_size):
        result = explain(model, x, plugin, **options)
        maps.append(result.anomaly_map.cpu())
        if result.score is not None:
            scores.append(result.score.cpu())
        bar.advance(task, len(x))
    return torch.cat(maps), (torch.cat(scores) if len(scores) == len(maps) else None)


def _note_skipped(available: dict[str, str | None], warnings: list[str], chosen: Sequence[_Asked] = ()) -> None:
    """Name the metrics this evaluation could compute but leaves out by default (they sample the model at length);
    not those among `chosen` (added by the model's architecture)."""
    running = {item.name for item in chosen}
    skipped = []
    for info in get_registry().list():
        if (
            info.kind == "metric"
            and not info.obj.by_default
            and info.name not in running
            and _supported(info.obj, available)
        ):
            skipped.append(info.name)
    if skipped:
        asks = " ".join(f"--metric {name}" for name in skipped)
        warnings.append(
            f"{', '.join(skipped)} {'is' if len(skipped) == 1 else 'are'} left out by default because "
            f"{'it samples' if len(skipped) == 1 else 'they sample'} the model over the whole dataset (minutes to "
            f"hours on a CPU); ask with {asks}"
        )


def _codes(model: Model, images: torch.Tensor, batch_size: int, bar: Any) -> torch.Tensor:
    """The latent means (N, D), flattened, of images (N, C, H, W), batch by batch in eval mode."""
    task = bar.add_task("encoding test images", total=len(images), status="")
    codes = []
    with evaluation_mode(model), torch.no_grad():
        for x in images.split(batch_size):
            codes.append(model.encode(x.to(model.device)).mean.flatten(1).cpu())
            bar.advance(task, len(x))
    return torch.cat(codes)


def _generated_inputs(extractor: Extractor | None) -> dict[str, str | None]:
    """For `real` and `fake`, None when features were asked for (the model then generates), else the reason."""
    reason = None if extractor is not None else "gets no features without --features"
    return dict.fromkeys(GENERATED_INPUTS, reason)


def _generated_features(
    model: Model, images: torch.Tensor, extractor: Extractor, samples: int, batch_size: int, seed: int, bar: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, F) of the test images (N, C, H, W) and (samples, F) of as many images generated from the
    model's prior with a generator seeded by `seed`; generated images are extracted batch by batch, never kept."""
    real = extractor(images, batch_size, bar, "features of test images")
    generator = torch.Generator().manual_seed(seed)
    task = bar.add_task("generating images and their features", total=samples, status="")
    fake = []
    with torch.no_grad():
        for start in range(0, samples, batch_size):
            count = min(batch_size, samples - start)
            fake.append(extractor(model.generate(count, generator), batch_size))
            bar.advance(task, count)
    return real, torch.cat(fake)


def _image_scores(
    model: Model, images: torch.Tensor, maps: torch.Tensor, given: torch.Tensor | None, how: str, batch_size: int
) -> torch.Tensor:
    """Scores (N,) of images (N, C, H, W) by `how`: "explainer" (given), "map max", or a scorer spec."""
    if how == "explainer":
        assert given is not None
        return given
    if how == "map max":
        return maps.flatten(1).amax(dim=1)
    scorer, scorer_options = parse_scorer(how)
    return torch.cat([score(model, x, scorer, **scorer_options).cpu() for x in images.split(batch_size)])


def _min_max(values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return (values - low) / max(high - low, FLAT)


def _per_image(maps: torch.Tensor) -> torch.Tensor:
    """Each map (H, W) of maps (N, H, W) min-max normalised to [0, 1]; a flat map becomes 0."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    high = flat.max(dim=1).values[:, None, None]
    return (maps - low) / (high - low).clamp_min(FLAT)


def _validation_sample(dataset: Dataset, n: int, seed: int) -> ImageSet:
    """Up to n seeded images of the training split, which one-class datasets keep free of defects."""
    train = dataset.train()
    if len(train) == 0:
        raise XgenError(f"normal-stats needs normal images, but {dataset.spec()} has no training split.")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    picked = train.subset(order[: min(n, len(train))])
    if picked.labels is not None and bool(picked.labels.any()):
        picked = picked.subset(picked.labels == 0)
    return picked


def _metric_result(
    item: Any, value: float, caught: list[Any], scores: torch.Tensor | None, labels: torch.Tensor | None
) -> MetricResult:
    """The result of one metric: its value, the warnings it raised as a note, and its interval where it has one."""
    result = MetricResult(item.spec, item.name, value, item.options)
    said = "; ".join(dict.fromkeys(str(w.message) for w in caught))
    if said:
        result.note = said
    interval = getattr(item.metric, "interval", None)
    if callable(interval):
        result.interval = interval(scores=scores, labels=labels)
    return result


def _noted(result: MetricResult, warnings: list[str]) -> MetricResult:
    """`result`, its note and a non-finite value added to the evaluation's warnings."""
    if result.note:
        warnings.append(f"{result.spec}: {result.note}")
    if not math.isfinite(result.value):
        warnings.append(f"{result.spec} is {result.value}")
    return result


def _threshold_flags(result: MetricResult, metric: Metric, maps: torch.Tensor, scores: torch.Tensor | None) -> None:
    """Record the fraction a thresholded metric flags, and note a threshold that flags everything or nothing."""
    threshold = getattr(metric, "threshold", None)
    if threshold is None:
        return
    values = maps if "maps" in metric.requires else scores
    if values is None:
        return
    unit = "pixels" if "maps" in metric.requires else "images"
    _flag(result, metric, float((values >= threshold).float().mean()), float(values.min()), float(values.max()), unit)


def _flag(result: MetricResult, metric: Metric, flagged: float, low: float, high: float, unit: str) -> None:
    """Record the fraction `flagged` of a thresholded metric, with a note when it is all or nothing."""
    result.flagged = flagged
    if flagged in (0.0, 1.0):
        share = "every one of the" if flagged == 1.0 else "none of the"
        result.note = (
            f"threshold {metric.threshold:g} flags {share} {unit} (values span [{low:.3g}, {high:.3g}]), so this "
            "value says nothing about the method; try another --normalize or the metric's threshold option"
        )


def evaluate(
    model: Model | torch.nn.Module,
    data: str | Dataset,
    plugin: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    scorer: str | None = None,
    metrics: Sequence[str] | None = None,
    normalize: Normalization = "per-image",
    validation_images: int = 256,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
    features: str | None = None,
    samples: int = 1000,
    engine: str = "local",
    checkpoint: str | os.PathLike[str] | None = None,
    trust: bool = False,
    address: str = "local",
    workers: int = 2,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
) -> Evaluation:
    """Explain the test split of `data` with `plugin` (default: the model's explainer) and compute `metrics`
    (specs like `iou:threshold=0.3`; default: every metric the data supports that is computed by default, and
    those of the model's architecture's `default_metrics` that the data supports).

    Image scores come from `scorer` (a spec, `embedding-lof:tap=mean`) if given, else the explainer's scores, else
    the model's default scorer, else the maximum of each raw map. A scorer that learns and was never fitted on the
    model with those options is first fitted on the training split of `data` (never the test split), kept in the
    model's metadata, and a warning says so.

    `normalize` says how maps (and scores) are brought to a common scale before the metrics see them: `per-image`
    min-max normalises each map (scores: min-max over the test set); `normal-stats` uses the minimum and maximum over
    `validation_images` images of the training split (defect-free under the one-class protocol), so normal maps span
    [0, 1] and anomalies may exceed 1; `none` leaves both as given.

    `features` (`inception:PATH` or a checkpoint whose encoder mean is used; see `xgen.features`) makes the generator
    metrics (fid, precision, recall) available, and chosen by default: they compare the features of the test split
    with those of `samples` images the model generates from its prior (seeded by `seed`).

    `engine="ray"` explains the test split on a Ray cluster (`xgen.ray_engine`; `address`, `workers`,
    `cpus_per_worker`, `gpus_per_worker` as for `xgen explain`; each worker loads `checkpoint`, default the model
    saved to a temporary file, with `trust` as for `xgen.load`): workers return per-image scores and the map metrics'
    mergeable partials (`Metric.partial`), never the maps, which the driver merges in bounded memory into the same
    values. The Evaluation then holds no maps (`maps` and `normalized` are None).
    """
    started = time.perf_counter()
    if normalize not in NORMALIZATIONS:
        raise XgenError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got '{normalize}'.")
    settings = None
    if engine == "ray":
        from xgen.ray_engine import RaySettings, import_ray

        settings = RaySettings(address, workers, cpus_per_worker, gpus_per_worker)
        import_ray()
        if features is not None:
            raise XgenError("--features (fid, precision, recall) runs on the driver; use --engine local for them.")
    elif engine != "local":
        raise XgenError(f"engine must be local or ray, got '{engine}'.")
    if batch_size < 1 or validation_images < 1:
        raise XgenError("batch_size and validation_images must be at least 1.")
    model = wrap(model)
    dataset = open_dataset(data) if isinstance(data, str) else data
    spec = dataset.spec()
    name = plugin or model.default_explainer
    if name is None:
        raise XgenError("this model names no default explainer; pass plugin=... (xgen plugins lists them).")
    options = dict(options or {})
    explainer_cls = lookup("explainer", name)
    explainer_cls(**options)
    model.check_requires(explainer_cls.requires, f"explainer '{name}'")
    unfitted = _check_scorer(model, scorer) if scorer is not None else None
    asked = _parse_metrics(metrics)
    added, warnings = _architecture_metrics(model) if asked is None else ([], [])
    extractor = None
    if features is not None:
        if samples < 2:
            raise XgenError(f"samples must be at least 2 (fid needs a covariance), got {samples}; use thousands.")
        model.check_requires({"generate"}, "features= (images generated for fid, precision and recall)")
        extractor = open_extractor(features, model.device)
    test = dataset.test()
    training = model.metadata.get("training", {})
    used = set(training.get("test_images_used", [])) if training.get("data") == spec else set()
    if used:
        test = test.subset([i for i, stem in enumerate(test.names) if stem not in used])
        warnings.append(f"{len(used)} test images of {spec} were used in training and are left out")
    if len(test) == 0:
        raise XgenError(f"{spec} has no test images; check its options.")
    expected, shape = model.input_shape, tuple(test.images.shape[1:])
    if expected is not None and (shape[0] != expected[0] if model.any_size else shape != tuple(expected)):
        raise XgenError(
            f"{spec} has {shape_text(shape)} (CxHxW) images but the model expects {shape_text(expected)}; "
            "evaluate it on data of that size (many datasets take a size= option)."
        )
    if asked is not None:
        available = {
            **_inputs_available(test, have_scores=True),
            **_generated_inputs(extractor),
            **_factor_inputs(model, dataset),
        }
        _choose_metrics(asked, available, spec)

    if unfitted is not None:
        fit_scorer(model, dataset, unfitted.name, **unfitted.config())
        warnings.append(
            f"scorer {scorer} was not fitted on this model, so it was fitted on "
            f"{model.metadata['fitted_scorers'][unfitted.key]['fitted_on']} first; xgen fit-scorer keeps a fit in "
            "the checkpoint"
        )

    if settings is not None:
        return _evaluate_on_ray(
            settings, model, checkpoint, trust, dataset, test, name, options, scorer, asked, added, normalize,
            validation_images, batch_size, seed, progress, warnings, started,
        )  # fmt: skip
    torch.manual_seed(seed)
    with progress_bar(progress) as bar:
        maps, given = _explain_all(model, test.images, name, options, batch_size, bar, "explaining test images")
        how = scorer or ("explainer" if given is not None else model.default_scorer) or "map max"
        scores: torch.Tensor | None = _image_scores(model, test.images, maps, given, how, batch_size)
        source = {"explainer": f"explainer {name}", "map max": "maximum of each map"}.get(how, f"scorer {how}")
        if how == "map max" and float(scores.max() - scores.min()) <= FLAT:
            scores = None
            warnings.append(
                f"{name} gives no image scores and its maps all have the same maximum, so image metrics are left "
                "out; pass --scorer NAME (xgen plugins lists the scorers)"
            )
        available = {
            **_inputs_available(test, scores is not None),
            **_generated_inputs(extractor),
            **_factor_inputs(model, dataset),
        }
        chosen = _choose_metrics(asked, available, spec, added)
        if asked is None:
            _note_skipped(available, warnings, chosen)
        codes = factors = None
        if any({"codes", "factors"} & set(item.metric.requires) for item in chosen):
            codes = _codes(model, test.images, batch_size, bar)
            factors = dataset.split_factors(test)
        real = fake = generation = None
        if extractor is not None and any(set(GENERATED_INPUTS) & set(item.metric.requires) for item in chosen):
            real, fake = _generated_features(model, test.images, extractor, samples, batch_size, seed, bar)
            generation = {
                "features": extractor.describe(),
                "dimensions": real.shape[1],
                "real_images": len(real),
                "real_split": "test",
                "generated_images": samples,
                "seed": seed,
            }
        record: dict[str, Any] = {"method": normalize}
        normalized, normalized_scores = maps, scores
        if normalize == "per-image":
            normalized = _per_image(maps)
            record["maps"] = "min-max of each map"
            if scores is not None:
                low, high = float(scores.min()), float(scores.max())
                normalized_scores = _min_max(scores, low, high)
                record["scores"] = f"min-max over the {len(scores)} test scores [{low:.6g}, {high:.6g}]"
        elif normalize == "normal-stats":
            normal = _validation_sample(dataset, validation_images, seed)
            normal_maps, normal_given = _explain_all(
                model, normal.images, name, options, batch_size, bar, "normal validation images"
            )
            low, high = float(normal_maps.min()), float(normal_maps.max())
            if high - low <= FLAT:
                raise XgenError(
                    f"normal-stats: the maps of the {len(normal)} normal validation images are all {low:.4g}, so "
                    "they give no scale; use --normalize per-image."
                )
            normalized = _min_max(maps, low, high)
            record.update(validation=f"{len(normal)} images of the training split (seed {seed})", maps=[low, high])
            if scores is not None:
                normal_scores = _image_scores(model, normal.images, normal_maps, normal_given, how, batch_size)
                low, high = float(normal_scores.min()), float(normal_scores.max())
                normalized_scores = _min_max(scores, low, high)
                record["scores"] = [low, high]
        else:
            record["maps"] = "as given"

    for item in chosen:
        if "seed" in item.metric.options() and "seed" not in item.options:
            item.metric.seed = seed
        if "progress" in item.metric.options() and "progress" not in item.options:
            item.metric.progress = progress
    results = []
    inputs = {"maps": normalized, "masks": test.masks, "scores": normalized_scores, "labels": test.labels}
    inputs.update(real=real, fake=fake, codes=codes, factors=factors, model=model, data=dataset)
    for item in chosen:
        given = {key: inputs[key] for key in item.metric.requires}
        with catch_warnings(record=True) as caught:
            simplefilter("always")
            value = item.metric(**given)
        result = _metric_result(item, value, caught, normalized_scores, test.labels)
        _threshold_flags(result, item.metric, normalized, normalized_scores)
        results.append(_noted(result, warnings))
    return Evaluation(
        data=spec,
        plugin=name,
        options=options,
        score_source=source if scores is not None else "none",
        normalization=record,
        metrics=results,
        test=test,
        maps=maps,
        normalized=normalized,
        scores=scores,
        normalized_scores=normalized_scores,
        seed=seed,
        seconds=time.perf_counter() - started,
        warnings=warnings,
        generation=generation,
    )


def _evaluate_on_ray(
    settings: Any,
    model: Model,
    checkpoint: str | os.PathLike[str] | None,
    trust: bool,
    dataset: Dataset,
    test: ImageSet,
    name: str,
    options: dict[str, Any],
    scorer: str | None,
    asked: list[_Asked] | None,
    added: list[_Asked],
    normalize: str,
    validation_images: int,
    batch_size: int,
    seed: int,
    progress: bool,
    warnings: list[str],
    started: float,
) -> Evaluation:
    """`evaluate` with the test split explained on Ray: map metrics from merged shard partials, image metrics from
    the gathered scores (N,) on the driver. Metrics that need codes, factors, features, the model or the data, and
    map metrics without partials, are refused when asked for and left out (with a warning) by default."""
    from xgen.ray_engine import evaluate_on_ray, merged_value

    spec = dataset.spec()
    local_only = {"codes", "factors", "real", "fake", "model", "data"}
    for item in asked or []:
        needs = set(item.metric.requires)
        if needs & local_only or ("maps" in needs and not item.metric.shardable()):
            raise XgenError(
                f"metric '{item.spec}' cannot be computed from shards on Ray; evaluate it with --engine local."
            )
    available = {**_inputs_available(test, have_scores=True), **_factor_inputs(model, dataset)}
    available.update(dict.fromkeys(GENERATED_INPUTS, "gets no features on Ray"))
    for key in local_only - set(GENERATED_INPUTS):
        available[key] = "is not computed on Ray (use --engine local)"
    planned = _choose_metrics(asked, available, spec, added)
    dropped = [item.spec for item in planned if "maps" in item.metric.requires and not item.metric.shardable()]
    if dropped:
        warnings.append(f"{', '.join(dropped)} cannot be computed from shards and are left out; use --engine local")
    map_metrics = [item for item in planned if "maps" in item.metric.requires and item.metric.shardable()]
    torch.manual_seed(seed)
    record: dict[str, Any] = {"method": normalize}
    scale = None
    with progress_bar(progress) as bar:
        if normalize == "normal-stats":
            normal = _validation_sample(dataset, validation_images, seed)
            normal_maps, normal_given = _explain_all(
                model, normal.images, name, options, batch_size, bar, "normal validation images"
            )
            scale = (float(normal_maps.min()), float(normal_maps.max()))
            if scale[1] - scale[0] <= FLAT:
                raise XgenError(
                    f"normal-stats: the maps of the {len(normal)} normal validation images are all {scale[0]:.4g}, "
                    "so they give no scale; use --normalize per-image."
                )
            record.update(validation=f"{len(normal)} images of the training split (seed {seed})", maps=list(scale))
        task = bar.add_task("explaining test images on Ray", total=len(test), status="")
        with tempfile.TemporaryDirectory(prefix="xgen-shards-") as folder:
            found = evaluate_on_ray(
                settings, model, checkpoint, trust, test.images, test.masks, name, options, scorer, map_metrics,
                scale, normalize, seed, batch_size, bar, task, Path(folder),
            )  # fmt: skip
            values = {item.spec: merged_value(item.metric, found["stored"][item.spec]) for item in map_metrics}
    (how,) = found["hows"] or {"map max"}
    scores: torch.Tensor | None = torch.from_numpy(found["scores"]).float()
    source = {"explainer": f"explainer {name}", "map max": "maximum of each map"}.get(how, f"scorer {how}")
    if how == "map max" and float(scores.max() - scores.min()) <= FLAT:
        scores = None
        warnings.append(
            f"{name} gives no image scores and its maps all have the same maximum, so image metrics are left "
            "out; pass --scorer NAME (xgen plugins lists the scorers)"
        )
    normalized_scores = scores
    if normalize == "per-image":
        record["maps"] = "min-max of each map"
        if scores is not None:
            low, high = float(scores.min()), float(scores.max())
            normalized_scores = _min_max(scores, low, high)
            record["scores"] = f"min-max over the {len(scores)} test scores [{low:.6g}, {high:.6g}]"
    elif normalize == "normal-stats" and scores is not None:
        normal_scores = _image_scores(model, normal.images, normal_maps, normal_given, how, batch_size)
        low, high = float(normal_scores.min()), float(normal_scores.max())
        normalized_scores = _min_max(scores, low, high)
        record["scores"] = [low, high]
    elif normalize == "none":
        record["maps"] = "as given"
    available = {**available, **_inputs_available(test, scores is not None)}
    chosen = [item for item in planned if item.spec not in dropped and _supported(type(item.metric), available)]
    if asked is None:
        _note_skipped(available, warnings, chosen)
    pixels = test.masks.numel() if test.masks is not None else 0
    results = []
    for item in chosen:
        if "seed" in item.metric.options() and "seed" not in item.options:
            item.metric.seed = seed
        with catch_warnings(record=True) as caught:
            simplefilter("always")
            if item.spec in values:
                value = values[item.spec]
            else:
                value = item.metric(scores=normalized_scores, labels=test.labels)
        result = _metric_result(item, value, caught, normalized_scores, test.labels)
        if item.spec in found["flagged"] and pixels:
            _flag(result, item.metric, found["flagged"][item.spec] / pixels, found["low"], found["high"], "pixels")
        elif "maps" not in item.metric.requires and normalized_scores is not None:
            _threshold_flags(result, item.metric, torch.zeros(0), normalized_scores)
        results.append(_noted(result, warnings))
    return Evaluation(
        data=spec,
        plugin=name,
        options=options,
        score_source=source if scores is not None else "none",
        normalization=record,
        metrics=results,
        test=test,
        maps=None,
        normalized=None,
        scores=scores,
        normalized_scores=normalized_scores,
        seed=seed,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )
