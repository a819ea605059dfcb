"""The report-only result scripts in benchmarks/ redraw the removed scripts' tables exactly from their logs, so a
table in docs/results/ drawn from the `xgen reproduce` log is the same table as before, on other runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs"


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("| textures", "| digits"))]


@pytest.mark.parametrize(
    ("script", "old_log", "old_tables"),
    [
        ("pwae_results.py", "pwae-results.jsonl", "pwae-results.md"),
        ("cavga_results.py", "cavga-ablation.jsonl", "cavga-ablation.md"),
    ],
)
def test_report_redraws_the_removed_scripts_tables_from_their_log(script, old_log, old_tables, tmp_path):
    out = tmp_path / "tables.md"
    script_path = ROOT / "benchmarks" / script
    subprocess.run(
        [sys.executable, str(script_path), "report", "--log", str(RUNS / old_log), "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    expected = _rows((RUNS / old_tables).read_text())
    drawn = set(_rows(out.read_text()))
    assert len(expected) >= 20
    missing = [row for row in expected if row not in drawn]
    assert not missing, f"{len(missing)} of {len(expected)} rows differ, first: {missing[0]}"
