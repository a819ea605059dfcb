"""The committed example plugin, installed like a third-party package and found with no configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLE = Path(__file__).parent.parent / "examples" / "xgen-abs-error"


def test_installed_example_plugin_is_found_and_runs(tmp_path, conv_vae_checkpoint):
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    xgen = [sys.executable, "-c", "from xgen.cli import main; main()"]
    listed = subprocess.run([*xgen, "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120)
    entry = {item["name"]: item for item in json.loads(listed.stdout)}["abs-error"]
    assert entry["package"] == "xgen-abs-error" and entry["version"] == "0.1.0" and not entry["builtin"]

    Image.new("L", (28, 28), 0).save(tmp_path / "blank.png")
    result = subprocess.run(
        [*xgen, "explain", "--model", str(conv_vae_checkpoint), "--plugin", "abs-error", "blank.png", "--out", "o"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    amap = np.load(tmp_path / "o" / "blank.npy")
    score = float((tmp_path / "o" / "scores.csv").read_text().splitlines()[1].split(",")[1])
    assert amap.shape == (28, 28) and amap.min() >= 0
    np.testing.assert_allclose(score, amap.mean(), rtol=1e-5)
