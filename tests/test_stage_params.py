"""Every params section a stage reads is checked before any work: a typo key or an absurd
number gives one line on stderr naming the file and the key, and exit status 1."""

from __future__ import annotations

import pytest

from helpers.params import write_params
from mnist_repro import cli

HUGE = 10**400  # a 401-digit integer: once an OverflowError or a ctypes error


def stage_args(stage: str, tmp_path) -> list[str]:
    """The stage's command line, every input missing (the params error must come first)."""
    missing = str(tmp_path / "missing")
    out = ["--out", str(tmp_path / "out")]
    return {
        "download": out,
        "train": ["--data", missing, *out],
        "evaluate": ["--data", missing, "--model", missing, *out],
        "report": ["--model", missing, "--reports", missing],
        "sweep": out,
    }[stage]


CASES = [
    ("download", "download.retires", 3),
    ("download", "download.timeout", HUGE),
    ("download", "download.deadline", HUGE),
    ("train", "train.regularisation", 0.5),
    ("train", "train.regularization", HUGE),
    ("train", "train.tol", HUGE),
    ("train", "train.threads", HUGE),
    ("train", "train.jobs", 0),
    ("evaluate", "evaluate.mistake", 3),
    ("evaluate", "evaluate.sample_seed", HUGE),
    ("evaluate", "evaluate.confidence", 1.5),
    ("evaluate", "evaluate.bootstrap_resamples", HUGE),
    ("report", "report.tutorial_acuracy", 0.92),
    ("report", "report.tutorial_accuracy", HUGE),
    ("sweep", "sweep.values", [0.5]),
    ("sweep", "sweep.regularization", [0.5, HUGE]),
]


@pytest.mark.parametrize(("stage", "key", "value"), CASES, ids=[c[1] for c in CASES])
def test_bad_key_or_number_is_one_line_naming_the_key(tmp_path, capsys, stage, key, value):
    params = write_params(tmp_path / "params.yaml", {key: value})
    code = cli.main([stage, "--params", str(params), *stage_args(stage, tmp_path)])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: {params}: {key}")
    assert len(line) < 300  # the 401 digits are not repeated
    assert not (tmp_path / "out").exists()
