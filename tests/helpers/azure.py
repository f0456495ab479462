"""The Azure ML tests' helpers: a repo copy with data, and stand-ins at the network boundary.

- :class:`FakeMLClient` stands in for the operations an ``azure.ai.ml.MLClient`` exposes;
  everything above it is the real code. Where the SDK's behaviour matters it comes from the
  SDK itself: ``jobs.stream`` runs the SDK's real ``stream_logs_until_completion`` against a
  fake run-history client (so Ctrl-C and a failed job raise exactly what the SDK raises),
  statuses are the SDK's ``JobStatus`` enum, ``jobs.download`` refuses a job that has not
  ended with the SDK's own check and message, and writes the layout it uses. Metrics go to a
  real (local) MLflow store.
- :class:`FakeService` answers a *real* ``MLClient``'s HTTP requests in-process
  (:func:`real_client`): every line of the SDK runs, only the bytes on the wire are fake.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
import urllib3
from azure.ai.ml._restclient.arm_ml_service.models import JobStatus
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, JobException
from azure.ai.ml.operations import _job_ops_helper
from azure.ai.ml.operations._run_history_constants import RunHistoryConstants
from azure.core.credentials import AccessToken
from azure.core.exceptions import ResourceNotFoundError

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import copy_repo

SAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config.example.json"
# A digest for test copies only (the real one is resolved by `make docker-base-digest`).
TEST_BASE = "example.invalid/python:3.11-slim@sha256:" + "ab" * 32


def pin_test_base(repo: Path) -> None:
    """Pin the copy's Dockerfile base to :data:`TEST_BASE` (submissions refuse a tag)."""
    dockerfile = repo / "docker" / "Dockerfile"
    text = re.sub(r"(?m)^ARG BASE=\S*$", f"ARG BASE={TEST_BASE}", dockerfile.read_text())
    dockerfile.write_text(text)


def azure_repo(dest: Path, with_data: bool = True, with_config: bool = True) -> Path:
    """A git copy of the repo, with synthetic data/raw (pinned in params) and a config.json."""
    repo = copy_repo(dest)
    pin_test_base(repo)
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
    status: JobStatus = JobStatus.QUEUED  # the SDK's enum: str() gives "JobStatus.QUEUED"
    studio_url: str = ""
    properties: dict = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)  # files of output "model"
    log: str = ""

    @property
    def tags(self) -> dict[str, str]:
        return dict(getattr(self.spec, "tags", None) or {})

    @property
    def type(self) -> str:
        return "sweep" if type(self.spec).__name__ == "SweepJob" else "command"


class FakeRunOperations:
    """The run-history client ``stream_logs_until_completion`` polls (``get_run_details``).

    Each call takes the next item of ``script``: a status, which the job then has, or an
    exception to raise (a KeyboardInterrupt is Ctrl-C arriving while the SDK polls).
    """

    def __init__(self, job: FakeJob, script: list[Any]) -> None:
        self.job, self.script = job, list(script)

    def get_run_details(self, run_id: str) -> Any:
        item = self.script.pop(0) if self.script else self.job.status.value
        if isinstance(item, BaseException):
            raise item
        self.job.status = JobStatus(item)
        return SimpleNamespace(
            status=item,
            log_files={"user_logs/std_log.txt": f"https://logs.invalid/{run_id}"},
            warnings=None,
            error=None,
        )


class FakeLogPipeline:
    """The HTTP pipeline the SDK downloads log files with: serves the job's log."""

    def __init__(self, job: FakeJob) -> None:
        self.job = job

    def with_policies(self, **kwargs: Any) -> FakeLogPipeline:
        return self

    def get(self, url: str, **kwargs: Any) -> Any:
        return SimpleNamespace(status_code=200, text=lambda: self.job.log)


# The SDK waits 2 s or more between polls (time.sleep of its module): not here.
_job_ops_helper.time = SimpleNamespace(sleep=lambda seconds: None, time=time.time)


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
        """The SDK's own ``stream_logs_until_completion`` on a fake run history.

        ``script``: "complete", "fail" (the SDK raises its failed-job JobException),
        "interrupt" (Ctrl-C while polling: the SDK turns it into a JobException), or
        "cancel-requested" (the stream returns while the job is still being canceled).
        """
        self.calls.append(("stream", name))
        job = self.get(name)
        job.log = "".join(f"log line {i}\n" for i in range(100))
        statuses: list[Any] = {
            "interrupt": ["Running", KeyboardInterrupt()],
            "fail": ["Running", "Failed"],
            "cancel-requested": ["Running", "CancelRequested"],
        }.get(self.script, ["Running", "Completed"])
        if self.script == "fail":
            job.log += "Traceback: ValueError: boom\n"
        elif self.script not in ("interrupt", "cancel-requested"):
            self._complete(job)
        rest = SimpleNamespace(
            name=name,
            properties=SimpleNamespace(
                job_type="Sweep" if job.type == "sweep" else "Command",
                services={"Studio": SimpleNamespace(endpoint=job.studio_url)},
                properties={},
                outputs=None,
            ),
        )
        _job_ops_helper.stream_logs_until_completion(
            FakeRunOperations(job, statuses), rest, None, requests_pipeline=FakeLogPipeline(job)
        )

    def _complete(self, job: FakeJob) -> None:
        """What the job produces when it completes: outputs, metrics, a sweep's best trial."""
        if type(job.spec).__name__ == "SweepJob":
            # one trial stands for the grid: the last value, reported as the best
            best = self._new_run()
            if self.execute:
                value = job.spec.search_space["regularization"].values[-1]
                outputs = self._run_command(best, job.spec, {"regularization": value})
            else:
                outputs = dict(self.model_files)
                self._log(best, {"accuracy": 0.95, "regularization rate": 0.1})
            self.jobs[best] = FakeJob(best, None, JobStatus.COMPLETED, outputs=outputs)
            job.properties["best_child_run_id"] = best
        elif self.execute:
            job.outputs = self._run_command(job.name, job.spec)
        else:
            job.outputs = dict(self.model_files)
            self._log(job.name, self.metrics)

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
        if job.status not in RunHistoryConstants.TERMINAL_STATUSES:  # the SDK's own check
            allowed = RunHistoryConstants.TERMINAL_STATUSES
            msg = f"This job is in state {job.status}. Download is allowed only in states {allowed}"
            raise JobException(
                message=msg,
                target=ErrorTarget.JOB,
                no_personal_data_message=msg,
                error_category=ErrorCategory.USER_ERROR,
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
        self.get(name).status = JobStatus.CANCELED
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
        self.registry: str | None = "/subscriptions/s/resourceGroups/rg/providers/registries/acr1"
        self.workspaces = SimpleNamespace(
            get=lambda name: SimpleNamespace(
                name=name,
                id=f"/subscriptions/s/resourceGroups/rg/providers/ws/{name}",
                mlflow_tracking_uri=uri,
                container_registry=self.registry,
            )
        )
        self.compute = FakeCompute()
        self.environments = FakeAssets()
        self.data = FakeAssets()
        self.jobs = FakeJobs(uri, self.data)
        self.models = FakeModels()


# --- a real MLClient over an in-process transport -----------------------------------------------

SUB, RG, WS = "00000000-0000-0000-0000-000000000000", "my-resource-group", "my-workspace"
API = "https://api.fake.invalid"
WS_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}"
    f"/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
)


class FakeCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


def _job_json(name: str, status: str) -> dict[str, Any]:
    return {
        "id": f"{WS_ID}/jobs/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/jobs",
        "properties": {
            "jobType": "Command",
            "status": status,
            "command": "python -m mnist_repro train",
            "environmentId": f"{WS_ID}/environments/env/versions/1",
            "computeId": f"{WS_ID}/computes/cpucluster",
            "experimentName": "sklearn-mnist",
            "properties": {},
            "services": {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}"}},
            "outputs": {},
        },
    }


class FakeService(requests.adapters.BaseAdapter):
    """Azure Resource Manager, run history and the data plane, answered in-process.

    Mounted on a ``requests.Session`` behind a real ``MLClient`` (:func:`real_client`). It
    knows the requests ``jobs.get``, ``jobs.stream`` and ``jobs.download`` make; ``log`` lists
    every request as ``METHOD url``. ``details`` scripts the run-history statuses that
    ``jobs.stream`` polls (a KeyboardInterrupt raised there is Ctrl-C while waiting on it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.status: dict[str, str] = {}
        self.details: list[Any] = []
        self.permissions: dict[str, Any] = {"value": []}

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        self.log.append(f"{request.method} {request.url.split('?')[0]}")
        status, body = self.route(request)
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response = requests.Response()
        response.status_code = status
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(data),
            status=status,
            preload_content=False,
            headers={"Content-Type": "application/json", "Content-Length": str(len(data))},
        )
        response.headers = requests.structures.CaseInsensitiveDict(response.raw.headers)
        response.url, response.request = request.url, request
        response.reason = "OK" if status < 400 else "Error"
        return response

    def close(self) -> None:
        pass

    def route(self, r: Any) -> tuple[int, Any]:
        url = r.url.split("?")[0]
        if url.endswith("/providers/Microsoft.Authorization/permissions"):
            return 200, self.permissions
        if m := re.search(rf"/workspaces/{WS}/jobs/([^/]+)$", url):
            if m[1] not in self.status:
                return 404, {"error": {"code": "NotFound", "message": f"job {m[1]} not found"}}
            return 200, _job_json(m[1], self.status[m[1]])
        if url.endswith(f"/workspaces/{WS}"):
            return 200, {
                "id": WS_ID,
                "name": WS,
                "location": "westeurope",
                "properties": {
                    "discoveryUrl": f"{API}/discovery",
                    "mlFlowTrackingUri": "azureml://westeurope.api.azureml.ms/mlflow/v1.0",
                },
            }
        if url == f"{API}/discovery":
            return 200, {"api": API}
        if m := re.search(r"/runs/([^/]+)/details$", url):
            item = self.details.pop(0) if self.details else self.status[m[1]]
            if isinstance(item, BaseException):
                raise item
            self.status[m[1]] = item
            logs = {"user_logs/std_log.txt": f"{API}/logs/{m[1]}"}
            return 200, {"runId": m[1], "status": item, "logFiles": logs}
        if url.endswith(f"/workspaces/{WS}/datastores"):
            return 200, {
                "value": [
                    {
                        "id": f"{WS_ID}/datastores/workspaceblobstore",
                        "name": "workspaceblobstore",
                        "properties": {
                            "datastoreType": "AzureBlob",
                            "accountName": "acct",
                            "containerName": "azureml-blobstore",
                            "isDefault": True,
                            "endpoint": "core.windows.net",
                            "protocol": "https",
                            "credentials": {"credentialsType": "AccountKey"},
                        },
                    }
                ]
            }
        if url.endswith("/rundata"):
            run_id = json.loads(r.body)["runId"]
            asset = f"azureml://locations/x/workspaces/y/data/azureml_{run_id}_output_data_model"
            return 200, {
                "runMetadata": {
                    "runId": run_id,
                    "outputs": {"model": {"assetId": f"{asset}/versions/1", "type": "uri_folder"}},
                }
            }
        if url.endswith("/dataversion/batchGetResolvedUris"):
            ids = json.loads(r.body)["values"]
            root = f"azureml://subscriptions/{SUB}/resourcegroups/{RG}/workspaces/{WS}"
            return 200, {
                "values": {
                    i: {"uri": f"{root}/datastores/workspaceblobstore/paths/azureml/run/model/"}
                    for i in ids
                }
            }
        if "/logs/" in url:
            return 200, "epoch 1\nepoch 2\n"
        return 404, {"error": {"code": "NotFound", "message": f"fake: no route for {url}"}}


def transport(service: FakeService) -> Any:
    from azure.core.pipeline.transport import RequestsTransport

    session = requests.Session()
    session.mount("https://", service)
    return RequestsTransport(session=session, session_owner=False)


def real_client(service: FakeService, credential: Any = None) -> Any:
    """A real ``azure.ai.ml.MLClient`` whose every HTTP request ``service`` answers."""
    from azure.ai.ml import MLClient

    return MLClient(
        credential or FakeCredential(),
        SUB,
        RG,
        WS,
        transport=transport(service),
        enable_telemetry=False,
    )
