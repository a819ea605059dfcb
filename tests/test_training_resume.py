"""A step-mode run given a state file and killed halfway resumes where it stopped and ends with the weights and
history of an uninterrupted run: across a pass boundary of a fixed split, on fresh dSprites batches with global
random draws, across the stacked RBM's phases, and with P-WAE's schedule kept in the architecture."""

from __future__ import annotations

import pytest
import torch

import xgen
from xgen.errors import XgenError
from xgen_plugins.dsprites import DSprites

CASES = {
    "conv-vae, fixed split": ("conv-vae", "digits:normal=1", {}, 16),
    "factor-vae, fresh batches": ("factor-vae", DSprites(train_n=64, test_n=16), {"latent": 4, "ad_weight": 1.0}, 8),
    "stacked-rbm, phases": ("stacked-rbm", "digits:normal=1", {"epochs_per_layer": 4}, 16),
    "pwae, schedule state": ("pwae", "digits:normal=1", {}, 16),
}


class Killed(Exception):
    pass


def _train(case: str, **kwargs):
    architecture, data, options, batch = CASES[case]
    return xgen.train(
        architecture, data, steps=12, batch_size=batch, seed=3, device="cpu", options=options, log_every=4, **kwargs
    )


def _same_weights(a: xgen.Model, b: xgen.Model) -> bool:
    first, second = a.module.state_dict(), b.module.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("killed_at", [8, 12])
@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_run_resumes_to_the_uninterrupted_result(case, killed_at, tmp_path, one_thread):
    straight = _train(case)
    state = tmp_path / "run.state"

    def kill(record, model):
        if record["step"] == killed_at:
            raise Killed

    with pytest.raises(Killed):
        _train(case, state=state, on_log=kill)
    assert state.exists(), "the state of the last log point before the kill is on disk"
    resumed = _train(case, state=state)
    training = resumed.metadata["training"]
    assert training["resumed_at_step"] == killed_at - 4
    assert _same_weights(resumed, straight)
    assert training["history"] == straight.metadata["training"]["history"]
    assert not state.exists(), "a finished run removes its state"


def test_what_on_log_returns_is_kept_in_the_history(tmp_path):
    model = _train("conv-vae, fixed split", on_log=lambda record, m: {"measured": record["step"] * 2})
    assert [r["measured"] for r in model.metadata["training"]["history"]] == [8, 16, 24]


def test_a_state_of_another_run_or_a_corrupt_one_is_refused(tmp_path):
    state = tmp_path / "run.state"

    def kill(record, model):
        if record["step"] == 8:
            raise Killed

    with pytest.raises(Killed):
        _train("conv-vae, fixed split", state=state, on_log=kill)
    architecture, data, _, batch = CASES["conv-vae, fixed split"]
    with pytest.raises(XgenError, match=r"belongs to another run \(it differs in seed\); delete it"):
        xgen.train(architecture, data, steps=12, batch_size=batch, seed=4, log_every=4, state=state)
    state.write_bytes(b"not a state")
    with pytest.raises(XgenError, match="is not a readable xgen training state"):
        _train("conv-vae, fixed split", state=state)
    with pytest.raises(XgenError, match="needs step mode"):
        xgen.train(architecture, data, epochs=1, state=state)


def test_cli_resumable_run_picks_up_the_state_a_crash_left(tmp_path, one_thread):
    from typer.testing import CliRunner

    from xgen.cli.app import app

    out = tmp_path / "m.pt"

    def kill(record, model):
        if record["step"] == 6:
            raise Killed

    with pytest.raises(Killed):
        xgen.train("conv-vae", "digits:normal=1", steps=12, batch_size=16, on_log=kill, state=f"{out}.state")
    args = ["train", "conv-vae", "--data", "digits:normal=1", "--steps", "12", "--batch-size", "16", "--out", str(out)]
    ran = CliRunner().invoke(app, [*args, "--resumable"])
    assert ran.exit_code == 0, ran.output
    assert f"Resuming from {out}.state at step 5 of" in ran.output and "resumed at step 5" in ran.output
    assert out.exists() and not (tmp_path / "m.pt.state").exists()
    refused = CliRunner().invoke(app, ["train", "conv-vae", "--data", "digits:normal=1", "--resumable"])
    assert refused.exit_code != 0 and "--resumable needs --steps" in str(refused.exception)
