"""The service flows (train, sweep) against a stand-in for MLClient's operations (the network
boundary only): what is created or reused, submitted, followed, downloaded and registered."""

from __future__ import annotations

import pytest

from helpers.azure import FakeMLClient, enter_azure_repo
from helpers.params import write_params
from mnist_repro.azure import service
from mnist_repro.azure.entities import make_plan
from mnist_repro.errors import MnistReproError


@pytest.fixture
def repo(tmp_path, monkeypatch):
    return enter_azure_repo(tmp_path, monkeypatch)


@pytest.fixture
def ml(tmp_path):
    return FakeMLClient(tmp_path / "mlruns")


def test_train_creates_everything_then_downloads_and_registers(repo, ml, capsys):
    plan = make_plan(repo)
    name = service.train(ml, plan)
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
    out, err = capsys.readouterr()
    assert out == ""  # progress only: stdout stays for results
    assert f"azure: job {name}: https://studio.invalid/runs/{name}\n" in err
    assert "azure: compute: creating cluster cpucluster (STANDARD_D2_V2, 0..4 nodes" in err
    assert "idle scale-down after 120 s" in err
    assert f"azure: submitted {name} to experiment sklearn-mnist\n" in err
    assert "azure: model: registered sklearn_mnist:1\n" in err


def test_second_run_reuses_compute_environment_and_data(repo, ml, capsys):
    service.train(ml, make_plan(repo))
    service.train(ml, make_plan(repo))
    assert len(ml.compute.created) == 1
    assert len(ml.environments.created) == 1
    assert len(ml.data.created) == 1  # unchanged data: no upload, no new version
    assert len(ml.models.registered) == 2
    err = capsys.readouterr().err
    assert "azure: compute: reusing cluster cpucluster" in err
    assert "(files unchanged, no upload)" in err


def test_changed_data_or_docker_gives_new_versions(repo, ml):
    first = make_plan(repo)
    service.train(ml, first)
    (repo / "docker" / "Dockerfile").write_text(
        (repo / "docker" / "Dockerfile").read_text() + "# changed\n"
    )
    from helpers.dataset import write_fake_mnist

    files = write_fake_mnist(repo / "data" / "raw", n_train=60, n_test=20, seed=1)
    write_params(repo / "params.yaml", {"download.files": files})
    second = make_plan(repo)
    service.train(ml, second)
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
        service.train(ml, make_plan(repo))
    (name,) = ml.jobs.jobs
    assert str(info.value) == (
        f"Azure ML job {name} ended Failed: https://studio.invalid/runs/{name}"
    )
    err = capsys.readouterr().err
    streamed, tail = err.split(f"azure: --- last 40 lines of the log of job {name} ---\n")
    assert "log line 0\n" in streamed  # the SDK streamed the log (to stderr, not stdout)
    assert "Traceback: ValueError: boom" in tail
    assert "log line 99" in tail and "log line 60" not in tail  # the last 40 lines only
    assert (repo / "models" / "model.skops").read_bytes() == b"the user's previous model"
    assert not ml.models.registered


def test_ctrl_c_leaves_the_job_running_and_says_how_to_follow(repo, ml, capsys):
    """The SDK's stream turns Ctrl-C into a JobException; follow turns it back into Ctrl-C."""
    ml.jobs.script = "interrupt"
    with pytest.raises(KeyboardInterrupt):
        service.train(ml, make_plan(repo))
    (name,) = ml.jobs.jobs
    err = capsys.readouterr().err
    assert f"make remote-status JOB={name}" in err
    assert f"make remote-cancel JOB={name}" in err
    assert f"make remote-fetch JOB={name}" in err
    assert "ended" not in err and "JobStatus" not in err
    assert ("begin_cancel", name) not in ml.jobs.calls
    assert ("download", name) not in ml.jobs.calls  # the SDK would refuse: it is running
    assert ml.jobs.jobs[name].status.value == "Running"
    assert not list((repo / "models").glob("model.*")) and not ml.models.registered


def test_stream_returning_before_the_job_ended_downloads_nothing(repo, ml, capsys):
    ml.jobs.script = "cancel-requested"
    with pytest.raises(MnistReproError, match=r"is CancelRequested, not finished: nothing"):
        service.train(ml, make_plan(repo))
    (name,) = ml.jobs.jobs
    assert ("download", name) not in ml.jobs.calls
    assert f"make remote-status JOB={name}" in capsys.readouterr().err


def test_the_fake_download_refuses_a_running_job_as_the_sdk_does(repo, ml, tmp_path):
    from azure.ai.ml.exceptions import JobException

    ml.jobs.script = "interrupt"
    with pytest.raises(KeyboardInterrupt):
        service.train(ml, make_plan(repo))
    (name,) = ml.jobs.jobs
    with pytest.raises(JobException, match=r"This job is in state JobStatus.RUNNING\. Download"):
        ml.jobs.download(name, download_path=str(tmp_path))


def test_output_without_model_changes_nothing(repo, ml):
    ml.jobs.model_files = {"model.json": b"{}"}
    with pytest.raises(MnistReproError, match=r"has no model\.skops; nothing in .* was changed"):
        service.train(ml, make_plan(repo))
    assert not (repo / "models" / "model.json").exists()
    assert not list((repo / "build" / "azureml" / "downloads").iterdir())  # no leftovers


def test_existing_compute_of_another_kind_is_refused(repo, ml):
    from types import SimpleNamespace

    ml.compute.clusters["cpucluster"] = SimpleNamespace(name="cpucluster", type="computeinstance")
    with pytest.raises(MnistReproError, match="not an AmlCompute cluster"):
        service.train(ml, make_plan(repo))
    assert not ml.jobs.jobs


def test_sweep_registers_the_best_trial(repo, ml, capsys):
    best = service.sweep(ml, make_plan(repo, sweep=True))
    (parent,) = [n for n, j in ml.jobs.jobs.items() if j.spec is not None]
    assert type(ml.jobs.jobs[parent].spec).__name__ == "SweepJob"
    assert best != parent and ml.jobs.jobs[parent].properties["best_child_run_id"] == best
    (model,) = ml.models.registered
    assert model.path == f"azureml://jobs/{best}/outputs/model"
    assert model.tags["accuracy"] == "0.95" and model.tags["regularization"] == "0.1"
    assert capsys.readouterr().out.startswith(f"best trial {best}: accuracy = 0.95")
    assert not list((repo / "models").glob("model.*"))  # a sweep registers; models/ untouched


def test_an_unpinned_base_is_refused_before_anything_is_created(repo, ml):
    dockerfile = repo / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("@sha256:" + "ab" * 32, ""))
    with pytest.raises(MnistReproError, match=r"is not pinned by digest .*make docker-base-dig"):
        service.train(ml, make_plan(repo))
    assert not ml.compute.created and not ml.environments.created and not ml.jobs.jobs


def test_fetch_a_job_submitted_without_waiting(repo, ml, capsys):
    """--no-wait, then fetch: the same model in models/, registered, as a followed run."""
    plan = make_plan(repo)
    ml.jobs.script = "interrupt"
    with pytest.raises(KeyboardInterrupt):
        service.train(ml, plan)
    (name,) = ml.jobs.jobs
    with pytest.raises(MnistReproError, match=f"job {name} is Running: nothing to fetch"):
        service.fetch(ml, plan, name)
    assert ("download", name) not in ml.jobs.calls
    ml.jobs.script = "complete"
    ml.jobs.stream(name)  # the job goes on and completes
    written = service.fetch(ml, plan, name)
    assert [p.name for p in written] == ["model.skops", "model.json"]
    for file_name, data in ml.jobs.model_files.items():
        assert (repo / "models" / file_name).read_bytes() == data
    (model,) = ml.models.registered
    assert model.path == f"azureml://jobs/{name}/outputs/model"
    assert "(make remote-fetch)" in model.description


def test_fetch_refuses_a_job_trained_with_other_params(repo, ml):
    from helpers.params import write_params

    name = service.train(ml, make_plan(repo))
    write_params(repo / "params.yaml", {"train.regularization": 0.1})
    with pytest.raises(MnistReproError, match=r"train.regularization=0.5 \(here 0.1\)"):
        service.fetch(ml, make_plan(repo), name)


def test_smoke_runs_the_train_command_on_synthetic_data(repo, ml, capsys):
    """The same command, image and compute; its own data asset; nothing registered; models/
    untouched. The stand-in runs the command as a node would (PYTHONPATH, MLflow, output)."""
    ml.jobs.execute = True
    plan = make_plan(repo, smoke=True)
    assert plan.job.command == make_plan(repo).job.command
    assert plan.environment.version == make_plan(repo).environment.version
    name = service.smoke(ml, plan)
    assert [d.name for d in ml.data.created] == ["mnist_opendataset_smoke"]
    assert not ml.models.registered and not list((repo / "models").glob("model.*"))
    out = capsys.readouterr().out
    assert out.startswith(f"smoke job {name}: completed in ")
    assert "MLflow run metrics: accuracy = " in out and "regularization rate = 0.5" in out
    assert "output uploaded and downloaded: model.skops, model.json" in out
    assert (repo / "build" / "azureml" / "smoke" / "model" / "model.skops").is_file()
