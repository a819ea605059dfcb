"""The Ray engine on one private local Ray instance shared by the module (two workers, a quarter of a CPU each):
byte-identical files to the local engine, two worker processes, exactly-once files when workers kill themselves
mid-batch or between writing a temporary file and renaming it, a killed driver whose rerun finishes only the rest,
a bad image reported in one sentence, and `evaluate` from merged shards equal to the single-process metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ray = pytest.importorskip("ray")

import xgen  # noqa: E402
from xgen.explain_job import MANIFEST, Item, run  # noqa: E402
from xgen.ray_engine import RaySettings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
QUARTER = {"engine": "ray", "workers": 2, "cpus_per_worker": 0.25}
RAY_EVALUATE = {"workers": 2, "cpus_per_worker": 0.25}


@pytest.fixture(scope="module")
def cluster():
    """One private Ray instance for the module: 2 CPUs, no dashboard, no usage reporting."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def timeout():
    """Fail a test still running after 240 s (SIGALRM in the main thread) instead of hanging the suite."""

    def expire(signum, frame):
        raise TimeoutError("this test ran for over 240 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(240)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def model(conv_vae_checkpoint) -> xgen.Model:
    return xgen.load(conv_vae_checkpoint)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """12 digit PNGs in two sub-folders."""
    root = tmp_path_factory.mktemp("digits")
    images = xgen.dataset("digits:normal=1").test().images[:12]
    for i, image in enumerate(images):
        path = root / ("a" if i % 2 else "b") / f"d{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray((image[0].numpy() * 255 + 0.5).astype(np.uint8)).save(path)
    return root


def file_items(folder: Path) -> list[Item]:
    from xgen.cli.explain import _file_items

    return _file_items([folder], (1, 28, 28), False, False)


def outputs(out: Path) -> dict[str, bytes]:
    """Every output file's bytes by relative path; no temporary file may be left."""
    assert not list(out.rglob("*.part")), "a temporary file was left behind"
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.suffix in {".npy", ".png", ".csv"}}


def recorded(out: Path) -> list[str]:
    lines = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    return [row[0] for line in lines[1:] for row in line["images"]]


def test_ray_files_are_byte_identical_to_local_and_two_workers_did_the_work(cluster, model, folder, tmp_path):
    local = run(model, file_items(folder), tmp_path / "local", plugin=None, options={}, model_id="m", batch_size=2)
    distributed = run(
        model, file_items(folder), tmp_path / "ray", plugin=None, options={}, model_id="m", batch_size=2, **QUARTER
    )
    assert outputs(tmp_path / "local") == outputs(tmp_path / "ray")
    assert len(outputs(tmp_path / "ray")) == 2 * 12 + 1
    assert distributed.scores == local.scores and distributed.sources == local.sources
    assert len(distributed.workers) == 2, f"two worker processes, got {distributed.workers}"
    assert sorted(recorded(tmp_path / "ray")) == sorted(str(item.stem) for item in file_items(folder))


class KillOnce:
    """An image loader that, the first time (a marker file says whether it happened), makes its worker kill
    itself: `when="load"` while loading this image (mid-batch, after earlier batches were written), `"rename"`
    between writing this image's temporary .npy and renaming it, `"after"` just after renaming it, so the rest of
    the batch is unwritten and unrecorded."""

    def __init__(self, path: Path, marker: Path, when: str) -> None:
        self.path, self.marker, self.when = path, marker, when

    def __call__(self) -> torch.Tensor:
        from xgen import images

        if not self.marker.exists():
            if self.when == "load":
                self.marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            self._arm()
        return images.read(self.path, (1, 28, 28), False)

    def _arm(self) -> None:
        real, target, marker, after = os.replace, self.path.stem + ".npy", self.marker, self.when == "after"

        def replace(src, dst):
            if os.path.basename(dst) == target and not marker.exists():
                marker.touch()
                if after:
                    real(src, dst)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)

        os.replace = replace


@pytest.mark.parametrize("when", ["load", "rename", "after"])
def test_a_worker_killed_mid_batch_or_mid_write_loses_and_duplicates_nothing(
    cluster, model, folder, tmp_path, when, timeout
):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    items = file_items(folder)
    victim = 5
    items[victim] = Item(
        items[victim].stem, items[victim].label, KillOnce(Path(items[victim].label), tmp_path / "m", when)
    )
    local = tmp_path / "local"
    run(model, file_items(folder), local, plugin=None, options={}, model_id="m", batch_size=4)
    out = tmp_path / "ray"
    result = run(model, items, out, plugin=None, options={}, model_id="m", batch_size=4, **QUARTER)
    assert (tmp_path / "m").exists(), "the worker did kill itself"
    assert result.explained == 12
    assert sorted(recorded(out)) == sorted(str(item.stem) for item in items), "every image recorded exactly once"
    assert outputs(out) == outputs(local)


DRIVER = """
import sys, time
from pathlib import Path
import ray, xgen
from xgen.explain_job import Item, run
from xgen.cli.explain import _file_items

class Slow:
    def __init__(self, load):
        self.load = load
    def __call__(self):
        time.sleep(0.4)
        return self.load()

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="WARNING")
items = [Item(i.stem, i.label, Slow(i.load)) for i in _file_items([Path(sys.argv[2])], (1, 28, 28), False, False)]
run(xgen.load(sys.argv[3]), items, Path(sys.argv[4]), plugin=None, options={}, model_id="m", batch_size=1,
    engine="ray", workers=1, cpus_per_worker=0.25, checkpoint=sys.argv[3])
"""


def test_a_killed_driver_rerun_finishes_only_the_rest(cluster, model, folder, tmp_path, conv_vae_checkpoint, timeout):
    out = tmp_path / "out"
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    args = [sys.executable, str(script), cluster, str(folder), str(conv_vae_checkpoint), str(out)]
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and driver.poll() is None:
        if (out / MANIFEST).exists() and len(recorded(out)) >= 3:
            break
        time.sleep(0.05)
    assert driver.poll() is None, "the driver finished (or failed) before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    done = set(recorded(out))
    assert 3 <= len(done) < 12
    result = run(model, file_items(folder), out, plugin=None, options={}, model_id="m", batch_size=1, **QUARTER)
    assert (result.skipped, result.explained) == (len(done), 12 - len(done))
    local = tmp_path / "local"
    run(model, file_items(folder), local, plugin=None, options={}, model_id="m", batch_size=1)
    assert outputs(out) == outputs(local)


def test_a_bad_image_on_a_worker_is_one_sentence_with_its_path_and_nothing_half_written(
    cluster, model, folder, tmp_path
):
    bad = tmp_path / "in" / "bad.png"
    bad.parent.mkdir()
    data = (folder / "a" / "d1.png").read_bytes()
    bad.write_bytes(data[:40])
    items = file_items(folder)[:4] + file_items(bad.parent)
    out = tmp_path / "out"
    with pytest.raises(xgen.XgenError, match=r"cannot decode .*bad\.png as an image.*replace or remove it\.$"):
        run(model, items, out, plugin=None, options={}, model_id="m", batch_size=4, **QUARTER)
    assert not (out / "bad.npy").exists()
    outputs(out)


def test_settings_and_cluster_size_are_checked_before_any_work(cluster, model, folder, tmp_path):
    with pytest.raises(xgen.XgenError, match="--workers must be at least 1"):
        RaySettings(workers=0)
    with pytest.raises(xgen.XgenError, match=r"need 8 CPUs but the Ray cluster has 2"):
        run(model, file_items(folder), tmp_path / "o", plugin=None, options={}, model_id="m", engine="ray", workers=8)
    assert not (tmp_path / "o" / MANIFEST).exists()


def test_cli_explain_on_ray_matches_local(cluster, conv_vae_checkpoint, folder, tmp_path):
    from typer.testing import CliRunner

    from xgen.cli import app

    runner = CliRunner()
    base = ["explain", "--model", str(conv_vae_checkpoint), str(folder), "--batch-size", "3"]
    first = runner.invoke(app, [*base, "--out", str(tmp_path / "local")])
    ray_args = ["--engine", "ray", "--address", cluster, "--workers", "2", "--cpus-per-worker", "0.25"]
    second = runner.invoke(app, [*base, "--out", str(tmp_path / "ray"), *ray_args])
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert outputs(tmp_path / "local") == outputs(tmp_path / "ray")
    data = runner.invoke(
        app, ["explain", "--model", str(conv_vae_checkpoint), "--data", "digits:normal=1", "--out", str(tmp_path / "d")]
    )
    assert data.exit_code == 0
    data_ray = runner.invoke(
        app,
        [
            "explain",
            "--model",
            str(conv_vae_checkpoint),
            "--data",
            "digits:normal=1",
            "--out",
            str(tmp_path / "e"),
            *ray_args,
        ],
    )
    assert data_ray.exit_code == 0, data_ray.output
    assert outputs(tmp_path / "d") == outputs(tmp_path / "e")


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory) -> tuple[str, Path]:
    """A tiny MVTec category (16x16 grey noise; 4 good, 6 defective test images with square masks, one of them
    quantised so the maps tie) and an untrained, seeded conv-vae checkpoint for it."""
    root = tmp_path_factory.mktemp("mvtec") / "tile"
    rng = np.random.default_rng(0)
    for split, defect, count in (("train", "good", 4), ("test", "good", 4), ("test", "hole", 6)):
        for i in range(count):
            pixels = rng.integers(0, 60, (16, 16), dtype=np.uint8)
            if defect == "hole":
                mask = np.zeros((16, 16), dtype=np.uint8)
                r, c = rng.integers(0, 12, 2)
                mask[r : r + 4, c : c + 3] = 255
                pixels = np.maximum(pixels, mask)
                (root / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(root / "ground_truth" / defect / f"{i:03d}_mask.png")
            (root / split / defect).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / split / defect / f"{i:03d}.png")
    architecture = xgen.plugins.lookup("architecture", "conv-vae")()
    torch.manual_seed(0)
    checkpoint = root.parent / "untrained.pt"
    xgen.save(architecture.wrap(architecture.build((1, 16, 16)), (1, 16, 16)), checkpoint)
    return f"mvtec:{root},size=16", checkpoint


@pytest.mark.parametrize("normalize", ["per-image", "none"])
def test_evaluate_on_ray_merges_shards_into_the_single_process_metrics(cluster, mvtec, normalize):
    spec, checkpoint = mvtec
    model = xgen.load(checkpoint)
    local = xgen.evaluate(model, spec, normalize=normalize, batch_size=3)
    distributed = xgen.evaluate(
        model, spec, normalize=normalize, batch_size=3, engine="ray", checkpoint=checkpoint, **RAY_EVALUATE
    )
    assert distributed.maps is None
    specs = [r.spec for r in local.metrics]
    assert specs == [r.spec for r in distributed.metrics] and "pixel-auroc" in specs and "pixel-aupro" in specs
    for mine, theirs in zip(local.metrics, distributed.metrics, strict=True):
        if mine.spec == "pixel-aupro":
            assert abs(mine.value - theirs.value) <= 1e-12
        else:
            assert mine.value == theirs.value, mine.spec
        assert (mine.flagged, mine.interval) == (theirs.flagged, theirs.interval), mine.spec
    assert local.summary()["normalization"] == distributed.summary()["normalization"]


def test_cli_evaluate_on_ray_writes_the_same_json_and_refuses_a_report(cluster, mvtec, tmp_path):
    from typer.testing import CliRunner

    from xgen.cli import app

    spec, checkpoint = mvtec
    runner = CliRunner()
    base = ["evaluate", "--model", str(checkpoint), "--data", spec, "--batch-size", "4"]
    ray_args = ["--engine", "ray", "--address", cluster, "--cpus-per-worker", "0.25"]
    refused = runner.invoke(app, [*base, *ray_args, "--report", str(tmp_path / "r.html")])
    assert isinstance(refused.exception, xgen.XgenError) and "--report draws the maps" in str(refused.exception)
    assert not (tmp_path / "r.html").exists()
    assert runner.invoke(app, [*base, "--json", str(tmp_path / "local.json")]).exit_code == 0
    result = runner.invoke(app, [*base, *ray_args, "--json", str(tmp_path / "ray.json")])
    assert result.exit_code == 0, result.output
    metrics = [json.loads((tmp_path / f"{name}.json").read_text())["metrics"] for name in ("local", "ray")]
    assert metrics[0]["pixel-auroc"] == metrics[1]["pixel-auroc"]
    assert metrics[0]["pixel-aupro"]["value"] == pytest.approx(metrics[1]["pixel-aupro"]["value"], abs=1e-12)
