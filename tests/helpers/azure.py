"""The Azure ML tests' helpers: a repo copy with data, and a stand-in for MLClient's operations.

The stand-in replaces only the network boundary (the operations an ``azure.ai.ml.MLClient``
exposes); everything above it is the real code. It raises the SDK's own exceptions
(ResourceNotFoundError, JobException) where the service would, writes downloads in the
layout ``MLClient.jobs.download`` uses, and records metrics in a real (local) MLflow store.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from azure.ai.ml.exceptions import ErrorTarget, JobException
from azure.core.exceptions import ResourceNotFoundError

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import copy_repo

SAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config.example.json"


def azure_repo(dest: Path, with_data: bool = True, with_config: bool = True) -> Path:
    """A git copy of the repo, with synthetic data/raw (pinned in params) and a config.json."""
    repo = copy_repo(dest)
    if with_data:
        files = write_fake_mnist(repo / "data" / "raw", n_train=60, n_test=20)
        write_params(repo / "params.yaml", {"download.files": files})
    if with_config:
        shutil.copy(SAMPLE_CONFIG, repo / "config.json")
    return repo


def enter_azure_repo(tmp_path: Path, monkeypatch: Any) -> Path:
    """:func:`azure_repo` as the working folder, with MLflow's file store allowed and none of
    the tutorial's AML_COMPUTE_CLUSTER_* variables leaking in from the caller's shell."""
    repo = azure_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for suffix in ("NAME", "MIN_NODES", "MAX_NODES", "SKU"):
        monkeypatch.delenv(f"AML_COMPUTE_CLUSTER_{suffix}", raising=False)
    return repo


def _not_found(what: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(message=f"{what} not found")


@dataclass
class Poller:
    value: Any = None

    def result(self) -> Any:
        return self.value


@dataclass
class FakeJob:
    name: str
    spec: Any
    status: str = "Queued"
    studio_url: str = ""
    properties: dict = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)  # files of output "model"
    log: str = ""


class FakeJobs:
    """``MLClient.jobs``. ``script`` says how the next submitted job ends."""

    def __init__(self, mlflow_uri: str, data: FakeAssets) -> None:
        self.mlflow_uri = mlflow_uri
        self.data = data
        self.execute = False  # True: run the job's command here, as a compute node would
        self.jobs: dict[str, FakeJob] = {}
        self.calls: list[tuple[str, str]] = []
        self.script = "complete"
        self.metrics = {"accuracy": 0.9125, "regularization rate": 0.5}
        self.model_files = {"model.skops": b"skops-bytes\x00\x01", "model.json": b'{"n": 1}\n'}

    def _new_run(self) -> str:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.mlflow_uri)
        experiment = client.get_experiment_by_name("sklearn-mnist") or None
        exp_id = (
            experiment.experiment_id if experiment else client.create_experiment("sklearn-mnist")
        )
        return client.create_run(exp_id).info.run_id  # Azure ML job name == MLflow run id

    def _log(self, name: str, metrics: dict[str, float]) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.mlflow_uri)
        for key, value in metrics.items():
            client.log_metric(name, key, value)

    def create_or_update(self, job: Any, **kwargs: Any) -> FakeJob:
        name = self._new_run()
        self.jobs[name] = FakeJob(name, job, studio_url=f"https://studio.invalid/runs/{name}")
        self.calls.append(("create_or_update", name))
        return self.jobs[name]

    def get(self, name: str) -> FakeJob:
        if name not in self.jobs:
            raise _not_found(f"job {name}")
        return self.jobs[name]

    def stream(self, name: str) -> None:
        self.calls.append(("stream", name))
        job = self.get(name)
        if self.script == "interrupt":
            raise KeyboardInterrupt
        job.status = "Running"
        job.log = "".join(f"log line {i}\n" for i in range(100))
        if self.script == "fail":
            job.status = "Failed"
            job.log += "Traceback: ValueError: boom\n"
            raise JobException(
                message="failed", no_personal_data_message="failed", target=ErrorTarget.JOB
            )
        if self.script == "running":
            return
        job.status = "Completed"
        if type(job.spec).__name__ == "SweepJob":
            # one trial stands for the grid: the last value, reported as the best
            best = self._new_run()
            if self.execute:
                value = job.spec.search_space["regularization"].values[-1]
                outputs = self._run_command(best, job.spec, {"regularization": value})
            else:
                outputs = dict(self.model_files)
                self._log(best, {"accuracy": 0.95, "regularization rate": 0.1})
            self.jobs[best] = FakeJob(best, None, "Completed", outputs=outputs)
            job.properties["best_child_run_id"] = best
        elif self.execute:
            job.outputs = self._run_command(name, job.spec)
        else:
            job.outputs = dict(self.model_files)
            self._log(name, self.metrics)

    def _run_command(
        self, name: str, spec: Any, search_space: dict[str, Any] | None = None
    ) -> dict[str, bytes]:
        """Run the job's (or a sweep trial's) command in its code folder, as a node would.

        Inputs resolve to the registered data asset's files, the output to an empty folder;
        the environment is the job's variables plus what Azure ML sets for MLflow.
        """
        job = spec if type(spec).__name__ == "SweepJob" else spec._to_job()
        trial = job.trial if type(spec).__name__ == "SweepJob" else job
        asset_name, version = job.inputs["data"].path.removeprefix("azureml:").split(":")
        data_path = str(Path(self.data.get(asset_name, version=version).path).resolve())
        code = Path(trial.code).resolve()
        out = code.parent / f"outputs-{name}"
        out.mkdir()
        scratch = out.parent / f"tmp-{name}"
        scratch.mkdir()
        command = trial.command.replace("${{inputs.data}}", data_path)
        command = command.replace("${{outputs.model}}", str(out))
        for key, value in (search_space or {}).items():
            command = command.replace(f"${{{{search_space.{key}}}}}", str(value))
        assert "${{" not in command, command
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "TMPDIR": str(scratch),  # a node's scratch space; trials write their params copy here
            **trial.environment_variables,
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MLFLOW_RUN_ID": name,
            "MLFLOW_ALLOW_FILE_STORE": "true",
            "AZUREML_RUN_ID": name,
        }
        proc = subprocess.run(
            command, shell=True, cwd=code, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise AssertionError(f"job command failed: {command}\n{proc.stdout}\n{proc.stderr}")
        if search_space:
            trial_params = scratch / "mnist-repro-trial-params.yaml"
            assert trial_params.is_file(), "the trial did not write its own params copy"
        return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def download(
        self,
        name: str,
        *,
        download_path: str = ".",
        output_name: str | None = None,
        all: bool = False,
    ) -> None:
        self.calls.append(("download", name))
        job = self.get(name)
        if job.status not in ("Completed", "Failed", "Canceled"):
            raise JobException(
                message="not terminal",
                no_personal_data_message="not terminal",
                target=ErrorTarget.JOB,
            )
        root = Path(download_path)
        if output_name:
            for file_name, data in job.outputs.items():
                path = root / "named-outputs" / output_name / file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        else:
            path = root / "artifacts" / "user_logs" / "std_log.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(job.log)

    def begin_cancel(self, name: str) -> Poller:
        self.calls.append(("begin_cancel", name))
        self.get(name).status = "Canceled"
        return Poller()


class FakeAssets:
    """``MLClient.environments`` / ``MLClient.data``: assets by (name, version)."""

    def __init__(self) -> None:
        self.assets: dict[tuple[str, str], Any] = {}
        self.created: list[Any] = []

    def get(self, name: str, version: str | None = None) -> Any:
        if (name, version) not in self.assets:
            raise _not_found(f"{name}:{version}")
        return self.assets[name, version]

    def create_or_update(self, asset: Any) -> Any:
        self.created.append(asset)
        self.assets[asset.name, asset.version] = asset
        return asset


class FakeCompute:
    def __init__(self) -> None:
        self.clusters: dict[str, Any] = {}
        self.created: list[Any] = []
        self.deleted: list[str] = []

    def get(self, name: str) -> Any:
        if name not in self.clusters:
            raise _not_found(f"compute {name}")
        return self.clusters[name]

    def begin_create_or_update(self, compute: Any) -> Poller:
        self.created.append(compute)
        self.clusters[compute.name] = compute
        return Poller(compute)

    def begin_delete(self, name: str) -> Poller:
        self.deleted.append(name)
        del self.clusters[name]
        return Poller()


class FakeModels:
    def __init__(self) -> None:
        self.registered: list[Any] = []
        self._versions = itertools.count(1)

    def create_or_update(self, model: Any) -> Any:
        self.registered.append(model)
        return SimpleNamespace(name=model.name, version=str(next(self._versions)))


class FakeMLClient:
    """Stands in for ``azure.ai.ml.MLClient`` at the network boundary."""

    def __init__(self, mlflow_dir: Path) -> None:
        uri = mlflow_dir.resolve().as_uri()
        self.workspace_name = "my-workspace"
        self.workspaces = SimpleNamespace(
            get=lambda name: SimpleNamespace(name=name, mlflow_tracking_uri=uri)
        )
        self.compute = FakeCompute()
        self.environments = FakeAssets()
        self.data = FakeAssets()
        self.jobs = FakeJobs(uri, self.data)
        self.models = FakeModels()
