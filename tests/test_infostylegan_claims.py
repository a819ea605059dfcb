"""Paul et al.'s claims (paper 004) for `xgen reproduce`: registered and listed, their grids shared and equal to the
results script's at the default scale, one claim end to end at the quick scale, the verdicts of their findings on
records made to hold, fail and tie, and the script's logged runs taken over as the same runs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

import xgen
from xgen.claims import FAILS, HOLDS, UNTESTABLE, VERDICTS
from xgen.cli.app import app
from xgen_plugins.infostylegan.claims import (
    DenseEmbeddingBest,
    InformationCostsLittleQuality,
    InfoStyleGANDisentangles,
    as_reproduce_record,
)
from xgen_plugins.infostylegan.measures import EXPERIMENT, SETTINGS

LOG = Path(__file__).resolve().parents[1] / "benchmarks" / "runs" / "infostylegan.jsonl"
CLAIMS = (InfoStyleGANDisentangles, InformationCostsLittleQuality, DenseEmbeddingBest)
NAMES = [cls.name for cls in CLAIMS]


def keys(scale: str) -> set[str]:
    """The run keys of the three claims' grids at `scale`."""
    return {r.key for cls in CLAIMS for r in cls().runs(scale, cls.data)}


def record(data: str, variant: str, seed: int, **result: object) -> dict:
    return {"run": {"data": data, "variant": variant, "seed": seed}, "result": result, "folder": f"runs/{variant}"}


def dsprites(variant: str, seeds: dict[int, tuple[float, float]]) -> list[dict]:
    """Records of a dSprites variant, seed -> (MIG, FID); the other measures follow from them."""
    return [
        record(
            "dsprites",
            variant,
            s,
            disentanglement={"mig": mig, "max_mi": 0.1},
            quality={"fid": fid, "precision_k3": 1 / fid, "recall_k3": 0.5, "precision_k10": 0.9, "recall_k10": 0.8},
        )
        for s, (mig, fid) in seeds.items()
    ]


def test_claims_are_registered_and_listed(registry):
    listed = CliRunner().invoke(app, ["reproduce", "--list"])
    assert listed.exit_code == 0, listed.output
    for name in NAMES:
        assert name in listed.output
        claim = xgen.plugins.lookup("claim", name)
        assert claim.paper == "004" and claim.source and claim.paper_value and not claim.accepts_data


def test_default_grids_share_runs_and_keep_the_logged_settings(registry):
    grids = {cls.name: cls().runs("default", cls.data) for cls in CLAIMS}
    union = {r.key: r for runs in grids.values() for r in runs}
    assert len(union) == 1 + 5 * 2 + 3 * 3, "controls, five variants x two seeds, three detection sets x three seeds"
    assert all(r.experiment == EXPERIMENT and r.settings == SETTINGS["default"] for r in union.values())
    a, b = ({r.key for r in grids[n]} for n in NAMES[:2])
    assert {union[k].variant for k in a & b} == {"controls", "infostylegan"}, "InfoStyleGAN is trained once for both"
    assert {(r.variant, r.seed) for r in grids[NAMES[0]]} >= {("infogan-tuned", 0), ("infogan-tuned", 1)}
    assert {(r.data, r.seed) for r in grids[NAMES[2]]} == {
        (d, s) for d in ("dsprites-oneclass", "mnist", "faces") for s in (0, 1, 2)
    }
    quick = keys("quick")
    assert len(quick) == 1 + 5 * 2 + 3 * 2


def test_quick_runs_complete_and_resume(registry, tmp_path):
    name = InformationCostsLittleQuality.name
    first = xgen.reproduce([name], scale="quick", threads=1, out=tmp_path)
    assert (first.executed, first.reused, first.refused) == (5, 0, [])
    assert len(first.findings) == 5 and all(f.verdict in VERDICTS for f in first.findings)
    assert all("real vs real" in f.reason for f in first.findings)
    logged = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {r["run"]["variant"] for r in logged} == {"controls", "stylegan", "infostylegan"}
    assert (
        tmp_path / next(r["folder"] for r in logged if r["run"]["variant"] == "stylegan") / "traversal.png"
    ).exists()
    again = xgen.reproduce([name], scale="quick", threads=1, out=tmp_path)
    assert (again.executed, again.reused) == (0, 5)
    assert [f.verdict for f in again.findings] == [f.verdict for f in first.findings]


def test_disentanglement_verdicts():
    records = [
        *dsprites("infostylegan", {0: (0.030, 2.0), 1: (0.031, 2.0)}),
        *dsprites("infogan", {0: (0.005, 2.0), 1: (0.006, 2.0)}),
        *dsprites("infostylegan-discrete", {0: (0.0001, 2.0), 1: (0.0002, 2.0)}),
        *dsprites("infogan-tuned", {0: (0.050, 2.0)}),
        record("dsprites", "controls", 0, controls={"untrained_infogan": {"mig": 0.004, "max_mi": 0.03}}),
    ]
    found = {f.subject: f for f in InfoStyleGANDisentangles().findings(records)}
    assert found["MIG: InfoStyleGAN vs InfoGAN"].verdict == HOLDS
    assert "untrained InfoGAN: mig 0.004" in found["MIG: InfoStyleGAN vs InfoGAN"].reason
    assert found["max MI: InfoStyleGAN vs InfoGAN"].verdict == UNTESTABLE, "equal values are within the spread"
    assert found["MIG: InfoStyleGAN-Discrete vs InfoGAN"].verdict == FAILS
    tuned = found["MIG: InfoStyleGAN vs InfoGAN, unif_weight 0.1, fixed Q variance"]
    assert tuned.verdict == UNTESTABLE and "fewer than two seeds" in tuned.reason
    assert tuned.paper_value.startswith("not in the paper")
    mig = found["MIG: InfoStyleGAN vs InfoGAN"]
    assert mig.difference == pytest.approx(statistics.mean([0.030, 0.031]) - statistics.mean([0.005, 0.006]))


def test_quality_verdicts_follow_each_measures_direction():
    records = [
        *dsprites("infostylegan", {0: (5.0, 5.0), 1: (5.1, 5.1)}),
        *dsprites("stylegan", {0: (0, 2.0), 1: (0, 2.1)}),
    ]
    found = {f.subject.split(":")[0]: f.verdict for f in InformationCostsLittleQuality().findings(records)}
    assert found == {
        "FID": FAILS,
        "precision k=3": FAILS,
        "recall k=3": UNTESTABLE,
        "precision k=10": UNTESTABLE,
        "recall k=10": UNTESTABLE,
    }


def test_detection_verdicts_per_data_and_detector_with_the_extra_conv_rows():
    def rows(q: float, conv: float, dense: float, convk: float | None) -> dict:
        taps = {"q": q, "conv": conv, "dense": dense} | ({"convk": convk} if convk is not None else {})
        return {"rows": {f"trained-{t}-{d}": {"auroc": v} for t, v in taps.items() for d in ("ocsvm", "lof")}}

    records = [
        record("mnist", "infostylegan", 0, detection=rows(0.60, 0.85, 0.80, None)),
        record("mnist", "infostylegan", 1, detection=rows(0.62, 0.86, 0.81, 0.70)),
        record("mnist", "infostylegan", 2, detection=rows(0.61, 0.87, 0.82, 0.71)),
    ]
    found = {f.subject: f for f in DenseEmbeddingBest().findings(records)}
    assert {s.split(",")[0] for s in found} == {"mnist"}, "data without records are left out"
    assert found["mnist, OCSVM: dense vs Q"].verdict == HOLDS
    assert found["mnist, LOF: dense vs conv"].verdict == FAILS
    extra = found["mnist, OCSVM: dense vs conv, fewer components"]
    assert extra.verdict == HOLDS and extra.values["conv, fewer components"] == [0.70, 0.71]
    assert found["mnist, OCSVM: dense vs Q"].paper_value.startswith("CelebA 0.607 vs 0.567")
    one = DenseEmbeddingBest().findings(records[:1])
    assert all(f.verdict == UNTESTABLE and "fewer than two seeds" in f.reason for f in one)


def test_a_script_record_becomes_the_claims_own_run(registry):
    grid = keys("default")
    made = {"data": "faces", "variant": "infostylegan", "seed": 0, **SETTINGS["default"], "train_s": 1.0}
    converted = as_reproduce_record(made, "machine")
    assert converted["key"] in grid and converted["claim"] == DenseEmbeddingBest.name
    assert converted["result"] is made and converted["scale"] == "default" and converted["machine"] == "machine"


@pytest.mark.skipif(not LOG.exists(), reason="the results script's log is not in this checkout")
def test_the_scripts_logged_runs_are_runs_of_the_default_grid(registry):
    script = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    grid = keys("default")
    converted = [as_reproduce_record(r, "machine") for r in script]
    assert converted and all(c["key"] in grid for c in converted)
    found = {f.subject: f for f in InfoStyleGANDisentangles().findings(converted)}
    assert found["MIG: InfoStyleGAN vs InfoGAN"].measured.startswith("InfoStyleGAN 0.0257")
