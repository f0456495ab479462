"""The Azure ML entities, built with the real SDK offline, and the dry run's YAML specs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from azure.ai.ml import load_compute, load_data, load_environment, load_job

from helpers.azure import azure_repo
from mnist_repro.azure import entities
from mnist_repro.azure.entities import make_plan, write_specs
from mnist_repro.content_hash import tree_hash
from mnist_repro.errors import MnistReproError

pytestmark = pytest.mark.filterwarnings("ignore::Warning:azure.*", "ignore::Warning:marshmallow.*")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return azure_repo(tmp_path_factory.mktemp("azure") / "repo")


def _expected_remote_command(repo: Path) -> str:
    """dvc.yaml train cmd: data folder -> the job input, output folder -> the job output."""
    cmd = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["train"]["cmd"]
    tokens = cmd.split()
    tokens[tokens.index("--data") + 1] = "${{inputs.data}}"
    tokens[tokens.index("--out") + 1] = "${{outputs.model}}"
    return " ".join(tokens)


def test_job_runs_exactly_the_local_train_command(repo):
    plan = make_plan(repo, repo / "params.yaml")
    assert plan.job.command == _expected_remote_command(repo)
    assert plan.job.command.startswith("python -m mnist_repro train ")
    assert (
        plan.local_command.replace("data/raw", "${{inputs.data}}").replace(
            "models", "${{outputs.model}}"
        )
        == plan.job.command
    )
    assert plan.out_dir == repo / "models" and plan.data_dir == repo / "data" / "raw"


def test_job_inputs_outputs_code_and_metadata(repo):
    plan = make_plan(repo, repo / "params.yaml")
    job = plan.job._to_job()
    data = job.inputs["data"]
    assert (data.type, data.mode) == ("uri_folder", "ro_mount")
    assert data.path == f"azureml:mnist_opendataset:{plan.data_version}"
    assert job.outputs["model"].type == "uri_folder"
    assert job.environment == f"azureml:mnist-repro:{tree_hash(repo / 'docker')}"
    assert job.compute == "cpucluster" and job.experiment_name == "sklearn-mnist"
    assert job.environment_variables["PYTHONPATH"] == "src"
    assert job.environment_variables["MNIST_TRAIN_BACKEND"] == "local"
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert job.tags["git_commit"] == commit == job.environment_variables["MNIST_REPRO_GIT_COMMIT"]
    dirty = "+dirty" if job.tags["git_dirty"] == "True" else ""  # the copy's params were edited
    assert job.display_name == f"train {commit[:8]}{dirty} preset=fast regularization=0.5"
    assert job.tags["train.regularization"] == "0.5" and job.tags["train.preset"] == "fast"
    assert job.tags["data_version"] == plan.data_version
    # the code folder: the package and params.yaml, nothing else (small upload, no data)
    code = Path(job.code)
    files = sorted(p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file())
    assert "params.yaml" in files and "src/mnist_repro/cli.py" in files
    assert all(f == "params.yaml" or f.startswith("src/mnist_repro/") for f in files)
    assert not any("__pycache__" in f or f.endswith(".gz") for f in files)
    assert (code / "params.yaml").read_bytes() == (repo / "params.yaml").read_bytes()


def test_environment_builds_from_docker_folder(repo):
    env = make_plan(repo, repo / "params.yaml").environment
    assert Path(env.build.path) == repo / "docker"
    assert env.build.dockerfile_path == "Dockerfile"
    assert env.image is None  # built from the context, not a prebuilt image


def test_compute_spec(repo, monkeypatch):
    plan = make_plan(repo, repo / "params.yaml", environ={"AML_COMPUTE_CLUSTER_MAX_NODES": "2"})
    c = plan.compute
    assert (c.type, c.name, c.size, c.min_instances, c.max_instances) == (
        "amlcompute",
        "cpucluster",
        "STANDARD_D2_V2",
        0,
        2,
    )
    assert c.idle_time_before_scale_down == plan.settings.compute.idle_seconds


def test_sweep_spec(repo):
    plan = make_plan(
        repo, repo / "params.yaml", sweep=True, environ={"AML_COMPUTE_CLUSTER_MAX_NODES": "3"}
    )
    job = plan.job
    values = list(plan.settings.sweep.values)
    assert job.search_space["regularization"].values == values
    assert job.sampling_algorithm == "grid"
    assert (job.objective.primary_metric, job.objective.goal) == ("val_accuracy", "maximize")
    assert job.limits.max_concurrent_trials == 3 and job.limits.max_total_trials == len(values)
    first, train = job.trial.command.split(" && ")
    assert first == (
        "python -m mnist_repro.azure.job set-param params.yaml "
        "${TMPDIR:-/tmp}/mnist-repro-trial-params.yaml "
        f"{plan.settings.sweep.param}=${{{{search_space.regularization}}}}"
    )
    params = " --select --params ${TMPDIR:-/tmp}/mnist-repro-trial-params.yaml"
    assert train == _expected_remote_command(repo) + params


def test_remote_command_rejects_commands_it_cannot_map():
    with pytest.raises(MnistReproError, match="exactly one '--out <folder>'"):
        entities.remote_train_command("python -m mnist_repro train --data data/raw")
    with pytest.raises(MnistReproError, match="shell quoting"):
        entities.remote_train_command("python -m mnist_repro train --data 'a b' --out models")


def test_dvc_yaml_without_train_stage(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  decode:\n    cmd: x\n")
    with pytest.raises(MnistReproError, match=r"dvc\.yaml: no 'train' stage"):
        entities.local_train_command(tmp_path / "dvc.yaml")


@pytest.mark.parametrize("sweep", [False, True])
def test_dry_run_specs_load_with_the_sdk_loaders(repo, tmp_path, sweep):
    plan = make_plan(repo, repo / "params.yaml", sweep=sweep)
    out = repo / "build" / "azureml"
    paths = write_specs(plan, out)
    assert [p.name for p in paths] == [
        "compute.yaml",
        "environment.yaml",
        "data.yaml",
        "sweep.yaml" if sweep else "job.yaml",
    ]
    assert "/" + repo.name + "/" not in "".join(p.read_text() for p in paths)  # portable paths
    compute = load_compute(paths[0])
    assert (compute.name, compute.max_instances) == ("cpucluster", 4)
    env = load_environment(paths[1])
    assert (out / env.build.path).resolve() == (repo / "docker").resolve()
    assert env.version == plan.environment_version
    data = load_data(paths[2])
    assert Path(data.path).resolve() == (repo / "data" / "raw").resolve()
    assert data.version == plan.data_version
    job = load_job(paths[3])
    trial = job.trial if sweep else job
    assert (out / trial.code).resolve() == (repo / "build" / "azureml" / "code").resolve()
    if sweep:
        assert job.search_space["regularization"].values == list(plan.settings.sweep.values)
    else:
        assert job.command == _expected_remote_command(repo)
        assert job.inputs["data"].path.removeprefix("azureml:") == (
            f"mnist_opendataset:{plan.data_version}"
        )


@pytest.mark.parametrize("smoke", [False, True])
def test_dry_run_specs_write_the_model_output_in_upload_mode(repo, smoke):
    """upload: local disk on the node, uploaded when the command ends (rw_mount is blobfuse,
    which supports neither chmod nor, reliably, the rename of an atomic write)."""
    plan = make_plan(repo, repo / "params.yaml", smoke=smoke)
    paths = write_specs(plan, plan.build_dir)
    job = load_job(paths[-1])
    assert (job.outputs["model"].type, job.outputs["model"].mode) == ("uri_folder", "upload")
    assert job.command == _expected_remote_command(repo)
    if smoke:
        assert paths[0].parent == repo / "build" / "azureml" / "smoke"
        data = load_data(paths[2])
        assert data.name == "mnist_opendataset_smoke"
        assert sorted(p.name for p in Path(plan.data_dir).iterdir()) == sorted(
            ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        )  # fmt: skip
        again = make_plan(repo, repo / "params.yaml", smoke=True)
        assert again.data_version == plan.data_version  # same synthetic bytes every time


def test_the_base_image_must_be_pinned_by_digest(tmp_path):
    docker = tmp_path / "docker"
    docker.mkdir()
    for line, pinned in [
        ("ARG BASE=mcr.microsoft.com/mirror/docker/library/python:3.11-slim", False),
        ("ARG BASE=python:3.11-slim@sha256:" + "0" * 63, False),
        ("ARG BASE=mcr.microsoft.com/mirror/python:3.11-slim@sha256:" + "a" * 64, True),
    ]:  # fmt: skip
        (docker / "Dockerfile").write_text(f"# x\n{line}\nFROM ${{BASE}}\n")
        assert entities.base_is_pinned(docker) is pinned, line
    (docker / "Dockerfile").write_text("FROM python:3.11\n")
    with pytest.raises(MnistReproError, match="no `ARG BASE=<image>` line"):
        entities.base_image(docker)


def test_the_repository_dockerfile_names_the_mcr_mirror():
    """No digest is committed until `make docker-base-digest` has resolved one."""
    from helpers.repo import REPO_ROOT

    base = entities.base_image(REPO_ROOT / "docker")
    assert base.startswith("mcr.microsoft.com/mirror/docker/library/python:3.11-slim")
    assert entities.base_is_pinned(REPO_ROOT / "docker") == ("@sha256:" in base)
