"""The job side: the train stage's Azure ML backend (MNIST_TRAIN_BACKEND=azureml) and the sweep
trial's set-param, run as a compute node would run them against a stand-in for MLClient."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from helpers.azure import FakeMLClient, enter_azure_repo
from mnist_repro.azure import service
from mnist_repro.azure.entities import make_plan
from mnist_repro.cli import main


@pytest.fixture
def repo(tmp_path, monkeypatch):
    return enter_azure_repo(tmp_path, monkeypatch)


@pytest.fixture
def ml(tmp_path):
    return FakeMLClient(tmp_path / "mlruns")


def test_train_stage_delegates_to_azure_ml_when_asked(repo, ml, monkeypatch):
    """MNIST_TRAIN_BACKEND=azureml: the dvc.yaml train command runs the remote backend."""
    import mnist_repro.cli as cli

    monkeypatch.setenv("MNIST_TRAIN_BACKEND", "azureml")
    assert cli.stage_module("train", "mnist_repro.train") == "mnist_repro.azure.job"
    assert cli.stage_module("decode", "mnist_repro.decode") == "mnist_repro.decode"
    monkeypatch.setenv("MNIST_TRAIN_BACKEND", "cloud9")
    with pytest.raises(SystemExit, match="MNIST_TRAIN_BACKEND=cloud9: unknown"):
        cli.stage_module("train", "mnist_repro.train")
    monkeypatch.setenv("MNIST_TRAIN_BACKEND", "local")
    assert cli.stage_module("train", "mnist_repro.train") == "mnist_repro.train"


def test_the_job_command_trains_the_same_model_as_the_local_stage(repo, ml):
    """Run the submitted job's command in its staged code folder (as a node would) and compare.

    The job gets only build/azureml/code (src + params.yaml), the data asset's files and an
    empty output folder; the model that comes back must equal a local run's, byte for byte,
    and the accuracy it logged through MLflow must be the one registered.
    """
    from helpers.repo import run

    ml.jobs.execute = True
    plan = make_plan(repo)
    service.train(ml, plan)
    remote_files = {f: (repo / "models" / f).read_bytes() for f in ("model.skops", "model.json")}
    run([*plan.local_command.split()[:4], "--data", "data/raw", "--out", "local"], cwd=repo)
    for name, data in remote_files.items():
        assert (repo / "local" / name).read_bytes() == data, name
    (model,) = ml.models.registered
    accuracy = float(model.tags["accuracy"])
    assert 0.0 <= accuracy <= 1.0
    assert model.tags["regularization"] == str(float(plan.params["regularization"]))


def test_train_stage_on_the_azureml_backend_fills_models(repo, ml, monkeypatch, capsys):
    """`MNIST_TRAIN_BACKEND=azureml python -m mnist_repro train ...` (what dvc repro runs)."""
    monkeypatch.setenv("MNIST_TRAIN_BACKEND", "azureml")
    monkeypatch.setattr(service, "client", lambda cfg, credential=None: ml)
    assert main(["train", "--data", "data/raw", "--out", "models"]) == 0
    for file_name, data in ml.jobs.model_files.items():
        assert (repo / "models" / file_name).read_bytes() == data
    assert main(["train", "--data", "data/raw", "--out", "elsewhere"]) == 1
    assert "train --out elsewhere: the Azure ML backend runs dvc.yaml" in capsys.readouterr().err
    assert len(ml.jobs.jobs) == 1


def test_the_backend_fetches_a_finished_job_when_named(repo, ml, monkeypatch):
    """MNIST_AZURE_JOB (make remote-fetch): no submission; that job's model into --out."""
    monkeypatch.setattr(service, "client", lambda cfg, credential=None: ml)
    name = service.train(ml, make_plan(repo), wait=False)
    ml.jobs.stream(name)  # it completes meanwhile
    for file_name in ("model.skops", "model.json"):
        (repo / "models" / file_name).unlink(missing_ok=True)  # DVC removed them
    monkeypatch.setenv("MNIST_TRAIN_BACKEND", "azureml")
    monkeypatch.setenv("MNIST_AZURE_JOB", name)
    assert main(["train", "--data", "data/raw", "--out", "models"]) == 0
    assert len(ml.jobs.jobs) == 1  # nothing submitted
    for file_name, data in ml.jobs.model_files.items():
        assert (repo / "models" / file_name).read_bytes() == data
    monkeypatch.setenv("MNIST_AZURE_JOB", "no-such-job")
    assert main(["train", "--data", "data/raw", "--out", "models"]) == 1


def test_a_sweep_trial_trains_with_its_own_regularization(repo, ml):
    """The trial command (set-param, then the train command) run as a node would run it."""
    import json

    from helpers.params import write_params

    ml.jobs.execute = True
    write_params(repo / "params.yaml", {"select.validation_size": 20})  # the fake set is small
    plan = make_plan(repo, sweep=True)
    value = plan.settings.sweep.values[-1]
    assert value != plan.params["regularization"]
    best = service.sweep(ml, plan)
    trained = json.loads(ml.jobs.jobs[best].outputs["model.json"])
    assert trained["params"]["regularization"] == value
    # The trial selects: it scored the validation set, never the test set.
    assert "test_accuracy" not in trained and trained["validation"]["accuracy"]["n"] == 20
    (model,) = ml.models.registered
    assert model.tags["regularization"] == str(value)  # logged by train itself, via MLflow
    # Tagged with what the trial scored: validation, not a test accuracy it never measured.
    assert float(model.tags["val_accuracy"]) == trained["validation"]["accuracy"]["value"]
    assert "accuracy" not in model.tags
    assert (repo / "params.yaml").read_text() == (
        plan.build_dir / "code" / "params.yaml"
    ).read_text()


def test_dvc_repro_on_the_azureml_backend_records_the_downloaded_model(repo, tmp_path):
    """`make train-remote`'s DVC step: dvc.lock records the model that came back from the job."""
    import hashlib
    from pathlib import Path

    import yaml

    from helpers.azure import FakeJobs
    from helpers.repo import run

    site = Path(__file__).resolve().parent / "azure_fake_site"
    env = {
        "MNIST_TRAIN_BACKEND": "azureml",
        "MNIST_REPRO_FAKE_AZURE": str(tmp_path / "mlruns"),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "PYTHONPATH": str(site),
    }
    proc = run(["dvc", "repro", "--force", "--single-item", "train"], cwd=repo, env=env)
    assert "azure: submitted" in proc.stderr and "azure: downloaded" in proc.stderr
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]
    recorded = {Path(out["path"]).name: out["md5"] for out in lock["outs"]}
    expected = FakeJobs("unused", None).model_files
    assert recorded == {name: hashlib.md5(data).hexdigest() for name, data in expected.items()}
    status = run(["dvc", "status", "train"], cwd=repo)
    assert "up to date" in status.stdout, status.stdout


def test_set_param_rewrites_the_trials_params(tmp_path, monkeypatch):
    from mnist_repro.azure.job import main as job_main

    text = "train:\n  regularization: 0.5\n  seed: 1\nother: 2\n"
    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert job_main(["set-param", "params.yaml", "trial.yaml", "train.regularization=0.01"]) == 0
    assert (tmp_path / "params.yaml").read_text() == text  # the code folder is left alone
    assert yaml.safe_load((tmp_path / "trial.yaml").read_text()) == {
        "train": {"regularization": 0.01, "seed": 1},
        "other": 2,
    }
    assert job_main(["set-param", "params.yaml", "trial.yaml", "train.nope=1"]) == 1
    assert job_main(["set-param", "train.regularization=1"]) == 2
    assert job_main(["params.yaml", "trial.yaml", "train.regularization=1"]) == 2


def test_local_pipeline_and_the_job_side_never_import_the_sdk():
    """The job's image has no Azure SDK; the local pipeline must not need it either."""
    code = (
        "import sys; from mnist_repro.cli import build_parser; build_parser('decode'); "
        "import mnist_repro.azure.job, mnist_repro.azure.cli, mnist_repro.azure.service, "
        "mnist_repro.azure.entities, mnist_repro.azure.workspace; "
        "print(sorted(m for m in sys.modules if m.startswith(('azure.', 'mlflow'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
