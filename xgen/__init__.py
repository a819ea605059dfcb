"""xgen: explain generative models uniformly.

import xgen
model = xgen.load("ckpt.pt")                     # or xgen.wrap(module, encode=..., decode=...)
exp = xgen.explain(model, x, plugin="vae-gradcam")
exp.anomaly_map                                   # (N, H, W) float32
"""

from xgen import gradients, images
from xgen.api import explain, list_plugins, metric, score
from xgen.architecture import Architecture
from xgen.checkpoint import load, save
from xgen.data import Dataset, ImageSet
from xgen.errors import CheckpointError, InputError, PluginError, WrapError, XgenError
from xgen.evaluation import Evaluation, evaluate
from xgen.hookspecs import hookimpl
from xgen.methods import Explainer, Explanation, Metric, Scorer
from xgen.model import Latent, Model, wrap
from xgen.plugins import open_dataset as dataset
from xgen.training import train

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "CheckpointError",
    "Dataset",
    "Evaluation",
    "Explainer",
    "Explanation",
    "ImageSet",
    "InputError",
    "Latent",
    "Metric",
    "Model",
    "PluginError",
    "Scorer",
    "WrapError",
    "XgenError",
    "__version__",
    "dataset",
    "evaluate",
    "explain",
    "gradients",
    "hookimpl",
    "images",
    "list_plugins",
    "load",
    "metric",
    "save",
    "score",
    "train",
    "wrap",
]
