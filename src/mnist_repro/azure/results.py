"""Bring a job's model back to the local train stage's paths; register it; read run metrics."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnist_repro.atomic import atomic_path
from mnist_repro.azure.specs import MODEL_OUTPUT
from mnist_repro.errors import MnistReproError

MODEL_FILES = ("model.skops", "model.json")  # what the local train stage writes (dvc outs)
OPTIONAL_FILES = ("train.timings.json",)  # its run record (git-ignored, not a DVC output)


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


def run_metrics(ml: Any, name: str) -> dict[str, float]:
    """The run's metrics (the tutorial's ``run.get_metrics()``), read through MLflow."""
    import mlflow.tracking

    workspace = ml.workspaces.get(ml.workspace_name)
    client = mlflow.tracking.MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
    return dict(client.get_run(name).data.metrics)


def register_model(
    ml: Any, model_name: str, job_name: str, tags: Mapping[str, str], description: str
) -> Any:
    """Register the job's ``model`` output (model.skops + model.json) as ``model_name``."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    model = Model(
        name=model_name,
        path=f"azureml://jobs/{job_name}/outputs/{MODEL_OUTPUT}",
        type=AssetTypes.CUSTOM_MODEL,
        tags=dict(tags),
        description=description,
    )
    registered = ml.models.create_or_update(model)
    print(f"model: registered {registered.name}:{registered.version}")
    return registered


def model_tags(metrics: Mapping[str, float], plan_tags: Mapping[str, str], reg: Any) -> dict:
    """The tutorial's tags (accuracy, regularization) plus the data hash and git commit."""
    return {
        "accuracy": str(metrics.get("accuracy", "unknown")),
        "regularization": str(metrics.get("regularization rate", reg)),
        "data_version": plan_tags.get("data_version", "unknown"),
        "git_commit": plan_tags.get("git_commit", "unknown"),
    }
