"""The remote flows against a stand-in for MLClient's operations (the network boundary only)."""

from __future__ import annotations

import pytest

from azure_support import FakeMLClient, azure_repo
from mnist_repro.azure import cli as remote_cli
from mnist_repro.azure import remote
from mnist_repro.azure.plan import make_plan
from mnist_repro.cli import main
from mnist_repro.errors import MnistReproError
from support import update_params


@pytest.fixture
def repo(tmp_path, monkeypatch):
    repo = azure_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for var in ("AML_COMPUTE_CLUSTER_NAME", "AML_COMPUTE_CLUSTER_MAX_NODES"):
        monkeypatch.delenv(var, raising=False)
    return repo


@pytest.fixture
def ml(tmp_path):
    return FakeMLClient(tmp_path / "mlruns")


def _plan(repo, **kw):
    return make_plan(repo, repo / "params.yaml", **kw)


def test_train_creates_everything_then_downloads_and_registers(repo, ml, capsys):
    plan = _plan(repo)
    name = remote.train(ml, plan)
    # compute, environment, data: created once, as built from the repo
    assert [c.name for c in ml.compute.created] == ["cpucluster"]
    assert ml.compute.created[0].max_instances == 4
    assert [(e.name, e.version) for e in ml.environments.created] == [
        ("mnist-repro", plan.environment_version)
    ]
    assert [(d.name, d.version) for d in ml.data.created] == [
        ("mnist_opendataset", plan.data_version)
    ]
    # the submitted job is the plan's job; it was streamed before anything was downloaded
    submitted = ml.jobs.jobs[name].spec
    assert submitted.command == plan.remote_command
    assert [c[0] for c in ml.jobs.calls] == ["create_or_update", "stream", "download"]
    # the model landed exactly where the local train stage writes it
    for file_name, data in ml.jobs.model_files.items():
        assert (repo / "models" / file_name).read_bytes() == data
    assert not list((repo / "build" / "azureml" / "downloads").iterdir())  # no leftovers
    # registered with the tutorial's tags plus data hash and commit
    (model,) = ml.models.registered
    assert model.name == "sklearn_mnist"
    assert model.path == f"azureml://jobs/{name}/outputs/model"
    assert model.tags["accuracy"] == "0.9125" and model.tags["regularization"] == "0.5"
    assert model.tags["data_version"] == plan.data_version
    assert model.tags["git_commit"] == plan.commit and len(plan.commit) == 40
    out = capsys.readouterr().out
    assert f"job {name}: https://studio.invalid/runs/{name}" in out
    assert "compute: creating cluster cpucluster" in out


def test_second_run_reuses_compute_environment_and_data(repo, ml, capsys):
    remote.train(ml, _plan(repo))
    remote.train(ml, _plan(repo))
    assert len(ml.compute.created) == 1
    assert len(ml.environments.created) == 1
    assert len(ml.data.created) == 1  # unchanged data: no upload, no new version
    assert len(ml.models.registered) == 2
    out = capsys.readouterr().out
    assert "compute: reusing cluster cpucluster" in out
    assert "(files unchanged, no upload)" in out


def test_changed_data_or_docker_gives_new_versions(repo, ml):
    first = _plan(repo)
    remote.train(ml, first)
    (repo / "docker" / "Dockerfile").write_text(
        (repo / "docker" / "Dockerfile").read_text() + "# changed\n"
    )
    from synthetic import write_synthetic_mnist

    files = write_synthetic_mnist(repo / "data" / "raw", n_train=60, n_test=20, seed=1)
    update_params(repo, {"download.files": files})
    second = _plan(repo)
    remote.train(ml, second)
    assert second.data_version != first.data_version
    assert second.environment_version != first.environment_version
    assert [d.version for d in ml.data.created] == [first.data_version, second.data_version]
    assert [e.version for e in ml.environments.created] == [
        first.environment_version,
        second.environment_version,
    ]


def test_failed_job_exits_nonzero_with_log_tail_and_url(repo, ml, capsys):
    (repo / "models").mkdir(exist_ok=True)  # the repo may already track models/.gitignore
    (repo / "models" / "model.skops").write_bytes(b"the user's previous model")
    ml.jobs.script = "fail"
    with pytest.raises(MnistReproError) as info:
        remote.train(ml, _plan(repo))
    (name,) = ml.jobs.jobs
    assert str(info.value) == (
        f"Azure ML job {name} ended Failed: https://studio.invalid/runs/{name}"
    )
    err = capsys.readouterr().err
    assert "Traceback: ValueError: boom" in err
    assert "log line 99" in err and "log line 40" not in err  # the last 40 lines only
    assert (repo / "models" / "model.skops").read_bytes() == b"the user's previous model"
    assert not ml.models.registered


def test_ctrl_c_leaves_the_job_running_and_says_how_to_follow(repo, ml, capsys):
    ml.jobs.script = "interrupt"
    with pytest.raises(KeyboardInterrupt):
        remote.train(ml, _plan(repo))
    (name,) = ml.jobs.jobs
    err = capsys.readouterr().err
    assert f"make remote-status JOB={name}" in err
    assert f"make remote-cancel JOB={name}" in err
    assert ("begin_cancel", name) not in ml.jobs.calls
    assert ml.jobs.jobs[name].status != "Canceled"
    assert not list((repo / "models").glob("model.*")) and not ml.models.registered


def test_ctrl_c_through_the_cli_exits_130(repo, ml, monkeypatch, capsys):
    monkeypatch.setattr(remote_cli, "client", lambda cfg: ml)
    ml.jobs.script = "interrupt"
    assert main(["remote", "submit"]) == 130
    assert "make remote-status JOB=" in capsys.readouterr().err


def test_output_without_model_changes_nothing(repo, ml):
    ml.jobs.model_files = {"model.json": b"{}"}
    with pytest.raises(MnistReproError, match=r"has no model\.skops; nothing in .* was changed"):
        remote.train(ml, _plan(repo))
    assert not (repo / "models" / "model.json").exists()


def test_existing_compute_of_another_kind_is_refused(repo, ml):
    from types import SimpleNamespace

    ml.compute.clusters["cpucluster"] = SimpleNamespace(name="cpucluster", type="computeinstance")
    with pytest.raises(MnistReproError, match="not an AmlCompute cluster"):
        remote.train(ml, _plan(repo))
    assert not ml.jobs.jobs


def test_sweep_registers_the_best_trial(repo, ml, capsys):
    best = remote.sweep(ml, _plan(repo, sweep=True))
    (parent,) = [n for n, j in ml.jobs.jobs.items() if j.spec is not None]
    assert type(ml.jobs.jobs[parent].spec).__name__ == "SweepJob"
    assert best != parent and ml.jobs.jobs[parent].properties["best_child_run_id"] == best
    (model,) = ml.models.registered
    assert model.path == f"azureml://jobs/{best}/outputs/model"
    assert model.tags["accuracy"] == "0.95" and model.tags["regularization"] == "0.1"
    assert f"best trial {best}: accuracy = 0.95" in capsys.readouterr().out
    assert not list((repo / "models").glob("model.*"))  # a sweep registers; models/ untouched


def test_status_cancel_metrics_delete_through_the_cli(repo, ml, monkeypatch, capsys):
    monkeypatch.setattr(remote_cli, "client", lambda cfg: ml)
    name = remote.train(ml, _plan(repo))
    capsys.readouterr()
    assert main(["remote", "metrics", name]) == 0
    assert capsys.readouterr().out.splitlines() == ["accuracy: 0.9125", "regularization rate: 0.5"]
    assert main(["remote", "status", name]) == 0
    assert f"job {name}: Completed" in capsys.readouterr().out
    assert main(["remote", "cancel", name]) == 0
    assert "already ended: Completed" in capsys.readouterr().out
    ml.jobs.script = "running"
    running = remote.train(ml, _plan(repo), wait=False)
    assert main(["remote", "cancel", running]) == 0
    assert ("begin_cancel", running) in ml.jobs.calls
    assert main(["remote", "status", running]) == 1
    assert "ended Canceled" in capsys.readouterr().err
    assert main(["remote", "delete-compute"]) == 0
    assert ml.compute.deleted == ["cpucluster"]
    assert main(["remote", "delete-compute"]) == 0
    assert "nothing to delete" in capsys.readouterr().out
    assert main(["remote", "status", "no-such-job"]) == 1
    assert capsys.readouterr().err.startswith(
        "error: job no-such-job not found in workspace my-workspace"
    )


def test_train_stage_delegates_to_azure_ml_when_asked(repo, ml, monkeypatch):
    """MNIST_TRAIN_BACKEND=azureml: the dvc.yaml train command runs the remote backend."""
    import mnist_repro.cli as cli

    monkeypatch.setenv("MNIST_TRAIN_BACKEND", "azureml")
    assert cli.stage_module("train", "mnist_repro.train") == "mnist_repro.azure.train_backend"
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
    from support import run

    ml.jobs.execute = True
    plan = _plan(repo)
    remote.train(ml, plan)
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
    monkeypatch.setattr(remote_cli, "client", lambda cfg: ml)
    assert main(["train", "--data", "data/raw", "--out", "models"]) == 0
    for file_name, data in ml.jobs.model_files.items():
        assert (repo / "models" / file_name).read_bytes() == data
    assert main(["train", "--data", "data/raw", "--out", "elsewhere"]) == 1
    assert "train --out elsewhere: the Azure ML backend runs dvc.yaml" in capsys.readouterr().err
    assert len(ml.jobs.jobs) == 1


def test_a_sweep_trial_trains_with_its_own_regularization(repo, ml):
    """The trial command (set_param, then the train command) run as a node would run it."""
    import json

    ml.jobs.execute = True
    plan = _plan(repo, sweep=True)
    value = plan.settings.sweep.values[-1]
    assert value != plan.params["regularization"]
    best = remote.sweep(ml, plan)
    trained = json.loads(ml.jobs.jobs[best].outputs["model.json"])
    assert trained["params"]["regularization"] == value
    (model,) = ml.models.registered
    assert model.tags["regularization"] == str(value)  # logged by train itself, via MLflow
    assert float(model.tags["accuracy"]) == pytest.approx(trained["test_accuracy"])
    assert (repo / "params.yaml").read_text() == (
        plan.build_dir / "code" / "params.yaml"
    ).read_text()


def test_dvc_repro_on_the_azureml_backend_records_the_downloaded_model(repo, tmp_path):
    """`make train-remote`'s DVC step: dvc.lock records the model that came back from the job."""
    import hashlib
    from pathlib import Path

    import yaml

    from azure_support import FakeJobs
    from support import run

    site = Path(__file__).resolve().parent / "azure_fake_site"
    env = {
        "MNIST_TRAIN_BACKEND": "azureml",
        "MNIST_REPRO_FAKE_AZURE": str(tmp_path / "mlruns"),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "PYTHONPATH": str(site),
    }
    proc = run(["dvc", "repro", "--force", "--single-item", "train"], cwd=repo, env=env)
    assert "submitted" in proc.stdout and "downloaded" in proc.stdout
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]
    recorded = {Path(out["path"]).name: out["md5"] for out in lock["outs"]}
    expected = FakeJobs("unused", None).model_files
    assert recorded == {name: hashlib.md5(data).hexdigest() for name, data in expected.items()}
    status = run(["dvc", "status", "train"], cwd=repo)
    assert "up to date" in status.stdout, status.stdout
