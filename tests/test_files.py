"""Atomic writes: complete files only, with the permissions an ordinary write would give."""

from __future__ import annotations

import os
import stat

import pytest

from xgen.errors import XgenError
from xgen.files import atomic_path, ensure_writable_dir, write_text


def test_atomic_file_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "hello")
        (tmp_path / "b.txt").write_text("hello")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_unwritable_output_folder_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(XgenError, match=r"cannot write to .*; choose another --out folder\."):
        ensure_writable_dir(blocker / "sub")
