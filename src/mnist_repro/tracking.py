"""Log the tutorial's run metrics to MLflow, when there is somewhere to log them.

The tutorial logged two run metrics, ``regularization rate`` and ``accuracy``. Azure ML v2
records run metrics through MLflow: inside an Azure ML job ``MLFLOW_TRACKING_URI`` (and
``MLFLOW_RUN_ID``) point at the job's run. Locally nothing is logged unless the user sets
``MLFLOW_TRACKING_URI`` themselves. ``mlflow`` is imported only when it is needed: it is in
the ``job`` extra (the Docker image), not in the base install.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from mnist_repro.errors import MnistReproError

# Environment variables that say "an MLflow run is waiting for metrics".
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_AZUREML_RUN = "AZUREML_RUN_ID"  # set by Azure ML inside every job


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether metrics go to MLflow: a tracking URI is set, or we run inside an Azure ML job."""
    env = os.environ if environ is None else environ
    return bool(env.get(ENV_TRACKING_URI) or env.get(ENV_AZUREML_RUN))


def check() -> None:
    """Fail before any work if tracking is requested but mlflow is not installed."""
    if not enabled():
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise MnistReproError(
            f"{ENV_TRACKING_URI} or {ENV_AZUREML_RUN} is set but mlflow is not installed "
            "(install the 'job' extra: pip install '.[job]')"
        ) from None


def log_metrics(metrics: Mapping[str, float], params: Mapping[str, object] | None = None) -> bool:
    """Log ``metrics`` (and ``params``) to the active MLflow run; return whether anything was sent.

    A no-op returning ``False`` when :func:`enabled` is false. Inside an Azure ML job the run
    already exists (``MLFLOW_RUN_ID``); elsewhere a run is started and ended here.
    """
    if not enabled():
        return False
    check()
    import mlflow

    for name, value in metrics.items():
        if not math.isfinite(float(value)):
            raise MnistReproError(f"metric '{name}' is not a finite number: {value!r}")
    try:
        started = mlflow.active_run() is None
        if started:
            mlflow.start_run()
        try:
            if params:
                mlflow.log_params({k: str(v) for k, v in params.items()})
            for name, value in metrics.items():
                mlflow.log_metric(name, float(value))
        finally:
            if started:
                mlflow.end_run()
    except Exception as exc:  # MLflow raises many types (REST, store, config errors)
        where = os.environ.get(ENV_TRACKING_URI) or "the Azure ML job's run"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MnistReproError(f"MLflow at {where}: could not log metrics ({first})") from None
    return True
