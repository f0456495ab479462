"""`python -m mnist_repro azure <action>`: config, credential and MLflow checked first, dry runs,
and each action against a stand-in for MLClient's operations (the network boundary only)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from azure.ai.ml import load_job

from helpers.azure import FakeMLClient, azure_repo, enter_azure_repo
from mnist_repro.azure import service
from mnist_repro.azure.entities import make_plan
from mnist_repro.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::Warning:azure.*", "ignore::Warning:marshmallow.*")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    return enter_azure_repo(tmp_path, monkeypatch)


@pytest.fixture
def ml(tmp_path, monkeypatch):
    ml = FakeMLClient(tmp_path / "mlruns")
    monkeypatch.setattr(service, "client", lambda cfg, credential=None: ml)
    return ml


def test_cli_dry_run_needs_config_but_no_credential_or_data(tmp_path, monkeypatch, capsys):
    repo = azure_repo(tmp_path / "repo", with_data=False)
    monkeypatch.chdir(repo)

    def no_credential_please():
        raise AssertionError("a dry run must not ask for a credential")

    monkeypatch.setattr(service, "default_credential", no_credential_please)
    assert main(["azure", "submit", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    for kind in ("compute", "environment", "data", "job"):
        assert f"  build/azureml/{kind}.yaml\n" in out
        assert f"  az ml {kind} create -f build/azureml/{kind}.yaml\n" in out
    assert err == ""  # the spec list is the result: stdout only
    job = load_job(repo / "build" / "azureml" / "job.yaml")
    assert job.command == make_plan(repo, need_data=False).remote_command
    assert main(["azure", "sweep", "--dry-run"]) == 0
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
    assert main(["azure", *action]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no Azure ML workspace config in ")
    assert "config.json" in err and ".azureml/config.json" in err and "config.example.json" in err
    assert not (repo / "build").exists()  # checked before any other work


def test_config_in_dot_azureml_and_bad_config(tmp_path, monkeypatch, capsys):
    repo = azure_repo(tmp_path / "repo", with_data=False, with_config=False)
    monkeypatch.chdir(repo)
    (repo / ".azureml").mkdir()
    (repo / ".azureml" / "config.json").write_text('{"subscription_id": "s"}')
    assert main(["azure", "submit", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert ".azureml/config.json: missing or empty resource_group, workspace_name" in err
    (repo / ".azureml" / "config.json").write_text((repo / "config.example.json").read_text())
    assert main(["azure", "submit", "--dry-run"]) == 0


def test_cli_without_credential_says_how_to_log_in(tmp_path, monkeypatch, capsys):
    from azure.identity import EnvironmentCredential

    repo = azure_repo(tmp_path / "repo", with_data=False)
    monkeypatch.chdir(repo)
    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    # a real azure-identity credential that finds nothing (no network needed to say so)
    monkeypatch.setattr(service, "default_credential", EnvironmentCredential)
    assert main(["azure", "submit"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no Azure credential found: run `az login`")
    assert err.count("\n") == 1
    assert not (repo / "build").exists()


def test_cli_missing_config_exit_code_in_a_subprocess(tmp_path):
    repo = azure_repo(tmp_path / "repo", with_data=False, with_config=False)
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_repro", "azure", "submit", "--dry-run"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "create config.json" in proc.stderr


def test_cli_without_mlflow_says_what_to_install(tmp_path, monkeypatch, capsys):
    repo = azure_repo(tmp_path / "repo", with_data=False)
    monkeypatch.chdir(repo)
    monkeypatch.setitem(sys.modules, "azureml.mlflow", None)  # as if not installed

    def no_client(cfg):
        raise AssertionError("checked before connecting")

    monkeypatch.setattr(service, "client", no_client)
    assert main(["azure", "metrics", "job1"]) == 1
    assert "needs mlflow-skinny and azureml-mlflow" in capsys.readouterr().err


ML = "Microsoft.MachineLearningServices/workspaces"
DATA_SCIENTIST = {  # the built-in role "AzureML Data Scientist", as the permissions API lists it
    "actions": [f"{ML}/*/read", f"{ML}/*/action", f"{ML}/*/delete", f"{ML}/*/write"],
    "notActions": [
        f"{ML}/delete",
        f"{ML}/write",
        f"{ML}/computes/*/write",
        f"{ML}/computes/*/delete",
        f"{ML}/computes/listKeys/action",
        f"{ML}/listKeys/action",
    ],
}
COMPUTE_OPERATOR = {"actions": [f"{ML}/computes/*", f"{ML}/notebooks/vm/*"], "notActions": []}


@pytest.fixture
def granted(monkeypatch):
    """The permissions API's answer for the signed-in user (set ``granted["value"]``)."""
    answer = {"value": [DATA_SCIENTIST]}
    monkeypatch.setattr(service, "check_credential", lambda: object())
    monkeypatch.setattr(service, "fetch_permissions", lambda credential, scope: answer)
    return answer


def test_check_names_the_role_that_may_create_the_compute(repo, ml, granted, capsys):
    """A Data Scientist cannot create compute: check says so before a run fails halfway."""
    assert main(["azure", "check"]) == 1
    out, err = capsys.readouterr()
    assert "workspace my-workspace: readable (config.json)" in out
    assert "compute cpucluster: not there yet, the first run creates it" in out
    assert err.count("\n") == 1 and err.startswith("error: workspace my-workspace: your role")
    assert "workspaces/computes/write (create the compute cluster)" in err
    assert "ask for AzureML Compute Operator (or Contributor)" in err
    granted["value"] = [DATA_SCIENTIST, COMPUTE_OPERATOR]
    assert main(["azure", "check"]) == 0
    assert "permissions: all 7 actions a run needs are granted" in capsys.readouterr().out


def test_check_with_an_existing_cluster_needs_no_compute_write(repo, ml, granted, capsys):
    ml.compute.clusters["cpucluster"] = make_plan(repo).compute
    assert main(["azure", "check"]) == 0
    out = capsys.readouterr().out
    assert "compute cpucluster: exists (STANDARD_D2_V2, 0..4 nodes)" in out
    assert "permissions: all 6 actions a run needs are granted" in out
    assert "container registry: acr1" in out


def test_check_warns_when_the_first_build_must_create_a_registry(repo, ml, granted, capsys):
    granted["value"] = [{"actions": ["*"], "notActions": []}]
    ml.registry = None
    assert main(["azure", "check"]) == 0
    err = capsys.readouterr().err
    assert "has no container registry yet: the first image build creates one" in err
    assert "az ml workspace update --container-registry" in err


def test_check_reader_lacks_every_write(repo, ml, granted, capsys):
    granted["value"] = [{"actions": ["*/read"], "notActions": []}]
    assert main(["azure", "check"]) == 1
    err = capsys.readouterr().err
    for action in ("computes/write", "jobs/write", "environments/write", "data/write"):
        assert f"workspaces/{action} (" in err


def test_check_of_a_workspace_that_is_not_there(repo, ml, granted, capsys):
    from azure.core.exceptions import ResourceNotFoundError

    def not_found(name):
        raise ResourceNotFoundError(message="not found")

    ml.workspaces.get = not_found
    assert main(["azure", "check"]) == 1
    err = capsys.readouterr().err
    assert "workspace my-workspace not found in resource group my-resource-group" in err


def test_permissions_come_from_the_arm_permissions_api(tmp_path):
    """fetch_permissions through azure-core, answered in-process: the URL and the pages."""
    from helpers.azure import WS_ID, FakeCredential, FakeService, transport

    svc = FakeService()
    svc.permissions = {"value": [DATA_SCIENTIST]}
    got = service.fetch_permissions(FakeCredential(), WS_ID, transport=transport(svc))
    assert got == {"value": [DATA_SCIENTIST]}
    assert svc.log == [
        f"GET https://management.azure.com{WS_ID}/providers/Microsoft.Authorization/permissions"
    ]


def test_ctrl_c_through_the_cli_exits_130(repo, ml, capsys):
    """The real SDK stream raises JobException from the KeyboardInterrupt: exit 130, the
    follow/cancel hint, no download attempt."""
    ml.jobs.script = "interrupt"
    assert main(["azure", "submit"]) == 130
    (name,) = ml.jobs.jobs
    out, err = capsys.readouterr()
    assert f"make remote-status JOB={name}" in err and f"make remote-cancel JOB={name}" in err
    assert err.endswith("error: interrupted\n")
    assert ("download", name) not in ml.jobs.calls
    assert "RunId:" not in out  # the SDK's streamed log went to stderr


def test_status_cancel_metrics_delete_through_the_cli(repo, ml, capsys):
    name = service.train(ml, make_plan(repo))
    capsys.readouterr()
    assert main(["azure", "metrics", name]) == 0
    assert capsys.readouterr().out.splitlines() == ["accuracy: 0.9125", "regularization rate: 0.5"]
    assert main(["azure", "status", name]) == 0
    assert f"job {name}: Completed" in capsys.readouterr().out
    assert main(["azure", "cancel", name]) == 0
    assert "already ended: Completed" in capsys.readouterr().out
    assert main(["azure", "submit", "--no-wait"]) == 0
    running = list(ml.jobs.jobs)[-1]
    assert f"make remote-status JOB={running}" in capsys.readouterr().out
    assert main(["azure", "cancel", running]) == 0
    assert ("begin_cancel", running) in ml.jobs.calls
    assert main(["azure", "status", running]) == 1
    assert "ended Canceled" in capsys.readouterr().err
    assert main(["azure", "delete-compute"]) == 0
    assert ml.compute.deleted == ["cpucluster"]
    assert capsys.readouterr().out == "compute: deleted cluster cpucluster\n"
    assert main(["azure", "delete-compute"]) == 0
    assert "nothing to delete" in capsys.readouterr().out
    assert main(["azure", "status", "no-such-job"]) == 1
    assert capsys.readouterr().err.startswith(
        "error: job no-such-job not found in workspace my-workspace"
    )


def test_metrics_of_a_job_without_metrics_warns_on_stderr(repo, ml, capsys):
    ml.jobs.metrics = {}
    name = service.train(ml, make_plan(repo))
    capsys.readouterr()
    assert main(["azure", "metrics", name]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "logged no metrics" in err
