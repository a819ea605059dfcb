"""The command line end to end, through a real `xgen` process: the way a user runs it."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import xgen

XGEN = [sys.executable, "-c", "from xgen.cli import main; main()"]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([*XGEN, *args], cwd=cwd, capture_output=True, text=True, env=environment, timeout=300)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, conv_vae_checkpoint) -> Path:
    """A folder with the trained checkpoint and a few digit images, in a tree with a sub-folder."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copy(conv_vae_checkpoint, root / "ck.pt")
    test = xgen.dataset("digits:normal=1").test()
    (root / "imgs" / "sub").mkdir(parents=True)
    for i in range(5):
        Image.fromarray((test.images[i, 0].numpy() * 255).astype(np.uint8)).save(root / "imgs" / f"d{i}.png")
    Image.fromarray((test.images[5, 0].numpy() * 255).astype(np.uint8)).save(root / "imgs" / "sub" / "deep.png")
    return root


def test_train_writes_a_loadable_checkpoint(tmp_path):
    result = run("train", "conv-vae", "--data", "digits:normal=3", "--epochs", "1", "--out", "c.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Saved conv-vae to c.pt" in result.stdout
    model = xgen.load(tmp_path / "c.pt")
    assert model.architecture == "conv-vae" and model.default_explainer == "vae-gradcam"
    assert model.metadata["training"]["data"] == "digits:normal=3"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_explain_folder_writes_maps_overlays_and_scores(workdir):
    out = workdir / "maps"
    result = run("explain", "--model", "ck.pt", "imgs", "--out", "maps", cwd=workdir)
    assert result.returncode == 0, result.stderr
    stems = ["d0", "d1", "d2", "d3", "d4", "sub/deep"]
    for stem in stems:
        amap = np.load(out / f"{stem}.npy")
        assert amap.shape == (28, 28) and amap.dtype == np.float32
        assert amap.min() >= 0.0 and amap.max() <= 1.0
        with Image.open(out / f"{stem}.png") as png:
            assert png.width > 2 * png.height - 40  # input and overlay side by side
    with open(out / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["file"]).as_posix() for r in rows] == [f"imgs/{s}.png" for s in stems]
    model = xgen.load(workdir / "ck.pt")
    library = xgen.explain(model, _load_png(workdir / "imgs" / "d0.png"))
    np.testing.assert_allclose(np.load(out / "d0.npy"), library.anomaly_map[0].numpy(), atol=1e-6)
    # vae-gradcam gives no image score, so every file gets the model's default scorer's, and says so.
    assert {r["source"] for r in rows} == {"scorer recon-error"}
    x = torch.cat([_load_png(workdir / r["file"]) for r in rows])
    np.testing.assert_allclose([float(r["score"]) for r in rows], xgen.score(model, x).numpy(), rtol=1e-5)
    assert "scores in maps/scores.csv (from scorer recon-error)" in result.stdout


def test_scorer_option_and_explainer_scores_name_their_source(workdir):
    model = xgen.load(workdir / "ck.pt")
    scorer = "recon-error:error=absolute"
    chosen = run("explain", "--model", "ck.pt", "imgs", "--out", "s1", "--scorer", scorer, cwd=workdir)
    assert chosen.returncode == 0, chosen.stderr
    with open(workdir / "s1" / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["source"] for r in rows} == {"scorer recon-error:error=absolute"}
    x = torch.cat([_load_png(workdir / r["file"]) for r in rows])
    expected = xgen.score(model, x, "recon-error", error="absolute").numpy()
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected, rtol=1e-5)
    own = run("explain", "--model", "ck.pt", "imgs", "--out", "s2", "--plugin", "recon-error", cwd=workdir)
    assert own.returncode == 0, own.stderr
    with open(workdir / "s2" / "scores.csv") as fh:
        assert {r["source"] for r in csv.DictReader(fh)} == {"explainer recon-error"}
    assert "(from explainer recon-error)" in own.stdout


def test_outputs_choose_what_is_written_and_a_rerun_adds_the_rest(workdir):
    maps_only = run("explain", "--model", "ck.pt", "imgs", "--out", "o", "--outputs", "npy", cwd=workdir)
    assert maps_only.returncode == 0, maps_only.stderr
    out = workdir / "o"
    assert len(list(out.rglob("*.npy"))) == 6 and not list(out.rglob("*.png")) and not (out / "scores.csv").exists()
    assert "maps in o/." in maps_only.stdout and "scores" not in maps_only.stdout
    same = run("explain", "--model", "ck.pt", "imgs", "--out", "o", "--outputs", "npy", cwd=workdir)
    assert "Explained 0 images, 6 were already done" in same.stdout
    everything = run("explain", "--model", "ck.pt", "imgs", "--out", "o", cwd=workdir)
    assert "Explained 6 images" in everything.stdout, "pngs and scores were missing"
    assert len(list(out.rglob("*.png"))) == 6
    with open(out / "scores.csv") as fh:
        assert all(r["score"] for r in csv.DictReader(fh))


def _load_png(path: Path):
    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None, None]


def test_rerun_finishes_only_what_is_missing(workdir):
    out = workdir / "resume"
    assert run("explain", "--model", "ck.pt", "imgs", "--out", "resume", cwd=workdir).returncode == 0
    (out / "d3.npy").unlink()
    before = (out / "d0.npy").stat().st_mtime_ns
    result = run("explain", "--model", "ck.pt", "imgs", "--out", "resume", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Explained 1 images, 5 were already done" in result.stdout
    assert (out / "d3.npy").is_file() and (out / "d0.npy").stat().st_mtime_ns == before
    changed = run("explain", "--model", "ck.pt", "imgs", "--out", "resume", "--set", "sign=relu", cwd=workdir)
    assert "Explained 6 images" in changed.stdout, "a different option must not reuse old maps"
    assert not list(out.rglob("*.part"))


def test_explain_data_spec(workdir):
    result = run("explain", "--model", "ck.pt", "--data", "digits:normal=1", "--out", "data_maps", cwd=workdir)
    assert result.returncode == 0, result.stderr
    names = xgen.dataset("digits:normal=1").test().names
    assert sorted(p.stem for p in (workdir / "data_maps").glob("*.npy")) == sorted(names)


def test_dotted_file_names_keep_their_own_maps(workdir, tmp_path):
    for name, value in (("scan.v1.png", 0), ("scan.v2.png", 255)):
        Image.new("L", (28, 28), value).save(tmp_path / name)
    result = run("explain", "--model", str(workdir / "ck.pt"), "scan.v1.png", "scan.v2.png", "--out", "o", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").glob("scan*")) == [
        "scan.v1.npy",
        "scan.v1.png",
        "scan.v2.npy",
        "scan.v2.png",
    ]


def test_resize_only_when_asked(workdir, tmp_path):
    Image.new("L", (32, 32), 40).save(tmp_path / "big.png")
    error = one_error_line(run("explain", "--model", str(workdir / "ck.pt"), "big.png", "--out", "o", cwd=tmp_path))
    assert "32x32" in error and "28x28" in error and "--resize" in error
    assert not (tmp_path / "o").exists()
    result = run("explain", "--model", str(workdir / "ck.pt"), "big.png", "--resize", "--out", "o", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "o" / "big.npy").shape == (28, 28)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "missing.pt", "imgs"], "does not exist"),
        (["--model", "imgs/d0.png", "imgs"], "not a PyTorch checkpoint"),
        (["--model", "ck.pt", "corrupt.png"], "cannot decode corrupt.png"),
        (["--model", "ck.pt", "rgb.png"], "the model expects 1"),
        (["--model", "ck.pt", "nan.npy"], "NaN or Inf"),
        (["--model", "ck.pt", "--plugin", "vae-gradkam", "imgs"], "Did you mean 'vae-gradcam'?"),
        (["--model", "ck.pt", "--set", "sgn=abs", "imgs"], "Did you mean 'sign'?"),
        (["--model", "ck.pt", "--set", "sign=cube", "imgs"], "expected one of"),
        (["--model", "ck.pt", "--data", "digitz"], "Did you mean 'digits'?"),
        (["--model", "ck.pt", "--data", "digits:nrmal=1"], "Did you mean 'normal'?"),
        (["--model", "ck.pt", "--out", "rgb.png", "imgs"], "cannot write to rgb.png"),
        (["--model", "ck.pt", "nowhere"], "does not exist"),
        (["--model", "ck.pt", "--scorer", "recon-eror", "imgs"], "Did you mean 'recon-error'?"),
        (["--model", "ck.pt", "--scorer", "recon-error:eror=absolute", "imgs"], "Did you mean 'error'?"),
        (["--model", "ck.pt", "--outputs", "npy,pdf", "imgs"], "--outputs takes a comma-separated list"),
    ],
)
def test_bad_input_exits_2_with_one_sentence_and_writes_nothing(workdir, tmp_path, args, expected):
    for name in ("ck.pt", "imgs"):
        (tmp_path / name).symlink_to(workdir / name)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    Image.new("RGB", (28, 28)).save(tmp_path / "rgb.png")
    array = np.full((28, 28), 0.5, dtype=np.float32)
    array[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", array)
    before = sorted(p.name for p in tmp_path.iterdir())
    error = one_error_line(
        run("explain", *args, "--out", "out", cwd=tmp_path)
        if "--out" not in args
        else run("explain", *args, cwd=tmp_path)
    )
    assert expected in error
    after = sorted(p.name for p in tmp_path.iterdir())
    produced = set(after) - set(before)
    assert not produced or all(not any((tmp_path / p).rglob("*")) for p in produced), "half-written output"


def test_unknown_architecture_and_dataset_options(tmp_path):
    assert "Did you mean 'conv-vae'?" in one_error_line(run("train", "conv-vaa", "--data", "digits", cwd=tmp_path))
    assert "0-9" in one_error_line(run("train", "conv-vae", "--data", "digits:normal=12", cwd=tmp_path))
    assert "Did you mean 'latent'?" in one_error_line(
        run("train", "conv-vae", "--data", "digits", "--set", "latnet=8", cwd=tmp_path)
    )
    assert not list(tmp_path.iterdir())


def test_plugins_lists_builtins_and_json(tmp_path):
    table = run("plugins", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    for name in ("vae-gradcam", "conv-vae", "digits"):
        assert name in table.stdout
    listed = json.loads(run("plugins", "--json", cwd=tmp_path).stdout)
    by_name = {item["name"]: item for item in listed}
    assert by_name["vae-gradcam"]["kind"] == "explainer"
    assert by_name["vae-gradcam"]["package"] == "xgen" and by_name["vae-gradcam"]["builtin"]
    assert by_name["digits"]["kind"] == "dataset"


def test_blocked_builtin_is_gone_and_named_in_the_error(tmp_path):
    result = run("plugins", "--json", cwd=tmp_path, env={"XGEN_BLOCK_PLUGINS": "vae_gradcam"})
    assert "vae-gradcam" not in {item["name"] for item in json.loads(result.stdout)}


def test_demo_writes_gallery(tmp_path):
    result = run("demo", "--out", "d", "--epochs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "d"
    page = (out / "index.html").read_text()
    assert page.count("<figure>") == 16 and "xgen demo --out" in page
    assert len(list((out / "maps").glob("*.png"))) == 16
    assert {"model.pt", "figure.png", "scores.csv", "index.html", "evaluation.html"} <= {p.name for p in out.iterdir()}
    assert "image AUROC" in page and "scorer recon-error" in page
    digits = [int(p.stem.split("digit")[1]) for p in sorted((out / "maps").glob("*.npy"))]
    assert sorted(set(digits)) == [2, 4, 7, 9]
