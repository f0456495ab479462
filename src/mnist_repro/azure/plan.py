"""Everything one remote run needs, computed from the repository; and its YAML specs (dry run)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_repro.atomic import write_text
from mnist_repro.azure import specs
from mnist_repro.azure.settings import AzureSettings, load_settings
from mnist_repro.content_hash import tree_hash
from mnist_repro.errors import MnistReproError
from mnist_repro.params import load_section
from mnist_repro.provenance import git_commit, git_dirty


@dataclass
class Plan:
    settings: AzureSettings
    local_command: str
    remote_command: str
    data_dir: Path
    out_dir: Path
    build_dir: Path  # specs, the staged code folder, downloads
    data_version: str
    environment_version: str
    commit: str
    params: dict[str, Any]
    compute: Any
    environment: Any
    data: Any
    job: Any  # a Command node, or a SweepJob for a sweep
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_sweep(self) -> bool:
        return type(self.job).__name__ == "SweepJob"


def _train_params(params_path: Path) -> dict[str, Any]:
    try:
        return load_section("train", params_path)
    except MnistReproError:
        return {}


def make_plan(
    repo: str | os.PathLike[str] = ".",
    params_path: str | os.PathLike[str] = "params.yaml",
    *,
    sweep: bool = False,
    need_data: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Read params.yaml, dvc.yaml, docker/ and data/raw; build every entity; stage the code."""
    repo = Path(repo)
    params_path = Path(params_path)
    settings = load_settings(params_path, environ)
    local_command = specs.local_train_command(repo / "dvc.yaml")
    remote_command = specs.remote_train_command(local_command, str(repo / "dvc.yaml"))
    data_dir, out_dir = specs.local_paths(local_command)
    files = load_section("download", params_path).get("files")
    if not isinstance(files, Mapping) or not files:
        raise MnistReproError(f"{params_path}: download.files is empty")
    listing = specs.data_listing(repo / data_dir, files, need_files=need_data)
    data_version = specs.data_version(listing)
    environment_version = tree_hash(repo / "docker")
    commit = git_commit(repo)
    dirty = git_dirty(repo)
    train_params = _train_params(params_path)
    code_dir = specs.stage_code(repo, repo / settings.build_dir / "code")

    tags = {
        "git_commit": commit,
        "git_dirty": str(dirty),
        "data_version": data_version,
        "environment_version": environment_version,
        **specs.flatten("train", train_params),
    }
    short = commit[:8] + ("+dirty" if dirty else "")
    knobs = " ".join(
        f"{k}={train_params[k]}" for k in ("preset", "regularization") if k in train_params
    )
    short = f"{short} {knobs}".strip()
    env_vars = {
        "PYTHONPATH": "src",
        "MNIST_REPRO_GIT_COMMIT": commit,
        "MNIST_TRAIN_BACKEND": "local",  # the job trains; it must never delegate again
    }
    environment_ref = specs.asset_ref(settings.environment, environment_version)
    data_ref = specs.asset_ref(settings.data_asset, data_version)
    job = specs.build_train_job(
        settings,
        command=specs.sweep_command(remote_command, settings.sweep) if sweep else remote_command,
        code_dir=code_dir,
        environment=environment_ref,
        data=data_ref,
        display_name=f"{'sweep trial' if sweep else 'train'} {short}",
        tags=tags,
        environment_variables=env_vars,
        extra_inputs={specs.SWEEP_INPUT: settings.sweep.values[0]} if sweep else None,
    )
    if sweep:
        job = specs.build_sweep_job(settings, job)
    return Plan(
        settings=settings,
        local_command=local_command,
        remote_command=remote_command,
        data_dir=repo / data_dir,
        out_dir=repo / out_dir,
        build_dir=repo / settings.build_dir,
        data_version=data_version,
        environment_version=environment_version,
        commit=commit,
        params=train_params,
        compute=specs.build_compute(settings.compute),
        environment=specs.build_environment(
            settings.environment, repo / "docker", environment_version
        ),
        data=specs.build_data(settings.data_asset, repo / data_dir, data_version),
        job=job,
        tags=tags,
    )


def _plain(value: Any, base: Path) -> Any:
    """Plain dicts and lists for YAML; absolute local paths made relative to the spec's folder."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, base) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, base) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return Path(os.path.relpath(value, base)).as_posix()
    return value


def job_dict(job: Any) -> dict[str, Any]:
    """The job as `az ml job create -f` reads it (a Command node becomes its CommandJob)."""
    if hasattr(job, "_to_job") and type(job).__name__ == "Command":
        job = job._to_job()
    return job._to_dict()


def write_specs(plan: Plan, out_dir: str | os.PathLike[str]) -> list[Path]:
    """compute.yaml, environment.yaml, data.yaml and job.yaml (or sweep.yaml) in ``out_dir``."""
    out_dir = Path(out_dir).resolve()
    entities = {
        "compute.yaml": plan.compute._to_dict(),
        "environment.yaml": plan.environment._to_dict(),
        "data.yaml": plan.data._to_dict(),
        ("sweep.yaml" if plan.is_sweep else "job.yaml"): job_dict(plan.job),
    }
    paths = []
    for name, entity in entities.items():
        path = out_dir / name
        text = yaml.safe_dump(_plain(entity, out_dir), sort_keys=False, width=1000)
        write_text(path, text)
        paths.append(path)
    return paths
