"""The explain job in-process: pipelined writing, interruption, resuming, and the PNG encoder it writes with."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path, PurePath

import numpy as np
import pytest
import torch
from PIL import Image

import xgen
from xgen.explain_job import MANIFEST, Item, run
from xgen.visualize import GAP, encode_pngs, jet, overlay, overlays

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(conv_vae_checkpoint) -> xgen.Model:
    return xgen.load(conv_vae_checkpoint)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return xgen.dataset("digits:normal=1").test().images[:22]


def items_of(images: torch.Tensor, interrupt_at: int | None = None) -> list[Item]:
    def load(i: int) -> torch.Tensor:
        if i == interrupt_at:
            raise KeyboardInterrupt
        return images[i]

    stems = [PurePath("sub" if i % 2 else ".") / f"img{i}" for i in range(len(images))]
    return [Item(stem, stem.name, lambda i=i: load(i)) for i, stem in enumerate(stems)]


def complete_outputs(out: Path) -> set[str]:
    """Stems whose .npy and .png both exist, after checking that every file there is whole and readable."""
    assert not list(out.rglob("*.part")), "a temporary file was left behind"
    for npy in out.rglob("*.npy"):
        assert np.load(npy).shape == (28, 28)
    for png in out.rglob("*.png"):
        with Image.open(png) as picture:
            picture.load()
    npys = {str(p.relative_to(out).with_suffix("")) for p in out.rglob("*.npy")}
    pngs = {str(p.relative_to(out).with_suffix("")) for p in out.rglob("*.png")}
    return npys & pngs


def recorded(out: Path) -> set[str]:
    lines = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    return {row[0] for line in lines[1:] for row in line["images"]}


def test_interrupted_run_keeps_only_complete_recorded_files_and_a_rerun_finishes(model, images, tmp_path):
    out = tmp_path / "maps"
    threads = torch.get_num_threads()
    with pytest.raises(KeyboardInterrupt):
        run(model, items_of(images, interrupt_at=13), out, plugin=None, options={}, model_id="m", batch_size=4)
    done = recorded(out)
    assert torch.get_num_threads() == threads, "the job gives torch its threads back"
    assert done and done <= complete_outputs(out)
    assert len(done) == 12, "the three batches before the interrupted one were written and recorded"
    result = run(model, items_of(images), out, plugin=None, options={}, model_id="m", batch_size=4)
    assert (result.explained, result.skipped) == (len(images) - 12, 12)
    assert complete_outputs(out) == {str(item.stem) for item in items_of(images)}
    maps = xgen.explain(model, images).anomaly_map.numpy()
    for i, item in enumerate(items_of(images)):
        np.testing.assert_allclose(np.load(out / f"{item.stem}.npy"), maps[i], atol=1e-6)
    with open(out / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_allclose([float(r["score"]) for r in rows], xgen.score(model, images).numpy(), rtol=1e-5)


def test_a_file_cut_short_is_redone_and_writers_do_not_change_the_bytes(model, images, tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    run(model, items_of(images), one, plugin=None, options={}, model_id="m", batch_size=8, writers=1)
    run(model, items_of(images), many, plugin=None, options={}, model_id="m", batch_size=8, writers=3)
    for path in one.rglob("img*"):
        assert path.read_bytes() == (many / path.relative_to(one)).read_bytes()
    (many / "sub" / "img3.png").write_bytes(b"")
    (many / "img4.npy").write_bytes((many / "img4.npy").read_bytes()[:100])
    result = run(model, items_of(images), many, plugin=None, options={}, model_id="m", batch_size=8)
    assert result.explained == 2
    assert (many / "sub" / "img3.png").read_bytes() == (one / "sub" / "img3.png").read_bytes()


def test_overlays_match_the_exact_colour_map_and_pngs_decode_to_the_enlarged_pictures():
    rng = np.random.default_rng(0)
    images = rng.random((3, 1, 6, 5), dtype=np.float32)
    maps = rng.normal(size=(3, 6, 5)).astype(np.float32)
    pictures = overlays(images, maps)
    assert pictures.shape == (3, 6, 2 * 5 + GAP, 3)
    for picture, image, amap in zip(pictures, images, maps, strict=True):
        grey = (image[0] * 255 + 0.5).astype(np.uint8)
        heat = jet((amap - amap.min()) / (amap.max() - amap.min())).astype(np.int16)
        assert (picture[:, :5] == grey[..., None]).all() and (picture[:, 5 : GAP + 5] == 255).all()
        assert np.abs(picture[:, 5 + GAP :] - (heat + grey[..., None]) // 2).max() <= 1
    for scale in (1, 3):
        files = encode_pngs(pictures, scale)
        for data, picture in zip(files, pictures, strict=True):
            decoded = np.asarray(Image.open(io.BytesIO(data)))
            np.testing.assert_array_equal(decoded, picture.repeat(scale, axis=0).repeat(scale, axis=1))
    pil = np.asarray(overlay(images[0], maps[0], min_size=15))
    np.testing.assert_array_equal(pil, pictures[0].repeat(3, axis=0).repeat(3, axis=1))
