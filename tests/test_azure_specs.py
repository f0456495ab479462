"""The Azure ML entities, built with the real SDK offline, and the dry run's YAML specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from azure.ai.ml import load_compute, load_data, load_environment, load_job

from azure_support import azure_repo
from mnist_repro.azure import specs
from mnist_repro.azure.plan import make_plan, write_specs
from mnist_repro.cli import main
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
    assert (job.objective.primary_metric, job.objective.goal) == ("accuracy", "maximize")
    assert job.limits.max_concurrent_trials == 3 and job.limits.max_total_trials == len(values)
    first, train = job.trial.command.split(" && ")
    assert first == (
        "python -m mnist_repro.azure.set_param params.yaml "
        "${TMPDIR:-/tmp}/mnist-repro-trial-params.yaml "
        f"{plan.settings.sweep.param}=${{{{search_space.regularization}}}}"
    )
    params = " --params ${TMPDIR:-/tmp}/mnist-repro-trial-params.yaml"
    assert train == _expected_remote_command(repo) + params


def test_remote_command_rejects_commands_it_cannot_map():
    with pytest.raises(MnistReproError, match="exactly one '--out <folder>'"):
        specs.remote_train_command("python -m mnist_repro train --data data/raw")
    with pytest.raises(MnistReproError, match="shell quoting"):
        specs.remote_train_command("python -m mnist_repro train --data 'a b' --out models")


def test_dvc_yaml_without_train_stage(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  decode:\n    cmd: x\n")
    with pytest.raises(MnistReproError, match=r"dvc\.yaml: no 'train' stage"):
        specs.local_train_command(tmp_path / "dvc.yaml")


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


def test_cli_dry_run_needs_config_but_no_credential_or_data(tmp_path, monkeypatch, capsys):
    repo = azure_repo(tmp_path / "repo", with_data=False)
    monkeypatch.chdir(repo)
    import mnist_repro.azure.config as config

    def no_credential_please():
        raise AssertionError("a dry run must not ask for a credential")

    monkeypatch.setattr(config, "default_credential", no_credential_please)
    assert main(["remote", "submit", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in ("compute.yaml", "environment.yaml", "data.yaml", "job.yaml"):
        assert f"build/azureml/{name}" in out
    job = load_job(repo / "build" / "azureml" / "job.yaml")
    assert job.command == _expected_remote_command(repo)
    assert main(["remote", "sweep", "--dry-run"]) == 0
    assert load_job(repo / "build" / "azureml" / "sweep.yaml").type == "sweep"


@pytest.mark.parametrize(
    "action",
    [
        ["submit", "--dry-run"],
        ["submit"],
        ["sweep"],
        ["status", "job1"],
        ["delete-compute"],
        ["check"],
    ],
)
def test_cli_without_config_says_what_to_create(tmp_path, monkeypatch, capsys, action):
    repo = azure_repo(tmp_path / "repo", with_data=False, with_config=False)
    monkeypatch.chdir(repo)
    assert main(["remote", *action]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no Azure ML workspace config in ")
    assert "config.json" in err and ".azureml/config.json" in err and "config.example.json" in err
    assert not (repo / "build").exists()  # checked before any other work


def test_config_in_dot_azureml_and_bad_config(tmp_path, monkeypatch, capsys):
    repo = azure_repo(tmp_path / "repo", with_data=False, with_config=False)
    monkeypatch.chdir(repo)
    (repo / ".azureml").mkdir()
    (repo / ".azureml" / "config.json").write_text('{"subscription_id": "s"}')
    assert main(["remote", "submit", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert ".azureml/config.json: missing or empty resource_group, workspace_name" in err
    (repo / ".azureml" / "config.json").write_text((repo / "config.example.json").read_text())
    assert main(["remote", "submit", "--dry-run"]) == 0


def test_cli_without_credential_says_how_to_log_in(tmp_path, monkeypatch, capsys):
    from azure.identity import EnvironmentCredential

    import mnist_repro.azure.config as config

    repo = azure_repo(tmp_path / "repo", with_data=False)
    monkeypatch.chdir(repo)
    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    # a real azure-identity credential that finds nothing (no network needed to say so)
    monkeypatch.setattr(config, "default_credential", EnvironmentCredential)
    assert main(["remote", "submit"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no Azure credential found: run `az login`")
    assert err.count("\n") == 1
    assert not (repo / "build").exists()


def test_cli_missing_config_exit_code_in_a_subprocess(tmp_path):
    repo = azure_repo(tmp_path / "repo", with_data=False, with_config=False)
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_repro", "remote", "submit", "--dry-run"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "create config.json" in proc.stderr


def test_local_pipeline_never_imports_azure():
    code = (
        "import sys; from mnist_repro.cli import build_parser; build_parser('decode'); "
        "import mnist_repro.azure.settings, mnist_repro.azure.set_param, mnist_repro.content_hash; "
        "print(sorted(m for m in sys.modules if m.startswith(('azure.', 'mlflow'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_set_param_rewrites_the_trials_params(tmp_path, monkeypatch):
    from mnist_repro.azure.set_param import main as set_param_main

    text = "train:\n  regularization: 0.5\n  seed: 1\nother: 2\n"
    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert set_param_main(["params.yaml", "trial.yaml", "train.regularization=0.01"]) == 0
    assert (tmp_path / "params.yaml").read_text() == text  # the code folder is left alone
    assert yaml.safe_load((tmp_path / "trial.yaml").read_text()) == {
        "train": {"regularization": 0.01, "seed": 1},
        "other": 2,
    }
    assert set_param_main(["params.yaml", "trial.yaml", "train.nope=1"]) == 1
    assert set_param_main(["train.regularization=1"]) == 2


def test_cli_without_mlflow_says_what_to_install(tmp_path, monkeypatch, capsys):
    import mnist_repro.azure.cli as remote_cli

    repo = azure_repo(tmp_path / "repo", with_data=False)
    monkeypatch.chdir(repo)
    monkeypatch.setitem(sys.modules, "azureml.mlflow", None)  # as if not installed

    def no_client(cfg):
        raise AssertionError("checked before connecting")

    monkeypatch.setattr(remote_cli, "client", no_client)
    assert main(["remote", "metrics", "job1"]) == 1
    assert "needs mlflow-skinny and azureml-mlflow" in capsys.readouterr().err
