"""`make train-remote` end to end, offline: the Makefile recipe, DVC, the remote backend and a
stand-in for MLClient that runs the job's command as a node would; then a local retrain must
leave dvc.lock as the remote run wrote it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from helpers.azure import SAMPLE_CONFIG
from helpers.repo import repo_with_fake_data, run

pytestmark = pytest.mark.slow

SITE = Path(__file__).resolve().parent / "azure_fake_site"


def test_make_train_remote_then_local_training_agrees(tmp_path):
    repo, mirror = repo_with_fake_data(tmp_path, n_train=300, n_test=100, seed=5)
    shutil.copy(SAMPLE_CONFIG, repo / "config.json")
    venv = Path(sys.executable).parent.parent
    env = {
        "MNIST_MIRROR": str(mirror),
        "PYTHONPATH": str(SITE),
        "MNIST_REPRO_FAKE_AZURE": str(tmp_path / "mlruns"),
        "MNIST_REPRO_FAKE_AZURE_EXECUTE": "1",
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    # -o: the venv is this one, already set up; make must not reinstall it from the copy
    make = ["make", "-o", f"{venv}/.installed", f"VENV={venv}", "train-remote"]
    proc = run(make, cwd=repo, env=env)
    out = proc.stdout
    assert "azure: submitted" in proc.stderr and "azure: downloaded" in proc.stderr
    assert "azure: model: registered sklearn_mnist:1" in proc.stderr
    for stage in ("download", "train", "decode", "evaluate", "report"):
        assert f"Running stage '{stage}'" in out, stage
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    remote_outs = lock["train"]["outs"]

    # The same stage trained here instead: the same model, so dvc.lock does not move.
    local = run(["dvc", "repro", "--force", "--single-item", "train"], cwd=repo)
    assert "submitted" not in local.stdout + local.stderr
    relock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert relock["train"]["outs"] == remote_outs
    assert "up to date" in run(["dvc", "status"], cwd=repo).stdout
