"""Datasets `folder:PATH` and `mvtec:PATH` on tiny trees the tests write: labels, classes, names, masks, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import xgen
import xgen_plugins.image_folders
from xgen.plugins import lookup, new_registry, use_registry

XGEN = [sys.executable, "-c", "from xgen.cli import main; main()"]
RNG = np.random.default_rng(0)


def _entry_point_installed() -> bool:
    with use_registry(new_registry()):
        try:
            lookup("dataset", "mvtec")
        except xgen.XgenError:
            return False
    return True


@pytest.fixture(autouse=True)
def registry():
    """A fresh registry holding the image_folders plugin (through its entry point, or added in-process)."""
    fresh = new_registry()
    if "mvtec" not in fresh.names("dataset"):
        fresh.add_plugin(xgen_plugins.image_folders, "image_folders")
    with use_registry(fresh):
        yield fresh


def png(path: Path, pixels: np.ndarray) -> np.ndarray:
    """Write uint8 (H, W) or (H, W, 3) `pixels` as a PNG (creating folders) and return them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def rgb(size: int = 32) -> np.ndarray:
    return RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)


def block_mask(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random 16x16 {0, 1} pattern and its 32x32 PNG pixels (2x2 blocks of 0 or 255), so that any nearest
    neighbour resize to 16x16 gives the pattern back exactly."""
    pattern = np.random.default_rng(seed).integers(0, 2, (16, 16)).astype(np.uint8)
    return pattern, np.kron(pattern, np.ones((2, 2), dtype=np.uint8)) * 255


@pytest.fixture
def mvtec(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny MVTec category of 32x32 RGB images: 3 train/good, test/good 2, test/crack 2, test/scratch 1, with
    block masks; returns the root and, per test name, its 16x16 expected mask pattern."""
    root = tmp_path / "bottle"
    for i in range(3):
        png(root / "train" / "good" / f"{i:03d}.png", rgb())
    expected = {}
    for defect, count in (("good", 2), ("crack", 2), ("scratch", 1)):
        for i in range(count):
            png(root / "test" / defect / f"{i:03d}.png", rgb())
            pattern, pixels = block_mask(len(expected))
            if defect == "good":
                pattern = np.zeros((16, 16), dtype=np.uint8)
            else:
                png(root / "ground_truth" / defect / f"{i:03d}_mask.png", pixels)
            expected[f"test/{defect}/{i:03d}"] = pattern
    return root, expected


def test_mvtec_labels_classes_names_and_resized_masks(mvtec):
    root, expected = mvtec
    data = xgen.dataset(f"mvtec:{root},size=16")
    train, test = data.train(), data.test()
    assert train.images.shape == (3, 3, 16, 16) and train.images.dtype == torch.float32
    assert train.names == ["train/good/000", "train/good/001", "train/good/002"]
    assert train.labels.tolist() == [0, 0, 0] and not train.masks.any()
    assert test.names == list(sorted(expected))
    assert test.labels.tolist() == [1, 1, 0, 0, 1]
    assert data.defects == ["good", "crack", "scratch"]
    assert test.classes.tolist() == [1, 1, 0, 0, 2]
    assert test.images.shape == (5, 3, 16, 16) and test.images.min() >= 0 and test.images.max() <= 1
    assert test.masks.dtype == torch.float32 and set(test.masks.unique().tolist()) <= {0.0, 1.0}
    for name, mask in zip(test.names, test.masks, strict=True):
        assert np.array_equal(mask.numpy(), expected[name]), name
    assert data.spec() == f"mvtec:{root},size=16"


def test_mvtec_at_native_size_keeps_pixels_exactly(mvtec):
    root, _ = mvtec
    test = xgen.dataset(f"mvtec:{root},size=32").test()
    pixels = np.asarray(Image.open(root / "test" / "crack" / "001.png"), dtype=np.float32) / 255
    assert torch.equal(test.images[1], torch.from_numpy(pixels).permute(2, 0, 1))
    written = np.asarray(Image.open(root / "ground_truth" / "crack" / "001_mask.png")) > 0
    assert np.array_equal(test.masks[1].numpy(), written.astype(np.float32))


def test_mvtec_channels_option_converts(mvtec):
    root, _ = mvtec
    grey = xgen.dataset(f"mvtec:{root},size=16,channels=1").test()
    assert grey.images.shape == (5, 1, 16, 16)
    colour = xgen.dataset(f"mvtec:{root},size=16").test()
    luma = (colour.images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(grey.images, luma, atol=1e-6)


def test_mvtec_missing_train_good_or_test_is_one_sentence(mvtec):
    root, _ = mvtec
    (root / "test").rename(root / "tests")
    with pytest.raises(xgen.XgenError, match=r"^test is missing in .*bottle; point mvtec: at one category"):
        xgen.dataset(f"mvtec:{root}")
    (root / "train" / "good").rename(root / "train" / "ok")
    with pytest.raises(xgen.XgenError, match=r"^train/good is missing in "):
        xgen.dataset(f"mvtec:{root}")


def test_mvtec_missing_mask_names_the_first_missing_file(mvtec):
    root, _ = mvtec
    (root / "ground_truth" / "scratch" / "000_mask.png").unlink()
    with pytest.raises(xgen.XgenError) as caught:
        xgen.dataset(f"mvtec:{root}")
    assert str(caught.value) == "ground_truth/scratch/000_mask.png is missing for test/scratch/000.png."


def test_mvtec_mask_of_another_size_is_an_error(mvtec):
    root, _ = mvtec
    png(root / "ground_truth" / "crack" / "001_mask.png", np.zeros((16, 16), dtype=np.uint8))
    data = xgen.dataset(f"mvtec:{root},size=16")
    with pytest.raises(xgen.XgenError, match=r"^ground_truth/crack/001_mask.png is 16x16 pixels but its image "):
        data.test()


def test_corrupt_image_is_an_input_error_naming_it(mvtec):
    root, _ = mvtec
    (root / "test" / "good" / "001.png").write_bytes(b"not a png")
    data = xgen.dataset(f"mvtec:{root},size=16")
    data.train()
    with pytest.raises(xgen.InputError, match=r"test/good/001\.png"):
        data.test()


def test_bad_options_are_errors(tmp_path):
    with pytest.raises(xgen.XgenError, match="needs a folder"):
        xgen.dataset("folder")
    with pytest.raises(xgen.XgenError, match="not a folder"):
        xgen.dataset(f"mvtec:{tmp_path / 'nowhere'}")
    with pytest.raises(xgen.XgenError, match="channels must be 1 or 3"):
        xgen.dataset(f"folder:{tmp_path},channels=2")


def test_folder_without_good_is_every_image_unlabelled(tmp_path):
    a = png(tmp_path / "b.png", rgb(8))
    b = png(tmp_path / "a" / "x.png", rgb(8))
    data = xgen.dataset(f"folder:{tmp_path}")
    train, test = data.train(), data.test()
    for split in (train, test):
        assert split.names == ["a/x", "b"]
        assert split.labels is None and split.masks is None and split.classes is None
    assert torch.equal(train.images, test.images)
    assert torch.equal(test.images * 255, torch.from_numpy(np.stack([b, a]).astype(np.float32)).permute(0, 3, 1, 2))


@pytest.mark.parametrize(("folder", "suffix"), [("masks", "_mask"), ("ground_truth", "")])
def test_folder_with_good_is_labelled_with_masks(tmp_path, folder, suffix):
    for name in ("good/0.png", "good/1.png", "hole/0.png", "cut/0.png"):
        png(tmp_path / name, rgb(32))
    hole, hole_pixels = block_mask(1)
    cut, cut_pixels = block_mask(2)
    png(tmp_path / folder / "hole" / f"0{suffix}.png", hole_pixels)
    png(tmp_path / folder / "cut" / f"0{suffix}.png", cut_pixels)
    data = xgen.dataset(f"folder:{tmp_path},size=16")
    train, test = data.train(), data.test()
    assert train.names == ["good/0", "good/1"] and train.labels.tolist() == [0, 0]
    assert test.names == ["cut/0", "good/0", "good/1", "hole/0"]
    assert test.labels.tolist() == [1, 0, 0, 1] and test.classes.tolist() == [1, 0, 0, 2]
    assert test.images.shape == (4, 3, 16, 16)
    assert np.array_equal(test.masks[0].numpy(), cut) and np.array_equal(test.masks[3].numpy(), hole)
    assert not test.masks[1:3].any()


def test_folder_with_good_without_masks_and_a_missing_mask(tmp_path):
    png(tmp_path / "good" / "0.png", rgb(8))
    png(tmp_path / "bad" / "0.png", rgb(8))
    test = xgen.dataset(f"folder:{tmp_path}").test()
    assert test.labels.tolist() == [1, 0] and test.masks is None
    (tmp_path / "masks").mkdir()
    with pytest.raises(xgen.XgenError, match=r"^masks/bad/0_mask.png \(or masks/bad/0.png\) is missing for bad/0.png"):
        xgen.dataset(f"folder:{tmp_path}").test()


def test_folder_size_mismatch_names_both_files_and_size_resizes(tmp_path):
    png(tmp_path / "a.png", rgb(8))
    png(tmp_path / "b.png", rgb(12))
    with pytest.raises(xgen.XgenError, match=r"^b.png is 12x12 pixels but a.png is 8x8; pass size=N"):
        xgen.dataset(f"folder:{tmp_path}").test()
    assert xgen.dataset(f"folder:{tmp_path},size=4").test().images.shape == (2, 3, 4, 4)


def test_folder_channels_mismatch_and_conversion(tmp_path):
    png(tmp_path / "a.png", rgb(8))
    grey = png(tmp_path / "b.png", RNG.integers(0, 256, (8, 8), dtype=np.uint8))
    with pytest.raises(xgen.XgenError, match=r"^b.png has 1 channel\(s\) but a.png has 3; pass channels=1"):
        xgen.dataset(f"folder:{tmp_path}").test()
    images = xgen.dataset(f"folder:{tmp_path},channels=3").test().images
    assert images.shape == (2, 3, 8, 8)
    assert torch.equal(images[1] * 255, torch.from_numpy(grey.astype(np.float32)).expand(3, 8, 8))
    assert xgen.dataset(f"folder:{tmp_path},channels=1").test().images.shape == (2, 1, 8, 8)


@pytest.mark.skipif(
    not _entry_point_installed(),
    reason="needs the entry point image_folders = 'xgen_plugins.image_folders' in pyproject.toml, reinstalled",
)
def test_cli_trains_on_mvtec_and_explains_into_defect_folders(mvtec, tmp_path):
    root, _ = mvtec
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    spec = f"mvtec:{root},size=16"
    for args in (
        ["train", "conv-vae", "--data", spec, "--epochs", "1", "--out", "c.pt"],
        ["explain", "--model", "c.pt", "--data", spec, "--out", "maps"],
    ):
        result = subprocess.run([*XGEN, *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
    maps = tmp_path / "maps" / "test"
    assert sorted(p.name for p in maps.iterdir() if p.is_dir()) == ["crack", "good", "scratch"]
    assert (maps / "scratch" / "000.npy").is_file() and (maps / "crack" / "001.png").is_file()
