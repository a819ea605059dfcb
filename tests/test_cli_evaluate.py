"""`xgen evaluate` and `xgen data show` through a real `xgen` process, on a tiny MVTec tree the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import one_error_line, run


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """One MVTec category of 16x16 grey noise: 6 train/good, test/good 3, test/hole 3 with a white 4x4 square
    and its mask, test/crack 2 with a white 2x8 bar and its mask."""
    root = tmp_path_factory.mktemp("mvtec") / "tile"
    rng = np.random.default_rng(0)
    noise = lambda: rng.integers(0, 40, (16, 16), dtype=np.uint8)  # noqa: E731
    for i in range(6):
        write_png(root / "train" / "good" / f"{i:03d}.png", noise())
    for i in range(3):
        write_png(root / "test" / "good" / f"{i:03d}.png", noise())
    for defect, count, (h, w) in (("hole", 3, (4, 4)), ("crack", 2, (2, 8))):
        for i in range(count):
            mask = np.zeros((16, 16), dtype=np.uint8)
            r, c = rng.integers(0, 16 - h), rng.integers(0, 16 - w)
            mask[r : r + h, c : c + w] = 255
            write_png(root / "test" / defect / f"{i:03d}.png", np.maximum(noise(), mask))
            write_png(root / "ground_truth" / defect / f"{i:03d}_mask.png", mask)
    return root


@pytest.fixture(scope="module")
def trained(tree, tmp_path_factory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("work")
    spec = f"mvtec:{tree},size=16"
    result = run("train", "conv-vae", "--data", spec, "--epochs", "2", "--out", "m.pt", cwd=work)
    assert result.returncode == 0, result.stderr
    return work, spec


def test_evaluate_an_mvtec_tree_end_to_end(trained):
    work, spec = trained
    result = run(
        "evaluate", "--model", "m.pt", "--plugin", "recon-error", "--json", "out/e.json", "--report", "out/e.html",
        cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pixel-auroc" in result.stdout and "Evaluated in" in result.stdout
    saved = json.loads((work / "out" / "e.json").read_text())
    assert saved["data"] == spec, "the data defaults to what the checkpoint was trained on"
    assert saved["command"].startswith("xgen evaluate --model m.pt")
    assert saved["test"] == {"images": 8, "anomalous_images": 5, "pixels": 8 * 256, "anomalous_pixels": 3 * 16 + 2 * 16}
    metrics = saved["metrics"]
    assert {"pixel-auroc", "pixel-aupro", "iou", "best-iou", "image-auroc", "f1"} <= set(metrics)
    assert all(0.0 <= m["value"] <= 1.0 for m in metrics.values())
    assert metrics["pixel-auroc"]["value"] > 0.9, "white defects on dark noise are where the error is"
    assert saved["normalization"]["method"] == "per-image"
    page = (work / "out" / "e.html").read_text()
    assert "test/hole/" in page and "<svg" in page


def test_evaluate_bad_requests_are_one_sentence_and_write_nothing(trained):
    work, spec = trained
    cases = [
        (["--normalize", "minmax"], "--normalize must be one of per-image, normal-stats, none"),
        (["--metric", "pixel-aurc"], "Did you mean 'pixel-auroc'"),
        (["--data", "digits:size=16", "--metric", "pixel-auroc"], "needs masks, but digits:normal=1,size=16 has no"),
        (["--data", "digits"], "has 1x28x28 (CxHxW) images but the model expects 1x16x16"),
        (["--data", f"mvtec:{spec[6:].split(',')[0]},sise=16"], "Did you mean 'size'"),
        (["--json", "."], "--json . is a folder; give a file path inside it"),
    ]
    for args, message in cases:
        result = run("evaluate", "--model", "m.pt", "--report", "bad/r.html", *args, cwd=work)
        assert message in one_error_line(result)
        assert not (work / "bad").exists()


def test_evaluate_normal_stats_is_recorded(trained):
    work, _ = trained
    result = run("evaluate", "--model", "m.pt", "--normalize", "normal-stats", "--json", "n.json", cwd=work)
    assert result.returncode == 0, result.stderr
    record = json.loads((work / "n.json").read_text())["normalization"]
    assert record["method"] == "normal-stats" and record["validation"].startswith("6 images of the training split")
    low, high = record["maps"]
    assert low < high


def test_data_show_outlines_masks(tree, tmp_path):
    result = run("data", "show", f"mvtec:{tree},size=16", "--out", "grid.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 of 8 test images" in result.stdout and "masks outlined" in result.stdout
    picture = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB")).astype(int)
    red = (picture[..., 0] > 200) & (picture[..., 1] < 60) & (picture[..., 2] < 60)
    assert red.sum() > 0
    result = run("data", "show", "textures:brik", "--out", "t.png", cwd=tmp_path)
    assert "Did you mean 'brick'" in one_error_line(result)
    assert not (tmp_path / "t.png").exists()
