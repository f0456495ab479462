"""Atomic writes: all or nothing under the final name, with ordinary permissions."""

import os
import signal
import stat
import subprocess
import sys

import pytest

from mnist_repro.atomic import atomic_open, atomic_path, remove_stale_temps, write_text


def test_write_text_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path, exc):
    target = tmp_path / "out.bin"
    target.write_bytes(b"precious")
    with pytest.raises(exc), atomic_open(target, "wb") as fh:
        fh.write(b"half")
        raise exc
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_result_follows_the_umask_not_mkstemp_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_atomic_open_refuses_read_modes(tmp_path):
    with pytest.raises(ValueError), atomic_open(tmp_path / "f", "r"):
        pass


def test_remove_stale_temps_deletes_only_leftovers_of_that_file(tmp_path):
    target = tmp_path / "a.gz"
    with atomic_path(target) as tmp:  # learn the real temp name pattern from a live write
        leftover = tmp.with_name(tmp.name.replace(tmp.name.split(".")[-2], "killed"))
        leftover.write_bytes(b"partial")
        tmp.write_bytes(b"done")
    other = tmp_path / ".b.gz.x.tmp"
    other.write_bytes(b"another file's temp")
    assert remove_stale_temps(target) == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.gz.x.tmp", "a.gz"]


KILLED_WRITER = """
import os, signal, sys
from mnist_repro.atomic import atomic_open
with atomic_open(sys.argv[1], "w") as fh:
    fh.write("half a file")
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup runs, as with kill -9 or a power cut
"""


def test_the_next_write_removes_what_a_sigkilled_writer_left(tmp_path):
    target = tmp_path / "figures" / "digits.png"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], check=False)
    assert proc.returncode == -signal.SIGKILL
    leftovers = list(target.parent.glob(".digits.png.*.tmp"))
    assert len(leftovers) == 1 and not target.exists()

    write_text(target, "whole\n")  # any stage's next write of that file
    assert [p.name for p in target.parent.iterdir()] == ["digits.png"]


@pytest.mark.parametrize("tool", ["git", "dvc"])
def test_git_and_dvc_ignore_the_temp_pattern(tool):
    """A leftover must never show in git status nor become part of a DVC output folder."""
    from helpers.repo import REPO_ROOT, stage_env

    names = [
        "reports/figures/.digits.png.k2j4_x9.tmp",
        "data/raw/.t10k-labels-idx1-ubyte.gz.a1.tmp",
    ]
    for paths, ignored in ((names, True), (["reports/figures/digits.png"], False)):
        proc = subprocess.run(
            [tool, "check-ignore", *paths],
            cwd=REPO_ROOT,
            env=stage_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == (0 if ignored else 1), proc.stderr
        assert proc.stdout.split() == (paths if ignored else [])
