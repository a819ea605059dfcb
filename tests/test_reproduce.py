"""`xgen reproduce`: toy claims registered by a test plugin get each verdict by the stated rule, runs are shared and
resumed without repeating work, refusals and galleries reach the reports, and the CLI lists and runs claims."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import types

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import xgen
from xgen.claims import FAILS, HOLDS, UNTESTABLE, Claim, Run, compare, gallery
from xgen.cli.app import app
from xgen.errors import XgenError
from xgen.machine import describe
from xgen.plugins import plugin

EXECUTED: list[str] = []


class ToyClaim(Claim):
    """Variant "a" measures `offset` above variant "b", plus seeded Gaussian noise of scale `noise`, the same draw
    for both variants of a seed."""

    paper, citation, source = "999", "Toy et al., 2099", "Table 1"
    paper_value = "a beats b"
    data = ("toy-data",)
    offset = 0.0
    noise = 0.0

    def runs(self, scale, data):
        seeds = [0, 1, 2] if scale == "quick" else [0, 1, 2, 3]
        settings = {"offset": self.offset, "noise": self.noise}
        return [Run("toy", spec, v, s, settings) for spec in data for v in ("a", "b") for s in seeds]

    def run(self, run, context):
        EXECUTED.append(run.key)
        if run.data.startswith("digits"):
            raise XgenError("this data is refused")
        rng = random.Random(run.seed)  # the same noise for both variants: a - b is the offset exactly
        shift = run.settings["offset"] if run.variant == "a" else 0.0
        return {"value": shift + rng.gauss(0.0, run.settings["noise"]) if run.settings["noise"] else shift}

    def findings(self, records):
        def values(variant):
            return [r["result"]["value"] for r in records if r["run"]["variant"] == variant]

        return [compare(self.name, "toy-data", ("a", values("a")), ("b", values("b")))]


class Holds(ToyClaim):
    name, description = "toy-holds", "a beats b by far."
    offset, noise = 1.0, 0.05


class Fails(ToyClaim):
    name, description = "toy-fails", "a beats b, but b is far ahead."
    offset, noise = -1.0, 0.05


class Noise(ToyClaim):
    name, description = "toy-noise", "a beats b by less than the noise."
    offset, noise = 0.01, 1.0


class HoldsAgain(Holds):
    name, description = "toy-holds-again", "The same runs as toy-holds, judged again."


class Pictures(Claim):
    name, description = "toy-gallery", "A picture for a person to judge."
    paper, citation, source = "999", "Toy et al., 2099", "Figure 2"
    data = ("toy-data",)
    gallery = True

    def runs(self, scale, data):
        return [Run("toy-gallery", data[0], "picture", 0)]

    def run(self, run, context):
        Image.new("RGB", (4, 4), (200, 30, 30)).save(context.folder / "red.png")
        return {"figures": ["red.png"]}

    def findings(self, records):
        figures = [f"{r['folder']}/{f}" for r in records for f in r["result"]["figures"]]
        return [gallery(self.name, "red squares", figures, "the square is red")]


TOY = types.SimpleNamespace(
    xgen_register_claims=xgen.hookimpl(
        lambda register: [register(c) for c in (Holds, Fails, Noise, HoldsAgain, Pictures)]
    )
)


@pytest.fixture
def toy(registry):
    EXECUTED.clear()
    with plugin(TOY, "toy-claims"):
        yield


def verdicts(result) -> dict[str, str]:
    return {f.claim: f.verdict for f in result.findings}


def test_each_verdict_follows_the_rule(toy, tmp_path):
    result = xgen.reproduce(["toy-holds", "toy-fails", "toy-noise"], scale="quick", out=tmp_path)
    assert verdicts(result) == {"toy-holds": HOLDS, "toy-fails": FAILS, "toy-noise": UNTESTABLE}
    noise = next(f for f in result.findings if f.claim == "toy-noise")
    a, b = noise.values["a"], noise.values["b"]
    assert noise.spread == pytest.approx(max(statistics.stdev(a), statistics.stdev(b)))
    assert abs(noise.difference) <= noise.spread
    assert len(EXECUTED) == 18


def test_runs_of_one_machine_are_named_once_whatever_script_logged_them(toy, tmp_path):
    xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    line = "Some CPU, 2 logical CPUs, torch 2.0 with {} threads, Python 3.11.7, Linux 6"
    records = [json.loads(r) for r in (tmp_path / "runs.jsonl").read_text().splitlines()]
    for i, record in enumerate(records):
        record["machine"] = line.format(1) if i % 2 else line.format(1).replace("threads", "thread")
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path, report_only=True)
    assert result.run_machines == {line.format(1).replace("threads", "thread"): len(records)}


def test_report_only_runs_nothing_and_says_how_much_of_each_grid_is_in(toy, tmp_path):
    xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    log = (tmp_path / "runs.jsonl").read_text().splitlines()
    elsewhere = json.loads(log[3]) | {"machine": "another machine, 64 logical CPUs"}
    (tmp_path / "runs.jsonl").write_text("\n".join([*log[:3], json.dumps(elsewhere)]) + "\n")  # a0 a1 a2 b0
    EXECUTED.clear()
    result = xgen.reproduce(["toy-holds", "toy-fails"], scale="quick", out=tmp_path, report_only=True)
    assert EXECUTED == [] and result.executed == 0 and result.reused == 4
    assert result.finished == {"toy-holds": (4, 6), "toy-fails": (0, 6)}
    holds = next(f for f in result.findings if f.claim == "toy-holds")
    assert holds.verdict == UNTESTABLE and "fewer than two seeds" in holds.reason, "b has one seed in the log"
    markdown = (tmp_path / "claims.md").read_text()
    assert "`toy-holds` (4 of 6), `toy-fails` (0 of 6)" in markdown
    seconds = sum(json.loads(line)["seconds"] for line in (tmp_path / "runs.jsonl").read_text().splitlines())
    assert f"Runs of its grid in the log: 4 of 6 ({seconds:.0f} s of run time)." in markdown
    here = json.loads(log[0])["machine"]
    assert f"The runs were measured on: {here} (3 runs); another machine, 64 logical CPUs (1 run)." in markdown
    assert f"This invocation ran on: {describe()}." in markdown, "the reporting machine is named apart from the runs'"
    assert json.loads((tmp_path / "claims.json").read_text())["finished"]["toy-holds"] == {
        "in_log": 4,
        "grid": 6,
        "run_seconds": pytest.approx(seconds),
    }
    ran = CliRunner().invoke(
        app, ["reproduce", "toy-holds", "--scale", "quick", "--report-only", "--out", str(tmp_path)]
    )
    assert ran.exit_code == 0, ran.output
    assert EXECUTED == [] and "1 claim rests on part of its grid" in ran.output


def test_reports_can_go_to_another_folder_with_the_figures_linked_from_there(toy, tmp_path):
    log = tmp_path / "runs"
    xgen.reproduce(["toy-gallery"], scale="quick", out=log)
    result = xgen.reproduce(["toy-gallery"], scale="quick", out=log, report_only=True, report=tmp_path / "docs")
    assert result.reports["markdown"] == tmp_path / "docs" / "claims.md"
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (tmp_path / "docs" / "claims.md").read_text())
    assert links and all(link.startswith("../runs/") and (tmp_path / "docs" / link).is_file() for link in links)
    assert "data:image/png;base64," in (tmp_path / "docs" / "claims.html").read_text()


def test_compare_rule_edges():
    assert compare("c", "d", ("a", [2.0, 2.1]), ("b", [1.0, 1.1])).verdict == HOLDS
    assert compare("c", "d", ("a", [2.0, 2.1]), ("b", [1.0, 1.1]), higher_is_better=False).verdict == FAILS
    one_seed = compare("c", "d", ("a", [5.0]), ("b", [1.0, 1.1]))
    assert one_seed.verdict == UNTESTABLE and "fewer than two seeds" in one_seed.reason
    assert compare("c", "d", ("a", [float("nan"), 2.0]), ("b", [1.0, 1.1])).verdict == UNTESTABLE
    same_to_print = compare("c", "d", ("a", [0.0, 0.0]), ("b", [3e-6, 3e-6]))
    assert same_to_print.verdict == UNTESTABLE, "equal to the printed precision is no difference"
    assert compare("c", "d", ("a", [0.002, 0.002]), ("b", [0.0, 0.0])).verdict == HOLDS


def test_rerun_recomputes_nothing_and_shared_runs_run_once(toy, tmp_path):
    xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    assert len(EXECUTED) == 6
    again = xgen.reproduce(["toy-holds", "toy-holds-again"], scale="quick", out=tmp_path)
    assert len(EXECUTED) == 6
    assert (again.executed, again.reused) == (0, 6)
    assert verdicts(again) == {"toy-holds": HOLDS, "toy-holds-again": HOLDS}
    bigger = xgen.reproduce(["toy-holds"], out=tmp_path)
    assert (bigger.executed, bigger.reused, len(EXECUTED)) == (2, 6, 8), "a run is its settings, not its scale"


def test_interrupted_grid_resumes_where_it_stopped(toy, tmp_path, monkeypatch):
    original = Holds.run

    def dies_on_fourth(self, run, context):
        if len(EXECUTED) == 3:
            raise KeyboardInterrupt
        return original(self, run, context)

    monkeypatch.setattr(Holds, "run", dies_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 3
    monkeypatch.setattr(Holds, "run", original)
    EXECUTED.clear()
    result = xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    assert (result.executed, result.reused, len(EXECUTED)) == (3, 3, 3)
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len({r["key"] for r in records}) == 6
    assert all("logical CPUs" in r["machine"] and "threads" in r["machine"] for r in records)


def _toy_runs(scale: str = "quick") -> list[Run]:
    return Holds().runs(scale, Holds.data)


def test_runs_another_live_process_holds_are_left_to_it(toy, tmp_path):
    held = _toy_runs()[2]
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / f"{held.folder_name}.lock").write_text(f"{socket.gethostname()} {os.getpid()}")
    result = xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    assert held.key not in EXECUTED and len(EXECUTED) == 5
    assert result.elsewhere == [(held.label(), f"{socket.gethostname()} {os.getpid()}")]
    assert "held by" in (tmp_path / "claims.md").read_text()
    assert (locks / f"{held.folder_name}.lock").exists(), "another process's lock is not touched"
    assert sorted(p.name for p in locks.iterdir()) == [f"{held.folder_name}.lock"], "this process's locks are gone"


def test_a_dead_process_lock_is_taken_over(toy, tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    held = _toy_runs()[0]
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / f"{held.folder_name}.lock").write_text(f"{socket.gethostname()} {gone.stdout.strip()}")
    result = xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    assert held.key in EXECUTED and not result.elsewhere and result.executed == 6


def test_a_run_another_process_finished_meanwhile_is_not_repeated(toy, tmp_path, monkeypatch):
    first, second = _toy_runs()[:2]
    original = Holds.run

    def also_logs_the_second(self, run, context):
        if run.key == first.key:
            record = {"key": second.key, "run": second.as_dict(), "result": {"value": 1.0}, "folder": "elsewhere"}
            with open(tmp_path / "runs.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
        return original(self, run, context)

    monkeypatch.setattr(Holds, "run", also_logs_the_second)
    result = xgen.reproduce(["toy-holds"], scale="quick", out=tmp_path)
    assert second.key not in EXECUTED and result.executed == 5


def test_refused_runs_and_galleries_reach_every_report(toy, tmp_path):
    result = xgen.reproduce(["toy-holds", "toy-gallery"], data="digits:normal=9", scale="quick", out=tmp_path)
    assert len(result.refused) == 6 and "this data is refused" in result.refused[0][1]
    holds = next(f for f in result.findings if f.claim == "toy-holds")
    assert holds.verdict == UNTESTABLE and "this data is refused" in holds.reason
    picture = next(f for f in result.findings if f.claim == "toy-gallery")
    assert picture.verdict == UNTESTABLE and picture.figures
    page = (tmp_path / "claims.html").read_text()
    assert "data:image/png;base64," in page and "this data is refused" in page
    report = json.loads((tmp_path / "claims.json").read_text())
    assert (
        report["command"]
        == f"xgen reproduce toy-holds toy-gallery --scale quick --data digits:normal=9 --out {tmp_path}"
    )
    assert {f["claim"] for f in report["findings"]} == {"toy-holds", "toy-gallery"}
    markdown = (tmp_path / "claims.md").read_text()
    assert "| `toy-gallery` | 999, Figure 2 |" in markdown and report["command"] in markdown


def test_paper_selects_its_claims_and_bad_requests_say_what_to_do(toy, tmp_path):
    result = xgen.reproduce(paper="999", scale="quick", out=tmp_path)
    assert {c.name for c in result.claims} == {"toy-holds", "toy-fails", "toy-noise", "toy-holds-again", "toy-gallery"}
    with pytest.raises(XgenError, match="Did you mean 'toy-holds'"):
        xgen.reproduce(["toy-hold"], out=tmp_path)
    with pytest.raises(XgenError, match="no claim is registered for paper '123'"):
        xgen.reproduce(paper="123", out=tmp_path)
    with pytest.raises(XgenError, match="--scale must be one of"):
        xgen.reproduce(["toy-holds"], scale="huge", out=tmp_path)
    with pytest.raises(XgenError, match="--list"):
        xgen.reproduce(out=tmp_path)


def test_cli_lists_and_runs_claims(toy, tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["reproduce", "--list"])
    assert listed.exit_code == 0
    assert "toy-holds" in listed.output and "paper 999, Table 1 [verdict]" in listed.output
    assert "toy-gallery" in listed.output and "[gallery]" in listed.output
    assert re.search(r"toy-holds .* Runs: quick 6, default \d+, paper \d+\.", listed.output)
    threads = torch.get_num_threads()
    ran = runner.invoke(app, ["reproduce", "toy-holds", "--scale", "quick", "--threads", "1", "--out", str(tmp_path)])
    assert ran.exit_code == 0, ran.output
    assert "1 holds" in ran.output and "6 runs executed" in ran.output
    assert torch.get_num_threads() == threads, "torch's threads are restored"
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert all("with 1 thread," in r["machine"] for r in records)
    assert {r["command"] for r in records} == {f"xgen reproduce toy-holds --scale quick --threads 1 --out {tmp_path}"}
    assert "--threads 1" in (tmp_path / "claims.md").read_text()
    with pytest.raises(XgenError, match="--threads must be at least 1"):
        xgen.reproduce(["toy-holds"], threads=0, out=tmp_path)


def _records(values: dict[tuple[str, int], list[float]]) -> list[dict]:
    """Log records of the MNIST claim: (variant, digit) -> AUROC per seed."""
    return [
        {"run": {"variant": v, "data": f"mnist:normal={d},size=32", "seed": s}, "result": {"image-auroc": x}}
        for (v, d), xs in values.items()
        for s, x in enumerate(xs)
    ]


def test_cavga_mnist_claim_grid_and_per_digit_findings(registry):
    claim = xgen.plugins.lookup("claim", "cavga-du-beats-vae-mnist")()
    quick, default = claim.runs("quick", claim.data), claim.runs("default", claim.data)
    assert {(r.data, r.variant) for r in quick} == {
        ("mnist:normal=1,size=32", "cavga-du"),
        ("mnist:normal=1,size=32", "conv-vae"),
    }
    assert len(default) == 10 * 2 * 3 and len({r.key for r in default}) == 60
    records = _records(
        {
            ("cavga-du", 0): [0.95, 0.96, 0.97],
            ("conv-vae", 0): [0.80, 0.81, 0.79],
            ("cavga-du", 4): [0.90, 0.70, 0.80],
            ("conv-vae", 4): [0.85, 0.80, 0.75],
        }
    )
    found = {f.subject: f for f in claim.findings(records)}
    assert found["digit 0 normal"].verdict == HOLDS and found["digit 0 normal"].paper_value == "0.994 vs 0.890"
    assert found["digit 4 normal"].verdict == UNTESTABLE
    mean = found["mean over digits 0, 4"]
    assert mean.values["CAVGA-Du"] == pytest.approx([0.925, 0.83, 0.885])
    assert mean.paper_value == "0.986 vs 0.929"


def test_real_claims_run_end_to_end_at_tiny_settings(registry, tmp_path, monkeypatch, one_thread):
    from xgen_plugins.cavga import claims as cavga_claims
    from xgen_plugins.vae_gradcam import claims as gallery_claims

    monkeypatch.setitem(cavga_claims.MNIST_GRID, "quick", ([1], [0, 1], 3))
    monkeypatch.setitem(gallery_claims.GALLERY_GRID, "quick", (3, 2))
    result = xgen.reproduce(["cavga-du-beats-vae-mnist", "vae-gradcam-mnist-figure-1"], scale="quick", out=tmp_path)
    assert result.executed == 6 and not result.refused
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    aurocs = [r["result"]["image-auroc"] for r in records if "image-auroc" in r["result"]]
    assert len(aurocs) == 4 and all(0.0 <= a <= 1.0 for a in aurocs)
    sources = {r["run"]["variant"]: r["result"]["score_source"] for r in records if "score_source" in r["result"]}
    assert sources == {"cavga-du": "explainer cavga", "conv-vae": "scorer recon-error"}
    pictures = [f for f in result.findings if f.claim == "vae-gradcam-mnist-figure-1"]
    assert [p.subject for p in pictures] == ["model of 1s, maps of 7, 4, 9, 2", "model of 3s, maps of 8, 5"]
    sizes = []
    for finding in pictures:
        (figure,) = finding.figures
        with Image.open(tmp_path / figure) as picture:
            sizes.append(picture.size)
    assert sizes[0][0] == sizes[1][0] and sizes[0][1] > 1.8 * sizes[1][1], "4 rows of digits against 2"
    assert (tmp_path / "claims.html").read_text().count("data:image/png;base64,") == 2
