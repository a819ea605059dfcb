"""Atomic file writing: a reader (or an interrupted run) only ever sees complete files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from xgen.errors import XgenError


def _umask() -> int:
    """The process umask (read by setting and restoring it), so atomic files get the usual permissions."""
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
