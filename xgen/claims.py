"""Claims of the papers that `xgen reproduce` re-measures: what a plugin registers, the runs of a claim's grid, and
the stated rule that turns measurements into a verdict.

A claim is a class: its paper, the table or figure it comes from, the paper's own number, the grid of runs it needs
at each scale, how one run is executed, and how the runs' records become findings. Claims that list equal runs
share one execution (the run log is keyed by `Run.key`), so claims comparing the same trained variants train them
once.
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from xgen.options import Configurable

Scale = Literal["quick", "default", "paper"]
SCALES: tuple[str, ...] = ("quick", "default", "paper")
SCALE_HELP = {
    "quick": "every claim of one paper together in minutes on two CPU cores: a smoke check, not evidence",
    "default": "the CPU scale docs/results/ reports",
    "paper": "the paper's image size, training length and backbone: for a GPU",
}
HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable here"
VERDICTS: tuple[str, ...] = (HOLDS, FAILS, UNTESTABLE)


#: The folder beside the run log that holds each run's own folder of files.
RUNS_DIR = "runs"


@dataclass(frozen=True)
class Run:
    """One cell of a claim's grid: train and measure `variant` on `data` with `seed` under `settings` (JSON values:
    the scale's training length, image size, ...). `experiment` names the code that executes it, so equal runs
    listed by several claims of one experiment are run once."""

    experiment: str
    data: str
    variant: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The run's identity in the log: every field, as canonical JSON."""
        return json.dumps([self.experiment, self.data, self.variant, self.seed, self.settings], sort_keys=True)

    @property
    def folder_name(self) -> str:
        """A short, stable folder name for the run's files (its figures)."""
        return f"{self.experiment}-{hashlib.sha256(self.key.encode()).hexdigest()[:12]}"

    def label(self) -> str:
        return f"{self.experiment} {self.variant} on {self.data}, seed {self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "data": self.data,
            "variant": self.variant,
            "seed": self.seed,
            "settings": self.settings,
        }

    def log_record(
        self,
        claim: str,
        scale: str,
        device: str,
        result: dict[str, Any],
        seconds: float,
        machine: str,
        finished: str,
        command: str | None = None,
    ) -> dict[str, Any]:
        """The line `xgen reproduce` appends to runs.jsonl once this run has finished; its files are in
        `RUNS_DIR/<folder_name>` under the log's folder. `command` is the invocation that ran it, where known."""
        return {
            "key": self.key,
            "run": self.as_dict(),
            "claim": claim,
            "scale": scale,
            "device": device,
            "result": result,
            "folder": f"{RUNS_DIR}/{self.folder_name}",
            "seconds": seconds,
            "machine": machine,
            "finished": finished,
        } | ({"command": command} if command is not None else {})


@dataclass(frozen=True)
class RunContext:
    """What a run may use: the torch device, the folder its figures go to (created empty for it; paths it returns
    under "figures" are relative to it) and the scale it runs at."""

    device: str
    folder: Path
    scale: str


@dataclass(frozen=True)
class Finding:
    """One verdict of a claim, on one data set or overall: what was measured (mean ± sample std over seeds of each
    side), the difference and the spread the rule compared, the verdict and the reason in words. Make variants
    with `dataclasses.replace`."""

    claim: str
    subject: str
    measured: str
    verdict: str
    reason: str
    difference: float | None = None
    spread: float | None = None
    values: dict[str, list[float]] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    """Paths relative to the output folder: a record's "folder" joined with a figure name its run returned."""
    paper_value: str = ""
    """The paper's own figure for this subject, when it has one (the claim's `paper_value` is shown otherwise)."""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"a verdict is one of {VERDICTS}, got {self.verdict!r}")

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Claim(Configurable, abc.ABC):
    """A claim of a paper, re-measured by `xgen reproduce`. Subclasses set the class attributes and implement
    `runs`, `run` and `findings`; register them with the `xgen_register_claims` hook."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    source: ClassVar[str] = ""
    paper_value: ClassVar[str] = ""
    data: ClassVar[tuple[str, ...]] = ()
    accepts_data: ClassVar[bool] = True
    gallery: ClassVar[bool] = False

    @abc.abstractmethod
    def runs(self, scale: str, data: Sequence[str]) -> list[Run]:
        """The grid at `scale` on the data specs `data` (the claim's own, or the user's `--data`)."""

    @abc.abstractmethod
    def run(self, run: Run, context: RunContext) -> dict[str, Any]:
        """Execute one run and return its measurements as JSON values; figures it writes under `context.folder` are
        listed by relative path under "figures"."""

    @abc.abstractmethod
    def findings(self, records: Sequence[dict[str, Any]]) -> list[Finding]:
        """The verdicts, from the log records of this claim's runs (each has "run": `Run.as_dict()`, "result": what
        `run` returned, and "folder"); decided by a stated rule, such as `compare`'s."""


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """'0.912 ± 0.010 (n=3)', '0.912 (n=1)', or 'no value' (NaN values are left out)."""
    finite = _finite(values)
    if not finite:
        return "no value"
    if len(finite) == 1:
        return f"{finite[0]:.{digits}f} (n=1)"
    return f"{statistics.mean(finite):.{digits}f} ± {statistics.stdev(finite):.{digits}f} (n={len(finite)})"


def compare(
    claim: str,
    subject: str,
    claimed: tuple[str, Sequence[float]],
    other: tuple[str, Sequence[float]],
    *,
    higher_is_better: bool = True,
    digits: int = 3,
    figures: Sequence[str] = (),
) -> Finding:
    """The verdict on "`claimed` is better than `other`" from per-seed values of each side.

    The rule: the difference of the two seed means counts only when it exceeds the spread over seeds, the larger of
    the two sample standard deviations, and half a unit of the last digit shown (`digits`), so that runs agreeing
    to the printed precision never count as different. It holds when the difference counts in the claimed
    direction, does not hold when it counts against it, and is not testable here when it does not count or when a
    side has fewer than two finite values (no spread to compare with)."""
    (a_name, a_raw), (b_name, b_raw) = claimed, other
    a, b = _finite(a_raw), _finite(b_raw)
    measured = f"{a_name} {mean_std(a, digits)} vs {b_name} {mean_std(b, digits)}"
    values = {a_name: a, b_name: b}
    if len(a) < 2 or len(b) < 2:
        reason = "fewer than two seeds on a side, so there is no spread to judge the difference against"
        return Finding(claim, subject, measured, UNTESTABLE, reason, values=values, figures=list(figures))
    sign = 1.0 if higher_is_better else -1.0
    difference = sign * (statistics.mean(a) - statistics.mean(b))
    spread = max(statistics.stdev(a), statistics.stdev(b))
    threshold = max(spread, 0.5 * 10.0**-digits)
    better = "higher" if higher_is_better else "lower"
    shown = (
        f"difference {difference:+.{digits}f} in the claimed direction ({better} is better), spread {spread:.{digits}f}"
    )
    if difference > threshold:
        verdict, reason = HOLDS, f"{shown}: the difference exceeds the spread"
    elif -difference > threshold:
        verdict, reason = FAILS, f"{shown}: the difference exceeds the spread, against the claim"
    else:
        verdict, reason = UNTESTABLE, f"{shown}: the difference is within the spread over seeds"
    return Finding(claim, subject, measured, verdict, reason, difference, spread, values, list(figures))


def gallery(claim: str, subject: str, figures: Sequence[str], what: str) -> Finding:
    """A qualitative claim: the pictures, for a person to judge, and the verdict "not testable here" (no rule turns
    a picture into a verdict)."""
    reason = f"qualitative: {what}; the gallery is shown for a person to judge, and no rule decides it"
    return Finding(claim, subject, f"{len(figures)} pictures", UNTESTABLE, reason, figures=list(figures))
