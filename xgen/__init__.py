"""xgen: explain generative models uniformly.

import xgen
model = xgen.load("ckpt.pt")                     # or xgen.wrap(module, encode=..., decode=...)
exp = xgen.explain(model, x, plugin="vae-gradcam")
exp.anomaly_map                                   # (N, H, W) float32

Importing xgen is cheap: the names below that need torch are imported on first use (PEP 562), so `xgen --help` and
plugins that only declare hooks start in a fraction of a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xgen.errors import CheckpointError, InputError, PluginError, WrapError, XgenError
from xgen.hookspecs import hookimpl

__version__ = "0.1.0"

# Public name -> (module, attribute in it, or None for the module itself). A new public name is one line here.
_LAZY: dict[str, tuple[str, str | None]] = {
    "Architecture": ("xgen.architecture", "Architecture"),
    "Claim": ("xgen.claims", "Claim"),
    "Dataset": ("xgen.data", "Dataset"),
    "Evaluation": ("xgen.evaluation", "Evaluation"),
    "Explainer": ("xgen.methods", "Explainer"),
    "Explanation": ("xgen.methods", "Explanation"),
    "Factors": ("xgen.data", "Factors"),
    "ImageSet": ("xgen.data", "ImageSet"),
    "Latent": ("xgen.model", "Latent"),
    "StandardNormal": ("xgen.model", "StandardNormal"),
    "Metric": ("xgen.methods", "Metric"),
    "Model": ("xgen.model", "Model"),
    "Run": ("xgen.claims", "Run"),
    "Scorer": ("xgen.methods", "Scorer"),
    "dataset": ("xgen.plugins", "open_dataset"),
    "evaluate": ("xgen.evaluation", "evaluate"),
    "evaluation_mode": ("xgen.api", "evaluation_mode"),
    "explain": ("xgen.api", "explain"),
    "features": ("xgen.features", None),
    "fit_scorer": ("xgen.api", "fit_scorer"),
    "gradients": ("xgen.gradients", None),
    "images": ("xgen.images", None),
    "list_plugins": ("xgen.api", "list_plugins"),
    "load": ("xgen.checkpoint", "load"),
    "metric": ("xgen.api", "metric"),
    "reproduce": ("xgen.reproduction", "reproduce"),
    "save": ("xgen.checkpoint", "save"),
    "score": ("xgen.api", "score"),
    "train": ("xgen.training", "train"),
    "traverse": ("xgen.traversal", "traverse"),
    "wrap": ("xgen.model", "wrap"),
}

# Every public name: the eager ones above and those of _LAZY.
__all__ = [
    "Architecture",
    "CheckpointError",
    "Claim",
    "Dataset",
    "Evaluation",
    "Explainer",
    "Explanation",
    "Factors",
    "ImageSet",
    "InputError",
    "Latent",
    "Metric",
    "Model",
    "PluginError",
    "Run",
    "Scorer",
    "StandardNormal",
    "WrapError",
    "XgenError",
    "__version__",
    "dataset",
    "evaluate",
    "evaluation_mode",
    "explain",
    "features",
    "fit_scorer",
    "gradients",
    "hookimpl",
    "images",
    "list_plugins",
    "load",
    "metric",
    "reproduce",
    "save",
    "score",
    "train",
    "traverse",
    "wrap",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it, so later look-ups are plain attribute reads."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'xgen' has no attribute '{name}'") from None
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from xgen import features, gradients, images
    from xgen.api import evaluation_mode, explain, fit_scorer, list_plugins, metric, score
    from xgen.architecture import Architecture
    from xgen.checkpoint import load, save
    from xgen.claims import Claim, Run
    from xgen.data import Dataset, Factors, ImageSet
    from xgen.evaluation import Evaluation, evaluate
    from xgen.methods import Explainer, Explanation, Metric, Scorer
    from xgen.model import Latent, Model, StandardNormal, wrap
    from xgen.plugins import open_dataset as dataset
    from xgen.reproduction import reproduce
    from xgen.training import train
    from xgen.traversal import traverse
