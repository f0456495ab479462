"""Every call to the Azure ML service, through one ``azure.ai.ml.MLClient`` (``ml``).

Credential and client; create or reuse the compute, environment and data asset; submit,
follow (streamed log; Ctrl-C detaches; a failure shows its log tail), download the model,
register it; status, cancel, run metrics, delete the cluster. Tests replace :func:`client`
(and :func:`check_credential` in subprocesses) with a stand-in for the MLClient's operations.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mnist_repro import log
from mnist_repro.atomic import atomic_path
from mnist_repro.azure.entities import MODEL_OUTPUT, Plan
from mnist_repro.azure.workspace import WorkspaceConfig
from mnist_repro.errors import MnistReproError
from mnist_repro.paths import META_FILE, MODEL_FILE, TIMINGS_FILE

logger = log.get("azure")

ARM_SCOPE = "https://management.azure.com/.default"
HOW_TO_LOGIN = (
    "no Azure credential found: run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
    "AZURE_CLIENT_SECRET for a service principal, or run where a managed identity is available"
)
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}
LOG_NAMES = ("std_log.txt", "std_log_process_0.txt", "70_driver_log.txt")
MODEL_FILES = (MODEL_FILE, META_FILE)  # what the local train stage writes (dvc outs)
OPTIONAL_FILES = (TIMINGS_FILE,)  # its run record (git-ignored, not a DVC output)


# --- credential and client -------------------------------------------------------------------


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
    except ClientAuthenticationError:
        raise MnistReproError(HOW_TO_LOGIN) from None
    finally:
        quiet.setLevel(level)
    return credential


def client(cfg: WorkspaceConfig) -> Any:
    """Credential check, then an ``MLClient`` for the workspace in ``cfg``."""
    from azure.ai.ml import MLClient

    return MLClient.from_config(credential=check_credential(), path=str(cfg.path))


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


@contextlib.contextmanager
def service_errors(cfg: WorkspaceConfig, job: str | None = None) -> Iterator[None]:
    """The service's errors as one line (the SDK's messages run to many)."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    try:
        yield
    except ResourceNotFoundError as exc:
        what = f"job {job}" if job else "resource"
        first = (str(exc.message or exc).strip().splitlines() or [""])[0]
        raise MnistReproError(
            f"{what} not found in workspace {cfg.workspace_name}: {first}"
        ) from None
    except HttpResponseError as exc:
        first = (str(exc.message or exc).strip().splitlines() or [""])[0]
        raise MnistReproError(f"Azure ML ({cfg.workspace_name}): {first}") from None


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
    once per content of the files)."""
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
        f"the job {name} keeps running in Azure ML.\n"
        f"  follow it:  make remote-status JOB={name}\n"
        f"  cancel it:  make remote-cancel JOB={name}"
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
    raise MnistReproError(f"Azure ML job {job.name} ended {job.status}: {job.studio_url}")


def follow(ml: Any, name: str, url: str | None, tail_lines: int, build_dir: Path) -> Any:
    """Stream until the job ends; return the finished job, or raise with its log tail.

    KeyboardInterrupt leaves the job running: it says how to follow or cancel it and
    re-raises, so the caller exits non-zero and DVC records nothing.
    """
    from azure.ai.ml.exceptions import JobException

    logger.info("job %s: %s", name, url or "(no studio URL)")
    try:
        ml.jobs.stream(name)
    except KeyboardInterrupt:
        logger.warning("interrupted: %s", how_to_follow(name))
        raise
    except JobException:
        pass  # a failed job: the status below says so
    job = ml.jobs.get(name)
    if job.status != "Completed":
        show_failure(ml, job, tail_lines, build_dir)
    return job


def status(ml: Any, name: str, tail_lines: int, build_dir: Path) -> None:
    """A job's status and URL; follow it while it runs."""
    job = ml.jobs.get(name)
    log.result(f"job {name}: {job.status}  {job.studio_url}")
    if job.status not in TERMINAL:
        follow(ml, name, job.studio_url, tail_lines, build_dir)
    elif job.status != "Completed":
        show_failure(ml, job, tail_lines, build_dir)


def cancel(ml: Any, name: str) -> None:
    job = ml.jobs.get(name)
    if job.status in TERMINAL:
        log.result(f"job {name} already ended: {job.status}")
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


def model_tags(metrics: Mapping[str, float], plan_tags: Mapping[str, str], reg: Any) -> dict:
    """The tutorial's tags (accuracy, regularization) plus the data hash and git commit."""
    return {
        "accuracy": str(metrics.get("accuracy", "unknown")),
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
