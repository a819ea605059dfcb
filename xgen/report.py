"""What `xgen evaluate` writes: a JSON record and a self-contained HTML report (metric table, ROC curves, and the
best- and worst-localised test images), both atomically."""

from __future__ import annotations

import base64
import html
import importlib.metadata
import io
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.stats import rankdata

from xgen.evaluation import Evaluation
from xgen.files import write_text
from xgen.visualize import GAP, jet, outline, to_unit

PACKAGES = ("xgen", "torch", "torchvision", "captum", "numpy", "scikit-learn", "scikit-image", "pluggy")
GALLERY = 6
TILE = 96


def environment() -> dict[str, Any]:
    """Versions and machine, so a number can be traced to where it was measured."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "packages": versions,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def record(evaluation: Evaluation, command: str | None, model: dict[str, Any]) -> dict[str, Any]:
    """The JSON record: the command, the model, every measured value, and the environment."""
    return {"command": command, "model": model, **evaluation.summary(), "environment": environment()}


def write_json(path: Path, evaluation: Evaluation, command: str | None, model: dict[str, Any]) -> None:
    write_text(path, json.dumps(record(evaluation, command, model), indent=2) + "\n")


def roc_points(values: torch.Tensor, positive: torch.Tensor, levels: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at up to `levels` thresholds (quantiles of the values) for drawing; each point is exact at its
    threshold. values, positive: the same shape, positive boolean."""
    flat, truth = values.reshape(-1).float(), positive.reshape(-1).bool()
    sample = flat if flat.numel() <= 1 << 20 else flat[torch.randint(0, flat.numel(), (1 << 20,))]
    edges = torch.unique(torch.quantile(sample.double(), torch.linspace(0, 1, levels, dtype=torch.float64)).float())
    bins = torch.bucketize(flat, edges, right=True)
    pos = torch.bincount(bins[truth], minlength=edges.numel() + 1).double()
    neg = torch.bincount(bins[~truth], minlength=edges.numel() + 1).double()
    tpr = pos.flip(0).cumsum(0) / max(pos.sum().item(), 1.0)
    fpr = neg.flip(0).cumsum(0) / max(neg.sum().item(), 1.0)
    return np.concatenate([[0.0], fpr.numpy()]), np.concatenate([[0.0], tpr.numpy()])


def roc_svg(curves: list[tuple[str, np.ndarray, np.ndarray, str]], size: int = 300) -> str:
    """An inline SVG of ROC curves [(label, fpr, tpr, colour)] with the chance diagonal."""
    pad, inner = 36, size - 48
    point = lambda f, t: f"{pad + f * inner:.1f},{12 + (1 - t) * inner:.1f}"  # noqa: E731
    lines = [
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
        f'points="{" ".join(point(f, t) for f, t in zip(fpr, tpr, strict=True))}"><title>{html.escape(label)}'
        "</title></polyline>"
        for label, fpr, tpr, colour in curves
    ]
    legend = "".join(
        f'<text x="{pad + inner - 4}" y="{inner - 4 - 14 * i}" font-size="11" text-anchor="end" '
        f'fill="{colour}">{html.escape(label)}</text>'
        for i, (label, _, _, colour) in enumerate(curves)
    )
    return (
        f'<svg width="{size}" height="{size}" role="img" aria-label="ROC curves">'
        f'<rect x="{pad}" y="12" width="{inner}" height="{inner}" fill="none" stroke="#999"/>'
        f'<line x1="{pad}" y1="{12 + inner}" x2="{pad + inner}" y2="12" stroke="#ccc" stroke-dasharray="4"/>'
        + "".join(lines)
        + legend
        + f'<text x="{pad + inner / 2}" y="{size - 8}" font-size="11" text-anchor="middle">false positive rate</text>'
        f'<text x="12" y="{12 + inner / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {12 + inner / 2})">true positive rate</text>'
        f'<text x="{pad}" y="{24 + inner}" font-size="10" text-anchor="middle">0</text>'
        f'<text x="{pad + inner}" y="{24 + inner}" font-size="10" text-anchor="middle">1</text></svg>'
    )


def per_image_auroc(maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """ROC AUC of each map (N, H, W) against its mask (ties counted half); NaN where a mask has one class only."""
    values = maps.flatten(1).double().numpy()
    truth = masks.flatten(1).bool().numpy()
    ranks = rankdata(values, axis=1)
    pos = truth.sum(axis=1)
    neg = truth.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * truth).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
    auc[(pos == 0) | (neg == 0)] = np.nan
    return auc


def per_image_iou(predicted: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """IoU of each predicted mask (N, H, W) with its ground truth; 0 where both are empty."""
    p, t = predicted.flatten(1).bool(), masks.flatten(1).bool()
    union = (p | t).sum(dim=1).double()
    return ((p & t).sum(dim=1).double() / union.clamp_min(1)).numpy()


def _rgb(image: torch.Tensor) -> np.ndarray:
    """image: (C, H, W) in [0, 1] -> (H, W, 3) uint8."""
    rgb = image.repeat(3, 1, 1) if image.shape[0] == 1 else image[:3]
    return (rgb.permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def _row_png(panels: list[np.ndarray]) -> str:
    """Panels (H, W, 3) uint8 side by side, enlarged to TILE pixels high, as a data: URI."""
    h, w, _ = panels[0].shape
    canvas = np.full((h, len(panels) * (w + GAP) - GAP, 3), 255, dtype=np.uint8)
    for i, panel in enumerate(panels):
        canvas[:, i * (w + GAP) : i * (w + GAP) + w] = panel
    picture = Image.fromarray(canvas)
    scale = max(1, -(-TILE // h))
    if scale > 1:
        picture = picture.resize((canvas.shape[1] * scale, h * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _threshold(evaluation: Evaluation) -> float:
    """The threshold the thresholded pictures use: the first `iou` metric's, else 0.5."""
    for result in evaluation.metrics:
        if result.name == "iou":
            return float(result.options.get("threshold", 0.5))
    return 0.5


def _panels(evaluation: Evaluation, i: int, threshold: float) -> list[np.ndarray]:
    """Input, ground-truth mask (if any), map in jet colours, and the map thresholded (mask outlined in red)."""
    test = evaluation.test
    shown = evaluation.normalized[i].numpy()
    predicted = shown >= threshold
    binary = np.repeat((predicted * 255).astype(np.uint8)[..., None], 3, axis=2)
    panels = [_rgb(test.images[i])]
    if test.masks is not None:
        mask = test.masks[i].numpy() > 0
        panels.append(np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2))
        binary = outline(binary, mask)
    return [*panels, jet(to_unit(shown)), binary]


def _class_of(evaluation: Evaluation, i: int) -> str:
    test = evaluation.test
    if test.classes is not None:
        value = int(test.classes[i])
        return test.class_names.get(value, f"class {value}")
    if test.labels is not None:
        return "anomalous" if int(test.labels[i]) else "normal"
    return ""


def _gallery_rows(evaluation: Evaluation) -> tuple[str, str]:
    """(explanation, HTML rows) of the best- and worst-localised anomalous images, or, without masks, of the
    best- and worst-detected images."""
    test, threshold = evaluation.test, _threshold(evaluation)
    sections: list[tuple[str, list[tuple[int, str]]]] = []
    if test.masks is not None and bool(test.masks.any()):
        anomalous = test.masks.flatten(1).any(dim=1).nonzero().flatten()
        auc = np.full(len(test), np.nan)
        auc[anomalous.numpy()] = per_image_auroc(evaluation.normalized[anomalous], test.masks[anomalous])
        iou = per_image_iou(evaluation.normalized >= threshold, test.masks)
        ranked = [i for i in np.argsort(-np.nan_to_num(auc, nan=-1.0)) if not np.isnan(auc[i])]
        caption = lambda i: f"pixel AUROC {auc[i]:.3f}, IoU at {threshold:g}: {iou[i]:.3f}"  # noqa: E731
        sections = [
            ("Best localised", [(i, caption(i)) for i in ranked[:GALLERY]]),
            ("Worst localised", [(i, caption(i)) for i in ranked[::-1][:GALLERY]]),
        ]
        header = "input | ground truth | anomaly map | map &ge; threshold (ground truth outlined in red)"
        intro = "Anomalous test images ranked by the pixel AUROC of their own map against their own mask."
    elif evaluation.normalized_scores is not None and test.labels is not None:
        scores = evaluation.normalized_scores.numpy()
        labels = test.labels.numpy().astype(bool)
        order = np.argsort(-scores)
        pick = lambda ids: [(i, f"score {scores[i]:.3f}") for i in ids][:GALLERY]  # noqa: E731
        sections = [
            ("Anomalous images scored highest", pick(i for i in order if labels[i])),
            ("Anomalous images scored lowest (missed)", pick(i for i in order[::-1] if labels[i])),
            ("Normal images scored highest (false alarms)", pick(i for i in order if not labels[i])),
        ]
        header = "input | anomaly map | map &ge; threshold"
        intro = "The data has no masks, so images are ranked by their (normalised) image score."
    else:
        return "", ""
    rows = []
    for title, picked in sections:
        cells = "".join(
            f'<figure><img src="{_row_png(_panels(evaluation, i, threshold))}" alt="{html.escape(test.names[i])}">'
            f"<figcaption>{html.escape(test.names[i])} ({html.escape(_class_of(evaluation, i))}): "
            f"{html.escape(text)}</figcaption></figure>"
            for i, text in picked
        )
        rows.append(f"<h3>{html.escape(title)}</h3><div class='gallery'>{cells}</div>")
    return f"<p>{intro} Columns: {header}.</p>", "\n".join(rows)


def _metric_table(evaluation: Evaluation) -> str:
    rows = []
    for r in evaluation.metrics:
        interval = f"[{r.interval[0]:.4f}, {r.interval[1]:.4f}]" if r.interval else ""
        flagged = f"{100 * r.flagged:.1f}%" if r.flagged is not None else ""
        rows.append(
            f"<tr><td><code>{html.escape(r.spec)}</code></td><td>{r.value:.4f}</td><td>{interval}</td>"
            f"<td>{flagged}</td><td>{html.escape(r.note or '')}</td></tr>"
        )
    return (
        "<table><tr><th>metric</th><th>value</th><th>95% bootstrap CI</th><th>flagged at threshold</th>"
        "<th>note</th></tr>" + "".join(rows) + "</table>"
    )


def _roc_section(evaluation: Evaluation) -> str:
    test, curves = evaluation.test, []
    if test.masks is not None and bool(test.masks.any()) and not bool(test.masks.all()):
        fpr, tpr = roc_points(evaluation.normalized, test.masks > 0)
        curves.append(("pixels", fpr, tpr, "#c0392b"))
    if evaluation.normalized_scores is not None and test.labels is not None and 0 < int(test.labels.sum()) < len(test):
        fpr, tpr = roc_points(evaluation.normalized_scores, test.labels > 0)
        curves.append(("images", fpr, tpr, "#2471a3"))
    if not curves:
        return ""
    return (
        "<h2>ROC curves</h2>" + roc_svg(curves) + "<p class='small'>Drawn through up to 256 thresholds (quantiles "
        "of the values), each point exact; the AUROC values in the table use every threshold.</p>"
    )


def _generation_facts(evaluation: Evaluation) -> list[tuple[str, str]]:
    """The rows naming the feature extractor and the sample counts behind fid, precision and recall, if computed."""
    g = evaluation.generation
    if not g:
        return []
    samples = (
        f"{g['generated_images']:,} generated images (seed {g['seed']}) against {g['real_images']:,} images of the "
        f"{g['real_split']} split"
    )
    return [
        ("features", f"{html.escape(g['features'])} ({g['dimensions']}-d)"),
        ("generated", html.escape(samples)),
    ]


def write_html(path: Path, evaluation: Evaluation, command: str | None, model: dict[str, Any]) -> None:
    """The self-contained report: every picture is inlined, so the file can be mailed or archived alone."""
    summary, env = evaluation.summary(), environment()
    intro, gallery = _gallery_rows(evaluation)
    counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in summary["test"].items())
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in evaluation.warnings)
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    facts = [
        ("command", f"<code>{html.escape(command or '(library call)')}</code>"),
        ("model", html.escape(", ".join(f"{k}: {v}" for k, v in model.items()))),
        ("data", f"<code>{html.escape(evaluation.data)}</code>: {html.escape(counts)}"),
        ("explainer", f"<code>{html.escape(evaluation.plugin)}</code> {html.escape(json.dumps(evaluation.options))}"),
        ("image score", html.escape(evaluation.score_source)),
        ("normalisation", html.escape(json.dumps(evaluation.normalization))),
        *_generation_facts(evaluation),
        ("seed", str(evaluation.seed)),
        ("machine", html.escape(f"{env['platform']}, {env['cpus']} CPUs, {env['torch_threads']} torch threads")),
        ("versions", html.escape(f"python {env['python']}, {packages}")),
        ("time", f"{evaluation.seconds:.1f} s"),
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xgen evaluation: {html.escape(evaluation.data)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 76rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
td, th {{ padding: 0.2rem 0.6rem; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }}
code {{ background: #f4f4f4; padding: 0 0.2rem; }} .warn {{ background: #fff4e5; padding: 0.5rem 1rem; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(22rem, 1fr)); gap: 1rem; }}
figure {{ margin: 0; }} img {{ max-width: 100%; image-rendering: pixelated; }}
figcaption, .small {{ font-size: 0.8rem; color: #555; }}
</style></head><body>
<h1>xgen evaluation: <code>{html.escape(evaluation.plugin)}</code> on <code>{html.escape(evaluation.data)}</code></h1>
{f'<div class="warn"><strong>Warnings</strong><ul>{warnings}</ul></div>' if warnings else ""}
<h2>Metrics</h2>
{_metric_table(evaluation)}
{_roc_section(evaluation)}
<h2>Test images</h2>
{intro}
{gallery}
<h2>How this was measured</h2>
<table>{"".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)}</table>
</body></html>
"""
    write_text(path, page)
