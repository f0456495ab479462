"""Every call to the Azure ML service, through one ``azure.ai.ml.MLClient`` (``ml``).

Credential and client; what ``check`` verifies (workspace, compute, permissions, registry);
create or reuse the compute, environment and data asset; submit, follow (streamed log; Ctrl-C
detaches; a failure shows its log tail), download the model, register it; fetch a finished
job later; the smoke job; status, cancel, run metrics, delete the cluster. Tests replace
:func:`client` (and :func:`check_credential` in subprocesses) with a stand-in for the
MLClient's operations, or give a real MLClient an in-process transport.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mnist_repro import log
from mnist_repro.atomic import atomic_path
from mnist_repro.azure import permissions
from mnist_repro.azure.entities import MODEL_OUTPUT, Plan, require_pinned_base
from mnist_repro.azure.workspace import WorkspaceConfig
from mnist_repro.errors import MnistReproError
from mnist_repro.paths import META_FILE, MODEL_FILE, TIMINGS_FILE

logger = log.get("azure")

ARM = "https://management.azure.com"
ARM_SCOPE = f"{ARM}/.default"
HOW_TO_LOGIN = (
    "no Azure credential found: run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
    "AZURE_CLIENT_SECRET for a service principal, or run where a managed identity is available"
)
# The SDK's RunHistoryConstants.TERMINAL_STATUSES: jobs.download refuses any other state.
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}
LOG_NAMES = ("std_log.txt", "std_log_process_0.txt", "70_driver_log.txt")
MODEL_FILES = (MODEL_FILE, META_FILE)  # what the local train stage writes (dvc outs)
OPTIONAL_FILES = (TIMINGS_FILE,)  # its run record (git-ignored, not a DVC output)
# A credential's line in DefaultAzureCredential's message when it was not even tried.
NOT_TRIED = re.compile(
    r"unavailable|not found|not installed|could not be found|requires the|not configured",
    re.IGNORECASE,
)
AADSTS_HINTS = {  # Microsoft Entra sign-in error codes -> what to do
    ("50076", "50079", "50078"): "multi-factor authentication is required: run `az login` again",
    ("700082", "70043", "50173"): "the sign-in has expired: run `az login` again",
    ("90002", "50020", "500011"): (
        "wrong tenant or account for this subscription: `az login --tenant <the workspace's "
        "tenant id>`"
    ),
}


# --- credential, client, errors ------------------------------------------------------------------


def one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def auth_error_line(exc: BaseException) -> str:
    """One line from a ClientAuthenticationError, keeping the real cause.

    ``DefaultAzureCredential`` lists every credential it tried, one per ``\\n\\t`` line; the
    chain stops at the first one that *attempted* a sign-in and failed (expired MFA, wrong
    tenant). That line is the cause; the others only say the credential was not available.
    """
    message = str(getattr(exc, "message", None) or exc)
    message = message.split("\nTo mitigate this issue", 1)[0]
    chunks = message.split("\n\t")
    tried = chunks[1:] if len(chunks) > 1 else [message]
    failed = [c for c in tried if not NOT_TRIED.search(c)]
    if not failed:
        names = [c.split(":", 1)[0].strip() for c in chunks[1:] if ":" in c]
        return HOW_TO_LOGIN + (f" (tried: {', '.join(names)})" if names else "")
    line = one_line(failed[-1])
    hints = [
        hint
        for codes, hint in AADSTS_HINTS.items()
        if any(re.search(rf"AADSTS{code}\b", line) for code in codes)
    ]
    return f"Azure sign-in failed: {line}" + (f" ({'; '.join(hints)})" if hints else "")


def default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def check_credential(factory: Callable[[], Any] | None = None) -> Any:
    """A credential that can get a token for Azure Resource Manager, or a one-line error."""
    from azure.core.exceptions import ClientAuthenticationError

    quiet = logging.getLogger("azure.identity")  # it logs every credential it tried, at length
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        credential = (factory or default_credential)()
        credential.get_token(ARM_SCOPE)
    except ClientAuthenticationError as exc:
        raise MnistReproError(auth_error_line(exc)) from None
    finally:
        quiet.setLevel(level)
    return credential


def client(cfg: WorkspaceConfig, credential: Any = None) -> Any:
    """Credential check (unless given one), then an ``MLClient`` for the workspace in ``cfg``."""
    from azure.ai.ml import MLClient

    credential = credential or check_credential()
    return MLClient.from_config(credential=credential, path=str(cfg.path))


def check_mlflow() -> None:
    """Run metrics are read through MLflow with the azureml plugin: fail before any work."""
    try:
        import azureml.mlflow  # noqa: F401  (registers the azureml:// tracking URI scheme)
        import mlflow  # noqa: F401
    except ImportError:
        raise MnistReproError(
            "reading Azure ML run metrics needs mlflow-skinny and azureml-mlflow: "
            "pip install -e '.[azure,job]' (make setup installs them)"
        ) from None


def http_error_line(exc: Any) -> str:
    """``<status> <code>: <message>`` of an HttpResponseError (its raw message repeats itself)."""
    error = getattr(exc, "error", None)
    if error is not None and (error.code or error.message):
        text = f"{error.code}: {one_line(error.message)}" if error.code else one_line(error.message)
    else:
        text = (str(exc.message or exc).strip().splitlines() or [""])[0]
    status = getattr(exc, "status_code", None)
    return f"{status} {text}" if status else text


@contextlib.contextmanager
def service_errors(cfg: WorkspaceConfig, job: str | None = None) -> Iterator[None]:
    """The service's and the SDK's errors as one line (their messages run to many).

    Order matters: ClientAuthenticationError and ResourceNotFoundError are HttpResponseErrors;
    MlException (JobException, ValidationException, ...) is an AzureError but not an HTTP one;
    load_job and the SDK's schemas raise marshmallow's ValidationError.
    """
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
    )
    from marshmallow.exceptions import ValidationError

    where = f"Azure ML ({cfg.workspace_name})"
    try:
        yield
    except ClientAuthenticationError as exc:
        raise MnistReproError(auth_error_line(exc)) from None
    except ResourceNotFoundError as exc:
        what = f"job {job}" if job else "resource"
        raise MnistReproError(
            f"{what} not found in workspace {cfg.workspace_name}: {http_error_line(exc)}"
        ) from None
    except HttpResponseError as exc:
        hint = ""
        if getattr(exc, "status_code", None) == 403:
            hint = " (`python -m mnist_repro azure check` names the role that is missing)"
        raise MnistReproError(f"{where}: {http_error_line(exc)}{hint}") from None
    except MlException as exc:
        raise MnistReproError(f"{where}: {one_line(exc.message)}") from None
    except ValidationError as exc:
        raise MnistReproError(f"{where}: invalid spec: {one_line(exc.messages)}") from None


def fetch_permissions(credential: Any, scope: str, **client_kwargs: Any) -> dict[str, Any]:
    """``GET {scope}/providers/Microsoft.Authorization/permissions``, every page.

    The caller's own effective permissions at ``scope`` (anyone may read their own). A plain
    azure-core pipeline with the same credential (no azure-mgmt-authorization needed);
    ``client_kwargs`` (e.g. ``transport=``) go to the pipeline client.
    """
    from azure.core import PipelineClient
    from azure.core.exceptions import HttpResponseError
    from azure.core.pipeline.policies import (
        BearerTokenCredentialPolicy,
        HeadersPolicy,
        RetryPolicy,
        UserAgentPolicy,
    )
    from azure.core.rest import HttpRequest

    policies = [
        HeadersPolicy(),
        UserAgentPolicy("mnist-repro"),
        RetryPolicy(),
        BearerTokenCredentialPolicy(credential, ARM_SCOPE),
    ]
    pipeline = PipelineClient(base_url=ARM, policies=policies, **client_kwargs)
    url: str | None = (
        f"{ARM}{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
    )
    entries: list[Any] = []
    while url:
        response = pipeline.send_request(HttpRequest("GET", url))
        if response.status_code != 200:
            raise HttpResponseError(response=response)
        body = response.json()
        entries.extend(body.get("value") or [])
        url = body.get("nextLink")
    return {"value": entries}


def workspace_scope(cfg: WorkspaceConfig) -> str:
    return (
        f"/subscriptions/{cfg.subscription_id}/resourceGroups/{cfg.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{cfg.workspace_name}"
    )


def check(ml: Any, cfg: WorkspaceConfig, credential: Any, compute_name: str) -> None:
    """What a first run needs, verified without creating anything; one line per finding.

    The workspace can be read; the compute cluster exists or may be created; the signed-in
    user holds every action ``make train-remote`` uses (the missing ones name the role to ask
    for); the workspace has a container registry (the first image build creates one
    otherwise, which subscription policies can refuse).
    """
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    try:
        ws = ml.workspaces.get(cfg.workspace_name)
    except ResourceNotFoundError:
        raise MnistReproError(
            f"workspace {cfg.workspace_name} not found in resource group {cfg.resource_group} "
            f"of subscription {cfg.subscription_id} ({cfg.path}: check the three names)"
        ) from None
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
        raise MnistReproError(
            f"workspace {cfg.workspace_name}: no read access ({http_error_line(exc)}): ask for "
            f"{permissions.ROLE_HINT[permissions.ML + '/read']} on the workspace"
        ) from None
    log.result(f"workspace {cfg.workspace_name}: readable ({cfg.path})")
    compute_exists = True
    try:
        cluster = ml.compute.get(compute_name)
    except ResourceNotFoundError:
        compute_exists = False
        log.result(f"compute {compute_name}: not there yet, the first run creates it")
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
        raise MnistReproError(
            f"compute {compute_name}: no read access ({http_error_line(exc)}): ask for "
            f"{permissions.ROLE_HINT[permissions.ML + '/computes/read']}"
        ) from None
    else:
        log.result(
            f"compute {compute_name}: exists ({getattr(cluster, 'size', '?')}, "
            f"{getattr(cluster, 'min_instances', '?')}..{getattr(cluster, 'max_instances', '?')} "
            f"nodes)"
        )
    required = [
        a for a in permissions.REQUIRED if not compute_exists or a != permissions.COMPUTE_WRITE
    ]
    scope = getattr(ws, "id", None) or workspace_scope(cfg)
    try:
        granted = fetch_permissions(credential, scope)
    except HttpResponseError as exc:
        logger.warning("could not read your permissions (%s): not checked", http_error_line(exc))
    else:
        missing = permissions.missing_actions(granted, required)
        if missing:
            raise MnistReproError(
                f"workspace {cfg.workspace_name}: your role assignments lack "
                + "; ".join(permissions.explain(missing))
            )
        log.result(f"permissions: all {len(required)} actions a run needs are granted")
    if not getattr(ws, "container_registry", None):
        logger.warning(
            "workspace %s has no container registry yet: the first image build creates one in "
            "resource group %s, which fails under policies that require tags; to avoid it, "
            "create one (az acr create) and attach it (az ml workspace update "
            "--container-registry <id>), or let a Contributor run the first build",
            cfg.workspace_name,
            cfg.resource_group,
        )
    else:
        log.result(f"container registry: {ws.container_registry.rsplit('/', 1)[-1]}")


# --- compute, environment, data asset: each reused when it exists ---------------------------------


def _not_found() -> type[Exception]:
    from azure.core.exceptions import ResourceNotFoundError

    return ResourceNotFoundError


def ensure_compute(ml: Any, compute: Any) -> Any:
    """Reuse the cluster named ``compute.name`` if it exists, else create it and wait."""
    try:
        existing = ml.compute.get(compute.name)
    except _not_found():
        existing = None
    if existing is not None:
        if getattr(existing, "type", "amlcompute").lower() != "amlcompute":
            raise MnistReproError(
                f"compute '{compute.name}' exists but is a {existing.type}, not an AmlCompute "
                "cluster (set AML_COMPUTE_CLUSTER_NAME to another name)"
            )
        logger.info("compute: reusing cluster %s", compute.name)
        idle = getattr(existing, "idle_time_before_scale_down", None)
        if idle is not None and int(idle) != int(compute.idle_time_before_scale_down):
            logger.warning(
                "compute: cluster %s keeps idle nodes %d s, params.yaml says %d s (each idle "
                "second is billed): `make remote-delete-compute` and the next run recreates it",
                compute.name,
                int(idle),
                compute.idle_time_before_scale_down,
            )
        return existing
    logger.info(
        "compute: creating cluster %s (%s, %s..%s nodes, idle scale-down after %s s)",
        compute.name,
        compute.size,
        compute.min_instances,
        compute.max_instances,
        compute.idle_time_before_scale_down,
    )
    return ml.compute.begin_create_or_update(compute).result()


def ensure_asset(operations: Any, asset: Any, kind: str, reused: str, creating: str) -> Any:
    """Reuse asset ``name:version`` (its version is a content hash), else create it."""
    ref = f"{asset.name}:{asset.version}"
    try:
        existing = operations.get(asset.name, version=asset.version)
    except _not_found():
        logger.info("%s: %s", kind, creating.format(ref=ref))
        return operations.create_or_update(asset)
    logger.info("%s: reusing %s (%s)", kind, ref, reused)
    return existing


def prepare(ml: Any, plan: Plan) -> None:
    """Compute, environment (registered once per content of docker/), data asset (uploaded
    once per content of the files). The image's base must be pinned by digest first."""
    require_pinned_base(plan.docker_dir)
    ensure_compute(ml, plan.compute)
    ensure_asset(
        ml.environments,
        plan.environment,
        "environment",
        reused="docker/ unchanged",
        creating="registering {ref} from docker/ (Azure ML builds the image on first use)",
    )
    ensure_asset(
        ml.data,
        plan.data,
        "data",
        reused="files unchanged, no upload",
        creating=f"uploading {plan.data.path} as {{ref}}",
    )


def delete_compute(ml: Any, name: str) -> bool:
    """The tutorial's ``compute_target.delete()``; ``False`` if there was nothing to delete."""
    try:
        ml.compute.get(name)
    except _not_found():
        return False
    ml.compute.begin_delete(name).result()
    return True


# --- jobs: submit, follow, status, cancel ----------------------------------------------------


def scratch_dir(build_dir: Path) -> Path:
    """Where job downloads land before they move into place (emptied after each use)."""
    return build_dir / "downloads"


def how_to_follow(name: str) -> str:
    return (
        f"the job {name} keeps running in Azure ML (and its node keeps billing).\n"
        f"  follow it:  make remote-status JOB={name}\n"
        f"  cancel it:  make remote-cancel JOB={name}\n"
        f"  once it has completed, fetch its model into models/: make remote-fetch JOB={name}"
    )


def status_of(job: Any) -> str:
    """The job's status as the service spells it: the SDK gives an enum whose ``str()`` is
    ``JobStatus.RUNNING``; its ``.value`` is ``Running``."""
    status = getattr(job, "status", None)
    return str(getattr(status, "value", status))


def interrupted(exc: BaseException) -> bool:
    """Ctrl-C while following: ``jobs.stream`` turns a KeyboardInterrupt inside its polling
    loop into a JobException caused by it (``_job_ops_helper.stream_logs_until_completion``);
    outside that loop it stays a KeyboardInterrupt. A failed job's JobException has no cause."""
    from azure.ai.ml.exceptions import JobException

    return isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, JobException) and isinstance(exc.__cause__, KeyboardInterrupt)
    )


def submit(ml: Any, plan: Plan) -> tuple[str, str | None]:
    job = ml.jobs.create_or_update(plan.job, experiment_name=plan.settings.experiment)
    logger.info("submitted %s to experiment %s", job.name, plan.settings.experiment)
    return job.name, getattr(job, "studio_url", None)


def log_tail(ml: Any, name: str, lines: int, scratch: Path) -> list[str]:
    """The last ``lines`` lines of the job's main log (downloaded with the job's artifacts)."""
    with tempfile.TemporaryDirectory(dir=scratch, prefix="logs-") as tmp:
        try:
            ml.jobs.download(name, download_path=tmp)
        except Exception as exc:  # the failure message must still come out
            return [f"(could not download the job's logs: {type(exc).__name__}: {exc})"]
        for log_name in LOG_NAMES:
            found = sorted(Path(tmp).rglob(log_name))
            if found:
                text = found[0].read_text(encoding="utf-8", errors="replace")
                return text.splitlines()[-lines:]
    return ["(the job wrote no log)"]


def show_failure(ml: Any, job: Any, tail_lines: int, build_dir: Path) -> None:
    """Show the last lines of a job's log, then raise one line with its status and URL."""
    scratch = scratch_dir(build_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    tail = log_tail(ml, job.name, tail_lines, scratch)
    logger.info(
        "--- last %d lines of the log of job %s ---\n%s", len(tail), job.name, "\n".join(tail)
    )
    raise MnistReproError(f"Azure ML job {job.name} ended {status_of(job)}: {job.studio_url}")


def follow(ml: Any, name: str, url: str | None, tail_lines: int, build_dir: Path) -> Any:
    """Stream until the job ends; return the finished job, or raise with its log tail.

    Ctrl-C (a KeyboardInterrupt, or the SDK's JobException caused by one) leaves the job
    running: it says how to follow, cancel or fetch it and raises KeyboardInterrupt, so the
    command exits 130 and DVC records nothing. Nothing is downloaded: the SDK refuses to
    download a job that has not ended.
    """
    from azure.ai.ml.exceptions import JobException

    logger.info("job %s: %s", name, url or "(no studio URL)")
    try:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the SDK prints the log to stdout
                ml.jobs.stream(name)
        except JobException as exc:
            if not interrupted(exc):
                logger.debug("stream ended with %s", exc)  # a failed job: the status says so
            else:
                raise KeyboardInterrupt from None
        job = ml.jobs.get(name)
    except KeyboardInterrupt:
        logger.warning("interrupted: %s", how_to_follow(name))
        raise KeyboardInterrupt from None
    state = status_of(job)
    if state not in TERMINAL:  # e.g. CancelRequested or Finalizing when the stream returned
        logger.warning("%s", how_to_follow(name))
        raise MnistReproError(f"Azure ML job {name} is {state}, not finished: nothing downloaded")
    if state != "Completed":
        show_failure(ml, job, tail_lines, build_dir)
    return job


def status(ml: Any, name: str, tail_lines: int, build_dir: Path) -> None:
    """A job's status and URL; follow it while it runs."""
    job = ml.jobs.get(name)
    state = status_of(job)
    log.result(f"job {name}: {state}  {job.studio_url}")
    if state not in TERMINAL:
        follow(ml, name, job.studio_url, tail_lines, build_dir)
    elif state != "Completed":
        show_failure(ml, job, tail_lines, build_dir)


def cancel(ml: Any, name: str) -> None:
    job = ml.jobs.get(name)
    if status_of(job) in TERMINAL:
        log.result(f"job {name} already ended: {status_of(job)}")
        return
    ml.jobs.begin_cancel(name).result()
    log.result(f"job {name}: cancel requested")


# --- results: the model back into the train stage's folder, registered; run metrics -------------


def download_model(ml: Any, name: str, out_dir: Path, scratch: Path) -> list[Path]:
    """Download output ``model`` of job ``name`` into ``out_dir``, all files or none."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="download-") as tmp:
        ml.jobs.download(name, download_path=tmp, output_name=MODEL_OUTPUT)
        got = Path(tmp) / "named-outputs" / MODEL_OUTPUT
        missing = [f for f in MODEL_FILES if not (got / f).is_file()]
        if missing:
            raise MnistReproError(
                f"job {name}: output '{MODEL_OUTPUT}' has no {', '.join(missing)}; "
                f"nothing in {out_dir} was changed"
            )
        written = []
        for file_name in MODEL_FILES + OPTIONAL_FILES:
            if (got / file_name).is_file():
                with atomic_path(out_dir / file_name) as part:
                    shutil.copyfile(got / file_name, part)
                written.append(out_dir / file_name)
    return written


def run_metrics(ml: Any, name: str) -> dict[str, float]:
    """The run's metrics (the tutorial's ``run.get_metrics()``), read through MLflow."""
    import mlflow.tracking

    workspace = ml.workspaces.get(ml.workspace_name)
    tracking = mlflow.tracking.MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
    return dict(tracking.get_run(name).data.metrics)


SCORE_TAGS = ("accuracy", "val_accuracy", "val_log_loss")  # test; a sweep trial's validation


def model_tags(metrics: Mapping[str, float], plan_tags: Mapping[str, str], reg: Any) -> dict:
    """The tutorial's tags (accuracy, regularization) plus the data hash and git commit.

    A sweep trial (``train --select``) scores the validation split, never the test set: its
    model carries ``val_accuracy``/``val_log_loss`` instead of ``accuracy``.
    """
    scores = {key: str(metrics[key]) for key in SCORE_TAGS if key in metrics}
    return {
        **(scores or {"accuracy": "unknown"}),
        "regularization": str(metrics.get("regularization rate", reg)),
        "data_version": plan_tags.get("data_version", "unknown"),
        "git_commit": plan_tags.get("git_commit", "unknown"),
    }


def register_model(ml: Any, plan: Plan, job_name: str, description: str) -> Any:
    """Register the job's ``model`` output (model.skops + model.json) with the run's tags."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    reg = plan.tags.get(plan.settings.sweep.param, "unknown")
    tags = model_tags(run_metrics(ml, job_name), plan.tags, reg)
    model = Model(
        name=plan.settings.model,
        path=f"azureml://jobs/{job_name}/outputs/{MODEL_OUTPUT}",
        type=AssetTypes.CUSTOM_MODEL,
        tags={**tags, "job": job_name},
        description=description,
    )
    registered = ml.models.create_or_update(model)
    logger.info("model: registered %s:%s", registered.name, registered.version)
    return registered


# --- the flows -------------------------------------------------------------------------------


def train(ml: Any, plan: Plan, wait: bool = True) -> str:
    """The tutorial's remote run, end to end; the model lands where local training puts it."""
    prepare(ml, plan)
    name, url = submit(ml, plan)
    if not wait:
        log.result(how_to_follow(name))
        return name
    follow(ml, name, url, plan.settings.log_tail_lines, plan.build_dir)
    written = download_model(ml, name, plan.out_dir, scratch_dir(plan.build_dir))
    logger.info("downloaded %s", ", ".join(str(p) for p in written))
    register_model(ml, plan, name, f"Trained by Azure ML job {name} (make train-remote)")
    return name


def fetch(ml: Any, plan: Plan, name: str) -> list[Path]:
    """A finished job's model into the train stage's folder, registered: what ``train`` does
    after following, for a job submitted with --no-wait or whose following was interrupted.

    Refused unless the job ran what the current params.yaml and data describe (its tags), since
    DVC records the result as the output of the current train stage.
    """
    job = ml.jobs.get(name)
    state = status_of(job)
    if state not in TERMINAL:
        logger.warning("%s", how_to_follow(name))
        raise MnistReproError(f"Azure ML job {name} is {state}: nothing to fetch until it ends")
    if state != "Completed":
        show_failure(ml, job, plan.settings.log_tail_lines, plan.build_dir)
    if getattr(job, "type", "command") != "command":
        raise MnistReproError(
            f"job {name} is a {job.type} job: fetch takes a train job (make remote-sweep "
            "registers a sweep's best model)"
        )
    tags = dict(getattr(job, "tags", None) or {})
    keys = ["data_version", *(k for k in plan.tags if k.startswith("train."))]
    differ = [k for k in keys if tags.get(k) != plan.tags[k]]
    if differ:
        shown = ", ".join(f"{k}={tags.get(k)!s} (here {plan.tags[k]})" for k in differ)
        raise MnistReproError(
            f"job {name} was trained with other params or data than this checkout: {shown}; "
            "DVC would record its model as this train stage's output: nothing fetched"
        )
    written = download_model(ml, name, plan.out_dir, scratch_dir(plan.build_dir))
    logger.info("downloaded %s", ", ".join(str(p) for p in written))
    register_model(ml, plan, name, f"Trained by Azure ML job {name} (make remote-fetch)")
    return written


def smoke(ml: Any, plan: Plan) -> str:
    """``make remote-smoke``: the train job's image, command and compute on tiny synthetic
    data; checks what a first run depends on, in minutes, and registers nothing."""
    started = time.monotonic()
    prepare(ml, plan)
    name, url = submit(ml, plan)
    follow(ml, name, url, plan.settings.log_tail_lines, plan.build_dir)
    written = download_model(ml, name, plan.out_dir, scratch_dir(plan.build_dir))
    metrics = run_metrics(ml, name)
    absent = [k for k in ("accuracy", "regularization rate") if k not in metrics]
    if absent:
        raise MnistReproError(
            f"smoke job {name} completed but logged no {', '.join(absent)} through MLflow: {url}"
        )
    log.result(f"smoke job {name}: completed in {time.monotonic() - started:.0f} s")
    log.result("  image built from docker/, code on PYTHONPATH, data input mounted: command ran")
    log.result("  MLflow run metrics: " + ", ".join(f"{k} = {metrics[k]}" for k in sorted(metrics)))
    log.result(
        f"  output uploaded and downloaded: {', '.join(p.name for p in written)} in {plan.out_dir}"
    )
    return name


def sweep(ml: Any, plan: Plan) -> str:
    """The tutorial's "train several models": a grid over regularization; registers the best."""
    if not plan.is_sweep:
        raise MnistReproError("internal: sweep needs a plan made with sweep=True")
    prepare(ml, plan)
    name, url = submit(ml, plan)
    job = follow(ml, name, url, plan.settings.log_tail_lines, plan.build_dir)
    best = (job.properties or {}).get("best_child_run_id")
    if not best:
        raise MnistReproError(f"sweep {name} completed without a best trial: {url}")
    metrics = run_metrics(ml, best)
    log.result(f"best trial {best}: " + ", ".join(f"{k} = {v}" for k, v in sorted(metrics.items())))
    register_model(ml, plan, best, f"Best trial of Azure ML sweep {name} (make remote-sweep)")
    return best


def metrics(ml: Any, name: str) -> dict[str, float]:
    values = run_metrics(ml, name)
    if not values:
        logger.warning("job %s logged no metrics", name)
    for key, value in sorted(values.items()):
        log.result(f"{key}: {value}")
    return values
