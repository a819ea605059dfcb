"""The hooks a plugin implements. Each receives a `register` callback owned by xgen.

A plugin is a module (or object) with functions decorated by `xgen.hookimpl` and named exactly like these
specs; a misspelled hook name is reported as that plugin's load error. Declare the module in your package's
`pyproject.toml` under `[project.entry-points.xgen]` and xgen finds it with no configuration.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("xgen")
hookimpl = pluggy.HookimplMarker("xgen")


@hookspec
def xgen_register_explainers(register: Callable[[type], None]) -> None:
    """Register `xgen.Explainer` subclasses: methods that produce anomaly or attention maps.

    :param register: call it once per class. It checks that the class subclasses `xgen.Explainer`, implements
        `explain`, has a unique kebab-case `name`, a one-line `description` and known `requires`.

    Example::

        import xgen

        class AbsError(xgen.Explainer):
            name = "abs-error"
            description = "Mean absolute reconstruction error per pixel."
            requires = {"decode"}

            def explain(self, model, x):
                err = (model.reconstruct(x) - x).abs().mean(dim=1)
                return xgen.Explanation(anomaly_map=err, score=err.flatten(1).mean(dim=1))

        @xgen.hookimpl
        def xgen_register_explainers(register):
            register(AbsError)
    """


@hookspec
def xgen_register_scorers(register: Callable[[type], None]) -> None:
    """Register `xgen.Scorer` subclasses: methods that give image-level anomaly scores only.

    :param register: call it once per class; checked like explainers.

    A scorer that learns from normal images also implements `fit(model, x)`: x is (N, C, H, W) in [0, 1], normal
    images only, and it returns its state as a dict of tensors, bools, ints, floats and strings (never a pickled
    object, so checkpoints stay loadable with `weights_only=True`). `xgen.fit_scorer(model, data, name, **options)`
    (CLI: `xgen fit-scorer`) keeps that state in the model under the scorer's `key` (its name and every option);
    `score` reads it back with `self.fitted(model)`, and `xgen.score` refuses an unfitted one before any work,
    saying how to fit it. Options that decide what a model must offer (a layer, a tap) are checked in
    `check_model(model)`, which runs before any work too.

    Example::

        import torch
        import xgen

        class LatentNorm(xgen.Scorer):
            name = "latent-norm"
            description = "Euclidean norm of the latent mean."
            requires = {"encode"}

            def score(self, model, x):
                return model.encode(x).mean.flatten(1).norm(dim=1)

        class LatentDistance(xgen.Scorer):
            name = "latent-distance"
            description = "Distance of the latent mean from the mean of the normal training images' latents."
            requires = {"encode"}

            def fit(self, model, x):
                with torch.no_grad():
                    return {"centre": model.encode(x).mean.flatten(1).mean(dim=0)}

            def score(self, model, x):
                centre = self.fitted(model)["centre"]
                with torch.no_grad():
                    return (model.encode(x).mean.flatten(1) - centre).norm(dim=1)

        @xgen.hookimpl
        def xgen_register_scorers(register):
            register(LatentNorm)
            register(LatentDistance)
    """


@hookspec
def xgen_register_metrics(register: Callable[[type], None]) -> None:
    """Register `xgen.Metric` subclasses: comparisons of maps, scores, codes or features with ground truth.

    :param register: call it once per class. `requires` names the inputs the metric needs and `optional` those it
        uses when given, from `xgen.methods.METRIC_INPUTS`: "maps" and "masks" (N, H, W), "scores" and "labels"
        (N,), "codes" (N, D) and "factors" (N, K), "real" and "fake" features (N, F), "model" and "data". Users may
        pass numpy arrays, tensors or lists; `compute` receives torch tensors, an `xgen.Model` and an `xgen.Dataset`.

    Example::

        import xgen

        class MeanAbsoluteError(xgen.Metric):
            name = "map-mae"
            description = "Mean absolute difference between maps and masks, pooled over all pixels."
            requires = {"maps", "masks"}

            def compute(self, *, maps, masks):
                return float((maps - masks.float()).abs().mean())

        @xgen.hookimpl
        def xgen_register_metrics(register):
            register(MeanAbsoluteError)
    """


@hookspec
def xgen_register_models(register: Callable[[type], None]) -> None:
    """Register `xgen.Architecture` subclasses: models that `xgen train ARCH` can build and train.

    :param register: call it once per class. An architecture builds the module for an input shape, defines its
        training step, and names the explainer its checkpoints use by default.

    Example::

        import torch
        import xgen

        class TinyAE(xgen.Architecture):
            name = "tiny-ae"
            description = "A one-layer linear autoencoder."
            default_explainer = "abs-error"
            latent: int = 8

            def build(self, input_shape):
                c, h, w = input_shape
                return TinyAEModule(c * h * w, self.latent)   # a module with encode/decode methods

            def loss(self, module, x):
                return torch.nn.functional.mse_loss(module.decode(module.encode(x)), x)

        @xgen.hookimpl
        def xgen_register_models(register):
            register(TinyAE)
    """


@hookspec
def xgen_register_datasets(register: Callable[[type], None]) -> None:
    """Register `xgen.Dataset` subclasses: data addressed on the command line as `NAME:key=value,...`.

    :param register: call it once per class. A dataset returns `xgen.ImageSet`s for its train and test splits;
        nothing may be downloaded at run time.

    Example::

        import torch
        import xgen

        class Noise(xgen.Dataset):
            name = "noise"
            description = "Uniform noise images, for smoke tests."
            n: int = 16

            def train(self):
                g = torch.Generator().manual_seed(0)
                return xgen.ImageSet(torch.rand(self.n, 1, 28, 28, generator=g))

            def test(self):
                return self.train()

        @xgen.hookimpl
        def xgen_register_datasets(register):
            register(Noise)
    """


@hookspec
def xgen_register_claims(register: Callable[[type], None]) -> None:
    """Register `xgen.Claim` subclasses: claims of papers that `xgen reproduce` re-measures and judges.

    :param register: call it once per class. A claim names its paper (`paper`, the number in ../shared/seeds),
        `citation`, the table or figure (`source`) and the paper's own number (`paper_value`); `runs(scale, data)`
        lists its grid (`xgen.Run`: experiment, data, variant, seed, settings) at the scales "quick", "default" and
        "paper"; `run(run, context)` executes one and returns JSON values; `findings(records)` turns the logged
        records into verdicts with a stated rule (`xgen.claims.compare`). Equal runs of several claims are
        executed once, and every run is logged as it finishes, so `xgen reproduce` resumes and never repeats work.

    Example::

        import xgen
        from xgen.claims import compare

        class LAeImprovesIoU(xgen.Claim):
            name = "my-loss-improves-iou"
            description = "Adding my loss raises the IoU of the maps."
            paper, citation, source, paper_value = "007", "Me et al., 2030", "Table 2", "IoU 0.61 vs 0.55"
            data = ("textures:brick",)

            def runs(self, scale, data):
                seeds = [0, 1] if scale == "quick" else [0, 1, 2]
                epochs = 1 if scale == "quick" else 20
                return [
                    xgen.Run("my-ablation", spec, variant, seed, {"epochs": epochs})
                    for spec in data for variant in ("plain", "with-loss") for seed in seeds
                ]

            def run(self, run, context):
                options = {"my_loss": run.variant == "with-loss"}
                model = xgen.train("my-model", run.data, epochs=run.settings["epochs"], seed=run.seed,
                                   device=context.device, options=options)
                return {"iou": xgen.evaluate(model, run.data, metrics=["iou"])["iou"]}

            def findings(self, records):
                def iou(variant):
                    return [r["result"]["iou"] for r in records if r["run"]["variant"] == variant]
                return [compare(self.name, "all data", ("with-loss", iou("with-loss")), ("plain", iou("plain")))]

        @xgen.hookimpl
        def xgen_register_claims(register):
            register(LAeImprovesIoU)
    """
