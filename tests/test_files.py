"""Atomic writes: a failed write leaves the old file; a new file gets the usual mode."""
import os
import stat

import pytest

from repro.errors import ReproError
from repro.files import atomic_write, check_writable, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "table.csv", "old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    mask = os.umask(0o022)
    try:
        path = write_text(tmp_path / "x.md", "x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_check_writable_refuses_a_path_below_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    with pytest.raises(ReproError, match="cannot write"):
        check_writable(blocker / "sub" / "out.csv")
    assert check_writable(tmp_path / "new" / "out.csv") == tmp_path / "new" / "out.csv"
    assert not (tmp_path / "new").exists()
