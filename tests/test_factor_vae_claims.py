"""The disentanglement claims (iv) and (v) for `xgen reproduce`: their grids, their verdicts on records made to hold,
fail and tie, the records of the results script's log taken over as the same runs, and its `keep` command, which
retrains a logged run to the logged curve for its checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import xgen
from xgen.claims import FAILS, HOLDS, UNTESTABLE, Run
from xgen_plugins.factor_vae.claims import (
    EXPERIMENT,
    SETTINGS,
    AttentionSeparates,
    FactorVAETradeoff,
    as_reproduce_record,
    train_and_measure,
)

LOG = Path(__file__).resolve().parents[1] / "benchmarks" / "runs" / "reproduce" / "runs.jsonl"


def record(variant: str, seed: int, **final: float) -> dict:
    return {"run": {"variant": variant, "seed": seed}, "result": {"final": final}}


def test_grids_share_every_run_and_match_the_issue(registry):
    tradeoff, separates = FactorVAETradeoff(), AttentionSeparates()
    default = tradeoff.runs("default", tradeoff.data)
    assert len(default) == 31 and len({r.key for r in default}) == 31
    assert [r.key for r in separates.runs("default", separates.data)] == [r.key for r in default]
    assert {(r.variant, r.seed) for r in default[:4]} == {
        ("fvae-g40", 0),
        ("ad-g40-l1", 0),
        ("fvae-g10", 0),
        ("ad-g10-l1", 0),
    }
    quick = tradeoff.runs("quick", tradeoff.data)
    assert {(r.variant, r.seed) for r in quick} == {(v, s) for v in ("fvae-g40", "ad-g40-l1") for s in (0, 1)}
    assert all(r.experiment == EXPERIMENT and r.settings == SETTINGS["default"] for r in default)
    assert {c.name for c in (xgen.plugins.lookup("claim", n) for n in xgen.plugins.get_registry().names("claim"))} >= {
        tradeoff.name,
        separates.name,
    }


def test_tradeoff_verdicts_follow_the_measures_direction():
    records = [
        *(record("ad-g40-l1", s, factorvae_score=0.8 + 0.01 * s, recon=100.0 + s, mig=0.2) for s in (0, 1)),
        *(record("fvae-g40", s, factorvae_score=0.5 + 0.01 * s, recon=90.0 + s, mig=0.2 + 0.1 * s) for s in (0, 1)),
    ]
    found = {f.subject: f.verdict for f in FactorVAETradeoff().findings(records)}
    assert found == {
        "gamma 40: FactorVAE score": HOLDS,
        "gamma 40: MIG": UNTESTABLE,
        "gamma 40: reconstruction error": FAILS,
    }


def test_tradeoff_also_judges_the_experiment_3_lambdas_against_factorvae_at_their_gamma():
    records = [
        *(record("fvae-g10", s, mig=0.18 + 0.001 * s) for s in (0, 1)),
        *(record("ad-g10-l0.5", s, mig=0.05 + 0.001 * s) for s in (0, 1)),
        *(record("ad-g10-l1.5", s, mig=0.3 + 0.001 * s) for s in (0, 1)),
        *(record("ad-g40-l0.5", s, mig=0.9) for s in (0, 1)),
    ]
    found = {f.subject: f.verdict for f in FactorVAETradeoff().findings(records)}
    assert found == {"gamma 10, lambda 0.5: MIG": FAILS, "gamma 10, lambda 1.5: MIG": HOLDS}


def test_attention_claim_compares_every_ad_variant_with_factorvae_at_its_gamma():
    records = [
        *(record("fvae-g40", s, overlap_top2=0.9 + 0.01 * s) for s in (0, 1)),
        *(record("ad-g40-l1", s, overlap_top2=0.5 + 0.01 * s) for s in (0, 1)),
        record("ad-g40-l1-all", 0, overlap_top2=0.4),
    ]
    found = {f.subject: f for f in AttentionSeparates().findings(records)}
    assert found["gamma 40, l1: top-2 overlap"].verdict == HOLDS
    one_seed = found["gamma 40, l1-all: top-2 overlap"]
    assert one_seed.verdict == UNTESTABLE and "fewer than two seeds" in one_seed.reason
    assert "gamma 10, l1: top-2 overlap" not in found and "gamma 40, l0.5: top-2 overlap" not in found
    assert not any("region IoU" in subject for subject in found), "runs without region measures give no region finding"


def test_the_attention_claim_also_judges_the_region_iou_where_runs_recorded_it():
    records = [
        *(record("fvae-g40", s, overlap_top2=0.9 + 0.01 * s, **{"region_iou_0.5": 0.5 + 0.01 * s}) for s in (0, 1)),
        *(record("ad-g40-l1", s, overlap_top2=0.7 + 0.01 * s, **{"region_iou_0.5": 0.65 + 0.01 * s}) for s in (0, 1)),
    ]
    found = {f.subject: f.verdict for f in AttentionSeparates().findings(records)}
    assert found == {
        "gamma 40, l1: top-2 overlap": HOLDS,
        "gamma 40, l1: top-2 high-response region IoU": FAILS,
    }, "eq. 1 falls while the regions overlap more: the sharpening the region measure exists to catch"


def test_a_script_record_becomes_the_same_run_under_xgen_reproduce():
    script = {"variant": "ad-g40-l1", "seed": 1, **SETTINGS["default"], "train_s": 12.0, "final": {"mig": 0.1}}
    converted = as_reproduce_record(script, "machine")
    grid = {r.key: r for r in FactorVAETradeoff().runs("default", ("dsprites",))}
    assert converted["key"] in grid and grid[converted["key"]].seed == 1 and converted["scale"] == "default"
    assert converted["result"] is script and converted["machine"] == "machine"
    assert as_reproduce_record({**script, "steps": 10}, "m")["key"] not in grid, "other settings, another run"


@pytest.mark.skipif(not LOG.exists(), reason="the xgen reproduce log is not in this checkout")
def test_the_logged_disentanglement_runs_are_runs_of_the_grid(registry):
    from xgen.reproduction import load_log

    logged = [r for r in load_log(LOG).values() if r["run"]["experiment"] == EXPERIMENT]
    grid = {r.key for r in FactorVAETradeoff().runs("default", ("dsprites",))}
    assert len(logged) >= 8 and all(r["key"] in grid for r in logged)
    findings = FactorVAETradeoff().findings(logged)
    assert any(f.subject == "gamma 40: FactorVAE score" for f in findings)


class Killed(Exception):
    pass


TINY = {
    **SETTINGS["quick"],
    "steps": 4,
    "curve_every": 2,
    "votes": 5,
    "final_votes": 5,
    "variance_images": 100,
    "mig_images": 200,
    "chen_images": 0,
    "probe_n": 20,
    "overlap_n": 10,
}


def test_a_killed_run_resumes_from_its_last_curve_point(tmp_path, one_thread):
    _, straight = train_and_measure("fvae-g40", 0, TINY)
    state = tmp_path / "training-state.pt"

    def kill(point: dict) -> None:
        if point["step"] == 4:
            raise Killed

    with pytest.raises(Killed):
        train_and_measure("fvae-g40", 0, TINY, on_point=kill, state=state)
    _, resumed = train_and_measure("fvae-g40", 0, TINY, state=state)

    def untimed(curve: list[dict]) -> list[dict]:
        return [{k: v for k, v in point.items() if k != "measure_s"} for point in curve]

    assert resumed["resumed_at_step"] == 2 and "resumed_at_step" not in straight
    assert [p["step"] for p in resumed["curve"]] == [2, 4]
    assert untimed(resumed["curve"]) == untimed(straight["curve"]), "the same curve as a run never killed"
    assert not state.exists()


def _keep(log: Path, cell: str) -> subprocess.CompletedProcess:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "disentanglement_results.py"
    command = [sys.executable, str(script), "keep", cell, "--log", str(log), "--steps", "4"]
    return subprocess.run(command, capture_output=True, text=True, cwd=log.parent)


def test_keep_retrains_a_logged_run_to_its_logged_curve_and_refuses_another(tmp_path, one_thread):
    _, record = train_and_measure("fvae-g40", 1, TINY)
    run = Run(EXPERIMENT, "dsprites", "fvae-g40", 1, TINY)
    logged = run.log_record(FactorVAETradeoff.name, "custom", "cpu", record, 1.0, "machine", "now")
    kept = tmp_path / logged["folder"] / "model.pt"
    log = tmp_path / "runs.jsonl"

    tampered = json.loads(json.dumps(logged))
    tampered["result"]["curve"][-1]["recon"] += 1.0
    log.write_text(json.dumps(tampered) + "\n")
    refused = _keep(log, "fvae-g40:1")
    assert (
        refused.returncode != 0 and "not the logged one (recon differs; relative differences: recon " in refused.stderr
    )
    assert not kept.exists(), "a run that is not the logged one leaves no checkpoint"
    assert len(log.read_text().splitlines()) == 1

    log.write_text(json.dumps(logged) + "\n")
    done = _keep(log, "fvae-g40:1")
    assert done.returncode == 0, done.stderr
    assert "largest relative difference from the log 0 " in done.stdout
    assert xgen.load(kept).metadata["training"]["history"][-1]["recon"] == record["final"]["recon"]
    assert len(log.read_text().splitlines()) == 1, "nothing new measured, nothing logged again"
    assert "no finished run" in _keep(log, "fvae-g40:0").stderr


def test_a_run_can_be_remade_the_way_an_earlier_version_computed_it(one_thread):
    model, record = train_and_measure(
        "ad-g40-l1", 0, {**TINY, "steps": 2, "curve_every": 2}, how={"ad_jacobian": "batched"}
    )
    assert model.config["ad_jacobian"] == "batched" and record["options"]["ad_weight"] == 1.0


def test_keep_logs_a_run_again_with_the_measures_added_since(tmp_path, one_thread):
    _, record = train_and_measure("fvae-g40", 1, TINY)
    run = Run(EXPERIMENT, "dsprites", "fvae-g40", 1, TINY)
    older = json.loads(json.dumps(record))
    for point in older["curve"]:
        point.pop("region_iou_0.5")
    older["final"], older["train_s"] = older["curve"][-1], 1234.5
    log = tmp_path / "runs.jsonl"
    log.write_text(json.dumps(run.log_record(FactorVAETradeoff.name, "custom", "cpu", older, 1.0, "m", "then")) + "\n")

    assert _keep(log, "fvae-g40:1").returncode == 0
    again = [json.loads(line) for line in log.read_text().splitlines()][-1]
    assert again["key"] == run.key and again["result"]["remeasured"]["added"] == ["region_iou_0.5"]
    assert again["result"]["final"]["region_iou_0.5"] == record["final"]["region_iou_0.5"]
    assert again["result"]["train_s"] == 1234.5, "the timings stay those first logged"
    assert AttentionSeparates().finals([again], "fvae-g40", "region_iou_0.5"), "the claim reads the later record"
