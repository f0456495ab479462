"""Disk full or permission denied in any stage: one line, ``error: <file>: <problem>``, exit
status 1, and no half-written file (nor a temporary one) left behind."""

from __future__ import annotations

import errno
import shutil
import tempfile

import pytest

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from mnist_repro import atomic, cli, decode, paths


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Every stage's inputs: fake raw files, their arrays, a model, metrics and figures."""
    root = tmp_path_factory.mktemp("pipeline")
    write_fake_mnist(root / "raw", n_train=200, n_test=100)
    params = str(write_params(root / "params.yaml", {"train.max_iter": 20}))
    raw, processed, models = root / "raw", root / "processed", root / "models"
    stages = [
        ["decode", "--raw", raw, "--out", processed],
        ["train", "--params", params, "--data", raw, "--out", models],
        ["evaluate", "--params", params, "--data", processed / paths.NPZ_NAME, "--model", models],
    ]
    stages[-1] += ["--out", root / "reports"]
    for args in stages:
        assert cli.main([str(a) for a in args]) == 0
    return root, params


def stage_run(stage: str, root, params: str, out) -> tuple[list[str], str]:
    """The stage's command line writing into ``out``, and the first file it writes there."""
    npz = root / "processed" / paths.NPZ_NAME
    args, first = {
        "decode": (["--raw", root / "raw", "--out", out], paths.NPZ_NAME),
        "train": (["--data", root / "raw", "--out", out], paths.MODEL_FILE),
        "evaluate": (["--data", npz, "--model", root / "models", "--out", out], paths.METRICS_FILE),
        "report": (["--model", root / "models", "--reports", out], paths.REPORT_FILE),
    }[stage]
    return [stage, "--params", params, *map(str, args)], first


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def read_only(*args, dir=None, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied", str(dir))


@pytest.mark.parametrize("stage", ["decode", "train", "evaluate", "report"])
@pytest.mark.parametrize(
    ("target", "fault", "problem"),
    [
        ("os.replace", disk_full, "No space left on device"),
        ("tempfile.mkstemp", read_only, "Permission denied"),
    ],
    ids=["disk full", "read-only folder"],
)
def test_a_write_failure_is_one_line_and_leaves_nothing(
    pipeline, tmp_path, monkeypatch, capsys, stage, target, fault, problem
):
    root, params = pipeline
    out = tmp_path / "out"
    if stage == "report":  # report writes beside evaluate's outputs
        shutil.copytree(root / "reports", out)
    before = sorted(p.relative_to(out) for p in out.rglob("*")) if out.exists() else []
    argv, first = stage_run(stage, root, params, out)
    module, name = target.split(".")
    monkeypatch.setattr({"os": atomic.os, "tempfile": tempfile}[module], name, fault)
    assert cli.main(argv) == 1
    monkeypatch.undo()
    captured = capsys.readouterr()
    (error,) = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert error == f"error: {out / first}: cannot write ({problem})"
    assert captured.err.splitlines()[-1] == error
    after = sorted(p.relative_to(out) for p in out.rglob("*")) if out.exists() else []
    assert after == before  # nothing new, not even a temporary file


def test_an_os_error_reading_input_names_the_file(tmp_path, monkeypatch, capsys):
    def unreadable(raw_dir, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(raw_dir / "x.gz"))

    monkeypatch.setattr(decode, "load_raw", unreadable)
    assert cli.main(["decode", "--raw", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'x.gz'}: Permission denied\n"
