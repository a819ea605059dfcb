"""`xgen.traverse` and `xgen traverse`: latent traversals of any model that decodes, with per-dimension maps."""

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
from xgen.testing import TinyVAE
from xgen.traversal import _HEADER, _TILE_GAP

pytestmark = pytest.mark.usefixtures("one_thread")

XGEN = [sys.executable, "-c", "from xgen.cli import main; main()"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*XGEN, *args], cwd=cwd, capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def vae(conv_vae_checkpoint) -> xgen.Model:
    return xgen.load(conv_vae_checkpoint)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return xgen.dataset("digits:normal=1").test().images[:3]


def test_grid_shape_and_each_image_decodes_the_seed_with_one_dimension_moved(vae, digits):
    result = xgen.traverse(vae, digits, steps=5, dims=[0, 7, 31], span=1.5)
    assert result.images.shape == (3, 3, 5, 1, 28, 28)
    assert result.values.shape == (3, 3, 5) and result.dims == [0, 7, 31]
    assert result.images.min() >= 0.0 and result.images.max() <= 1.0
    with torch.no_grad():
        mean = vae.encode(digits).mean
        torch.testing.assert_close(result.seeds, mean)
        for s, d, t in [(0, 0, 0), (1, 1, 3), (2, 2, 4)]:
            code = mean[s].clone()
            code[result.dims[d]] += torch.linspace(-1.5, 1.5, 5)[t]
            torch.testing.assert_close(result.images[s, d, t], vae.decode(code[None])[0], atol=1e-5, rtol=1e-4)


def test_middle_of_an_odd_traversal_is_the_decoded_seed_mean(vae, digits):
    result = xgen.traverse(vae, digits, steps=9, maps=False)
    assert result.images.shape == (3, 32, 9, 1, 28, 28) and result.maps is None
    with torch.no_grad():
        reconstruction = vae.decode(vae.encode(digits).mean)
    middle = result.images[:, :, 4]
    torch.testing.assert_close(middle, reconstruction[:, None].expand_as(middle), atol=1e-5, rtol=1e-4)


def test_absolute_values_ignore_the_seed(vae, digits):
    result = xgen.traverse(vae, digits, steps=3, dims=[2], relative=False, span=2.0, maps=False)
    torch.testing.assert_close(result.values, torch.tensor([-2.0, 0.0, 2.0]).expand(3, 1, 3))


def test_per_dimension_maps_are_the_explainers_for_the_chosen_dims(vae, digits):
    result = xgen.traverse(vae, digits, steps=3, dims=[4, 1])
    assert result.plugin == "vae-gradcam" and result.notes == []
    direct = xgen.explain(vae, digits, plugin="vae-gradcam", per_dim=True).details["per_dim"]
    assert result.maps.shape == (3, 2, 28, 28)
    torch.testing.assert_close(result.maps, direct[:, [4, 1]])


def test_explainer_without_per_dim_gives_a_note_or_an_error_when_maps_are_asked_for(conv_vae_checkpoint, digits):
    model = xgen.load(conv_vae_checkpoint)
    model.default_explainer = "recon-error"
    result = xgen.traverse(model, digits, steps=3, dims=[0])
    assert result.maps is None and result.plugin is None
    assert any("no per_dim option" in note for note in result.notes)
    with pytest.raises(xgen.XgenError, match="cannot draw per-dimension maps: explainer 'recon-error'"):
        xgen.traverse(model, digits, steps=3, dims=[0], maps=True)


def test_decoder_only_model_traverses_around_prior_samples():
    decoder = TinyVAE(latent=4).decoder
    model = xgen.wrap(decoder, decode=decoder, prior=lambda n, g: torch.randn(n, 4, generator=g))
    result = xgen.traverse(model, n=2, steps=3, seed=5)
    expected_seeds = torch.randn(2, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(result.seeds, expected_seeds)
    assert result.images.shape == (2, 4, 3, 1, 16, 16) and result.seed_images is None
    with torch.no_grad():
        torch.testing.assert_close(result.images[:, :, 1], decoder(expected_seeds)[:, None].expand(2, 4, 1, 16, 16))
    assert result.maps is None and any("prior samples" in note for note in result.notes)
    with pytest.raises(xgen.XgenError, match="cannot encode images"):
        xgen.traverse(model, torch.rand(1, 1, 16, 16))
    with pytest.raises(xgen.XgenError, match="has no prior"):
        xgen.traverse(xgen.wrap(decoder, decode=decoder))


def test_dimensions_the_decoder_ignores_are_inactive_and_drawn_last(tmp_path):
    module = TinyVAE(latent=4)
    with torch.no_grad():
        module.decoder[0].weight[:, [1, 3]] = 0.0
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    result = xgen.traverse(module, x, steps=3, maps=False)
    assert result.inactive.tolist() == [False, True, False, True]
    assert torch.all(result.variation[[1, 3]] == 0) and any("2 of 4 dimensions" in n for n in result.notes)
    picture = np.asarray(result.picture(min_size=16))
    # Without maps, the last block's step tiles end at the right edge of the picture.
    right = picture.shape[1] + _TILE_GAP
    for row, dim in enumerate([0, 2, 1, 3]):
        y = _HEADER + row * (16 + _TILE_GAP)
        for t in range(3):
            left = right - (3 - t) * (16 + _TILE_GAP)
            expected = (result.images[-1, dim, t, 0] * 255 + 0.5).to(torch.uint8).numpy()
            np.testing.assert_array_equal(picture[y : y + 16, left : left + 16, 0], expected)
    with torch.no_grad():
        module.decoder[0].weight.zero_()
    assert xgen.traverse(module, x, steps=3, maps=False).inactive.all(), "a latent used nowhere is all inactive"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": [32]}, "out of range: the latent has 32 dimensions"),
        ({"dims": [1, 1]}, "name a dimension twice"),
        ({"dims": []}, "dims is empty"),
        ({"n": 0}, "n must be a whole number of seeds >= 1"),
        ({"steps": 1}, "steps must be a whole number >= 2"),
        ({"span": -1.0}, "span must be a positive number"),
        ({"threshold": 2.0}, "threshold must be a fraction"),
    ],
)
def test_bad_arguments_are_refused_with_one_sentence(vae, digits, kwargs, message):
    with pytest.raises(xgen.XgenError, match=message):
        xgen.traverse(vae, digits, **kwargs)


def test_save_refuses_a_missing_folder_and_a_non_png(vae, digits, tmp_path):
    result = xgen.traverse(vae, digits[:1], steps=3, dims=[0])
    with pytest.raises(xgen.XgenError, match="does not exist"):
        result.save(tmp_path / "missing" / "grid.png")
    with pytest.raises(xgen.XgenError, match=r"must end in \.png"):
        result.save(tmp_path / "grid.jpg")
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_the_picture_the_library_draws(conv_vae_checkpoint, tmp_path):
    test = xgen.dataset("digits:normal=1").test()
    for i in range(2):
        Image.fromarray((test.images[i, 0].numpy() * 255).round().astype(np.uint8)).save(tmp_path / f"d{i}.png")
    args = ["--model", str(conv_vae_checkpoint), "--steps", "5", "--dims", "0,3,5"]
    done = run("traverse", *args, "--out", "grid.png", "d0.png", "d1.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 dimensions x 5 steps around 2 images given, with vae-gradcam's per-dimension maps" in done.stdout
    with Image.open(tmp_path / "grid.png") as image:
        written = np.asarray(image.convert("RGB")).astype(int)
    seeds = torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / f"d{i}.png"))) for i in range(2)])
    expected = xgen.traverse(xgen.load(conv_vae_checkpoint), seeds[:, None].float() / 255, steps=5, dims=[0, 3, 5])
    drawn = np.asarray(expected.picture()).astype(int)
    assert written.shape == drawn.shape and written.shape[0] == _HEADER + 3 * (56 + _TILE_GAP)
    assert np.abs(written - drawn).max() <= 1

    default = run("traverse", "--model", str(conv_vae_checkpoint), "--out", "d.png", "--n", "1", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert "32 dimensions x 9 steps around 1 test images of digits:normal=1" in default.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dims", "0,99"], "dims [99] are out of range: the latent has 32 dimensions"),
        (["--dims", "a,b"], "--dims takes comma-separated latent indices"),
        (["--out", "missing/g.png"], "folder missing does not exist"),
    ],
)
def test_cli_bad_input_exits_2_with_one_sentence(conv_vae_checkpoint, tmp_path, args, expected):
    done = run("traverse", "--model", str(conv_vae_checkpoint), "--out", "g.png", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
