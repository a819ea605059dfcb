"""Atomic file writing: a reader (or an interrupted run) only ever sees complete files."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from xgen.errors import XgenError


@functools.cache
def _umask() -> int:
    """The process umask, so atomic files get the usual permissions. Read once: on Linux from /proc (setting and
    restoring it, the only portable way, would race with threads that create files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


_TEMPORARY = itertools.count()


def write_bytes(path: str | os.PathLike[str], *buffers: bytes, durable: bool = True) -> int:
    """Write the concatenated `buffers` to `path` atomically (a temporary file beside it, then one rename) and
    return the size. `durable` forces the bytes to disk before the rename, so even a power cut leaves the old or the
    new file, never a truncated one; without it, only a crash of this process is covered. Thread-safe, and cheap
    (four system calls) for the many small files of an explain job."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{next(_TEMPORARY)}.part")
    view = memoryview(buffers[0] if len(buffers) == 1 else b"".join(buffers))
    size = len(view)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def ensure_writable_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Create the folder if needed and prove it can be written, or raise XgenError saying what to do."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".xgen-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise XgenError(f"cannot write to {path} ({reason}); choose another {what} folder.") from None
    return path


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Raise XgenError, creating nothing, unless `path` names a file that can be written (its folder may not
    exist yet, but the nearest existing folder above it must be writable)."""
    path = Path(path)
    if path.is_dir():
        raise XgenError(f"{flag} {path} is a folder; give a file path inside it.")
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise XgenError(f"cannot write {path}: {folder} is not a writable folder; choose another {flag} path.")
    return path
