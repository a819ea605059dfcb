"""Where numbers were measured: the CPU, its logical CPUs, torch and its threads, Python and the OS."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

from xgen.errors import XgenError


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (one that exists but is not ours counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe() -> str:
    """One line: CPU model, logical CPUs, torch and its threads, Python and OS."""
    import torch

    threads = torch.get_num_threads()
    return (
        f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {threads} "
        f"thread{'s' if threads != 1 else ''}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def as_described(line: str) -> str:
    """A logged machine line as `describe` writes it today, so that runs of one machine group together: logs of
    earlier scripts wrote "with 1 threads"."""
    return line.replace(" with 1 threads,", " with 1 thread,")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch on `threads` CPU threads (None: leave torch's setting), restoring it afterwards. One
    thread is often faster when other jobs share the cores: a team of threads stalls on a busy core."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise XgenError(f"--threads must be at least 1, got {threads}.")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
