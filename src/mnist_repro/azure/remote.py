"""The remote flows: train (submit, follow, download, register), sweep, status, cancel, metrics.

``ml`` is an ``azure.ai.ml.MLClient`` (tests pass a stand-in for its operations).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mnist_repro.azure import monitor, resources, results
from mnist_repro.azure.plan import Plan
from mnist_repro.errors import MnistReproError


def prepare(ml: Any, plan: Plan) -> None:
    """Compute, environment and data asset: each reused when it already exists."""
    resources.ensure_compute(ml, plan.compute)
    resources.ensure_environment(ml, plan.environment)
    resources.ensure_data(ml, plan.data)


def submit(ml: Any, plan: Plan) -> tuple[str, str | None]:
    job = ml.jobs.create_or_update(plan.job, experiment_name=plan.settings.experiment)
    print(f"submitted {job.name} to experiment {plan.settings.experiment}")
    return job.name, getattr(job, "studio_url", None)


def _scratch(plan: Plan) -> Path:
    return plan.build_dir / "downloads"


def _register(ml: Any, plan: Plan, job_name: str, what: str) -> Any:
    metrics = results.run_metrics(ml, job_name)
    reg = plan.tags.get(plan.settings.sweep.param, "unknown")
    tags = results.model_tags(metrics, plan.tags, reg)
    return results.register_model(
        ml, plan.settings.model, job_name, {**tags, "job": job_name}, what
    )


def train(ml: Any, plan: Plan, wait: bool = True) -> str:
    """The tutorial's remote run, end to end; the model lands where local training puts it."""
    prepare(ml, plan)
    name, url = submit(ml, plan)
    if not wait:
        print(monitor.how_to_follow(name))
        return name
    monitor.follow(ml, name, url, plan.settings.log_tail_lines, _scratch(plan))
    written = results.download_model(ml, name, plan.out_dir, _scratch(plan))
    print("downloaded " + ", ".join(str(p) for p in written))
    _register(ml, plan, name, f"Trained by Azure ML job {name} (make train-remote)")
    return name


def sweep(ml: Any, plan: Plan) -> str:
    """The tutorial's "train several models": a grid over regularization; registers the best."""
    if not plan.is_sweep:
        raise MnistReproError("internal: sweep needs a plan made with sweep=True")
    prepare(ml, plan)
    name, url = submit(ml, plan)
    job = monitor.follow(ml, name, url, plan.settings.log_tail_lines, _scratch(plan))
    best = (job.properties or {}).get("best_child_run_id")
    if not best:
        raise MnistReproError(f"sweep {name} completed without a best trial: {url}")
    metrics = results.run_metrics(ml, best)
    print(f"best trial {best}: " + ", ".join(f"{k} = {v}" for k, v in sorted(metrics.items())))
    _register(ml, plan, best, f"Best trial of Azure ML sweep {name} (make remote-sweep)")
    return best


def status(ml: Any, name: str, tail_lines: int, scratch: Path) -> None:
    """Print a job's status and URL; follow it while it runs."""
    job = ml.jobs.get(name)
    print(f"job {name}: {job.status}  {job.studio_url}")
    if job.status not in monitor.TERMINAL:
        monitor.follow(ml, name, job.studio_url, tail_lines, scratch)
    elif job.status != "Completed":
        monitor.show_failure(ml, job, tail_lines, scratch)


def cancel(ml: Any, name: str) -> None:
    job = ml.jobs.get(name)
    if job.status in monitor.TERMINAL:
        print(f"job {name} already ended: {job.status}")
        return
    ml.jobs.begin_cancel(name).result()
    print(f"job {name}: cancel requested")


def metrics(ml: Any, name: str) -> dict[str, float]:
    values = results.run_metrics(ml, name)
    if not values:
        print(f"job {name} logged no metrics", file=sys.stderr)
    for key, value in sorted(values.items()):
        print(f"{key}: {value}")
    return values
