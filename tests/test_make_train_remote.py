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

from helpers.azure import SAMPLE_CONFIG, pin_test_base
from helpers.repo import repo_with_fake_data, run

pytestmark = pytest.mark.slow

SITE = Path(__file__).resolve().parent / "azure_fake_site"


def test_make_train_remote_then_local_training_agrees(tmp_path):
    repo, mirror = repo_with_fake_data(tmp_path, n_train=300, n_test=100, seed=5)
    shutil.copy(SAMPLE_CONFIG, repo / "config.json")
    pin_test_base(repo)
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


def test_a_failed_remote_train_puts_the_previous_model_back(tmp_path):
    """DVC deletes models/ before the stage runs; train-remote restores it from the cache."""
    repo, mirror = repo_with_fake_data(tmp_path, n_train=300, n_test=100, seed=5)
    shutil.copy(SAMPLE_CONFIG, repo / "config.json")
    pin_test_base(repo)
    run(["dvc", "repro"], cwd=repo, env={"MNIST_MIRROR": str(mirror)})
    before = (repo / "models" / "model.skops").read_bytes()
    venv = Path(sys.executable).parent.parent
    env = {
        "MNIST_MIRROR": str(mirror),
        "PYTHONPATH": str(SITE),
        "MNIST_REPRO_FAKE_AZURE": str(tmp_path / "mlruns"),
        "MNIST_REPRO_FAKE_AZURE_SCRIPT": "fail",
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    make = ["make", "-o", f"{venv}/.installed", f"VENV={venv}", "train-remote"]
    proc = run(make, cwd=repo, env=env, check=False)
    assert proc.returncode != 0
    assert "ended Failed" in proc.stderr
    assert "restoring models/ as dvc.lock records it (dvc checkout train)" in proc.stderr
    assert (repo / "models" / "model.skops").read_bytes() == before
    assert "up to date" in run(["dvc", "status"], cwd=repo).stdout


def test_dry_runs_of_train_remote_and_remote_smoke_write_loadable_specs(tmp_path):
    """The issue's "done when", from a fresh copy with config.example.json as config.json."""
    from azure.ai.ml import load_job

    from helpers.repo import copy_repo

    repo = copy_repo(tmp_path / "repo")
    shutil.copy(SAMPLE_CONFIG, repo / "config.json")
    venv = Path(sys.executable).parent.parent
    for target, spec in [
        ("train-remote", "build/azureml/job.yaml"),
        ("remote-smoke", "build/azureml/smoke/job.yaml"),
    ]:
        make = ["make", "-o", f"{venv}/.installed", f"VENV={venv}", target, "DRY_RUN=1"]
        proc = run(make, cwd=repo, env={"AZURE_CONFIG_DIR": str(tmp_path / "no-az")})
        assert f"  {spec}\n" in proc.stdout
        assert "is not pinned by digest" in proc.stderr  # until make docker-base-digest
        job = load_job(repo / spec)
        assert job.outputs["model"].mode == "upload"
        assert job.command.startswith("python -m mnist_repro train --data ${{inputs.data}}")
