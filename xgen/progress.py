"""Progress bars on stderr for long work (rich, which typer already brings)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Silent:
    """What `progress_bar(False)` yields: Progress's methods, doing nothing, and a console that prints nothing."""

    console = Console(quiet=True)

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        pass

    def advance(self, *args: object, **kwargs: object) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress | _Silent]:
    """A rich Progress on stderr when enabled, otherwise an object with the same methods that does nothing. Messages
    go through its `console` (`bar.console.print(...)`), which prints above the bars, or nowhere when disabled."""
    if not enabled:
        yield _Silent()
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
    )
    with bar:
        yield bar
