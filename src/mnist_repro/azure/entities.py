"""Build the Azure ML entities of one run (compute, environment, data asset, job) offline.

Nothing here talks to Azure. The job runs exactly the local train stage's command, read from
dvc.yaml, with the data folder and the output folder swapped for the job's input and output.
:func:`make_plan` gathers everything one run needs (``smoke=True``: the same job on tiny
synthetic data, ``make remote-smoke``); :func:`write_specs` writes the entities as YAML (the
dry run; also valid for ``az ml <kind> create -f``). The image's base must be pinned by
digest before anything is submitted (:func:`require_pinned_base`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_repro.atomic import write_text
from mnist_repro.azure.workspace import AzureSettings, load_settings, stage_section
from mnist_repro.content_hash import listing_hash, tree_hash, tree_listing
from mnist_repro.errors import MnistReproError
from mnist_repro.paths import PARAMS
from mnist_repro.provenance import git_commit, git_dirty

DVC_YAML = "dvc.yaml"
DOCKER_DIR = "docker"  # the image's build context: the environment
TRAIN_STAGE = "train"
DATA_INPUT = "data"
MODEL_OUTPUT = "model"
REMOTE_DATA = "${{inputs.data}}"
REMOTE_OUT = "${{outputs.model}}"
SWEEP_INPUT = "regularization"
CODE_FILES = (PARAMS.as_posix(),)  # besides src/: all the train command reads
TRIAL_PARAMS = "${TMPDIR:-/tmp}/mnist-repro-trial-params.yaml"  # the shell expands it
SMOKE_DIR = "smoke"  # under azure.build_dir: the smoke job's specs, data, code, download
SMOKE_SIZES = {"train": 200, "test": 50}  # images of the synthetic smoke data
# `ARG BASE=<image>` in docker/Dockerfile; pinned = `<name>[:tag]@sha256:<64 hex>`.
BASE_ARG = re.compile(r"^ARG BASE=(\S*)\s*$", re.MULTILINE)
PINNED = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")
HOW_TO_PIN = (
    "run `make docker-base-digest` where a container registry is reachable (it needs docker, "
    "skopeo or crane) and commit docker/Dockerfile (docs/docker.md)"
)


@dataclass
class Plan:
    """Everything one run needs, computed from the repository."""

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
    docker_dir: Path  # the environment's build context
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_sweep(self) -> bool:
        return type(self.job).__name__ == "SweepJob"


# --- the train command, from dvc.yaml --------------------------------------------------------


def local_train_command(dvc_yaml: str | Path = DVC_YAML) -> str:
    """The ``cmd`` of dvc.yaml's train stage."""
    dvc_yaml = Path(dvc_yaml)
    try:
        cmd = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"][TRAIN_STAGE]["cmd"]
    except FileNotFoundError:
        raise MnistReproError(f"{dvc_yaml}: not found (run from the repository root)") from None
    except (KeyError, TypeError, yaml.YAMLError):
        raise MnistReproError(f"{dvc_yaml}: no '{TRAIN_STAGE}' stage with a cmd") from None
    if not isinstance(cmd, str):
        raise MnistReproError(f"{dvc_yaml}: stage '{TRAIN_STAGE}' cmd must be one command")
    return cmd


def _option(tokens: list[str], flag: str, where: str) -> int:
    if tokens.count(flag) != 1 or tokens.index(flag) == len(tokens) - 1:
        raise MnistReproError(f"{where}: train cmd needs exactly one '{flag} <folder>'")
    return tokens.index(flag) + 1


def remote_train_command(local_cmd: str, where: str = DVC_YAML) -> str:
    """``local_cmd`` with ``--data X`` and ``--out Y`` pointing at the job's input and output."""
    tokens = local_cmd.split()
    if shlex.split(local_cmd) != tokens:
        raise MnistReproError(f"{where}: train cmd must not use shell quoting: {local_cmd!r}")
    tokens[_option(tokens, "--data", where)] = REMOTE_DATA
    tokens[_option(tokens, "--out", where)] = REMOTE_OUT
    return " ".join(tokens)


def local_paths(local_cmd: str, where: str = DVC_YAML) -> tuple[Path, Path]:
    """The data folder and the output folder of the local train command."""
    tokens = local_cmd.split()
    return (
        Path(tokens[_option(tokens, "--data", where)]),
        Path(tokens[_option(tokens, "--out", where)]),
    )


def sweep_command(train_command: str, param: str) -> str:
    """A trial: params.yaml with its regularization, then the train command reading that copy,
    in selection mode (``--select``: scores the validation set, logs ``val_accuracy`` and
    ``val_log_loss``; the test set chooses nothing), as ``make sweep`` runs it locally."""
    return (
        f"python -m mnist_repro.azure.job set-param {PARAMS.as_posix()} {TRIAL_PARAMS} "
        f"{param}=${{{{inputs.{SWEEP_INPUT}}}}} && {train_command} --select "
        f"--params {TRIAL_PARAMS}"
    )


# --- what the job gets: code and data ------------------------------------------------------------


def stage_code(repo: Path, dest: Path) -> Path:
    """Copy what the job needs (src/mnist_repro and params.yaml) into a fresh ``dest``.

    An explicit folder keeps the upload small and its snapshot hash stable: no data, no
    .venv, no caches. Azure ML reuses an upload whose content it has seen before.
    """
    if dest.exists():
        shutil.rmtree(dest)
    package = repo / "src" / "mnist_repro"
    if not package.is_dir():
        raise MnistReproError(f"{package}: not found (run from the repository root)")
    shutil.copytree(
        package,
        dest / "src" / "mnist_repro",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    for name in CODE_FILES:
        if not (repo / name).is_file():
            raise MnistReproError(f"{repo / name}: not found")
        shutil.copy2(repo / name, dest / name)
    return dest


def data_listing(raw_dir: Path, files: Mapping[str, Mapping[str, Any]], need_files: bool) -> dict:
    """``{name: sha256}`` of the verified data files: the data asset's content.

    With the folder present, its files must be exactly the ``download.files`` of params.yaml
    with their SHA-256 (so the asset is the verified data). Without it (a dry run on a fresh
    clone), the pinned hashes stand in: they are what the download stage will verify.
    """
    expected = {name: str(spec["sha256"]) for name, spec in files.items()}
    if not raw_dir.is_dir():
        if need_files:
            raise MnistReproError(f"{raw_dir}: not found (run `dvc repro download` first)")
        return expected
    actual = tree_listing(raw_dir)
    for name, digest in expected.items():
        if name not in actual:
            raise MnistReproError(f"{raw_dir / name}: missing (run `dvc repro download`)")
        if actual[name] != digest:
            raise MnistReproError(
                f"{raw_dir / name}: SHA-256 differs from params.yaml download.files"
            )
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise MnistReproError(f"{raw_dir / extra[0]}: not one of params.yaml download.files")
    return actual


def data_version(listing: Mapping[str, str]) -> str:
    return listing_hash(listing)


def write_smoke_data(dest: Path, seed: int = 0) -> dict[str, str]:
    """Tiny synthetic MNIST (:data:`SMOKE_SIZES`) in ``dest``, same bytes every time.

    Each class is a random blob pattern plus noise: a model learns it in a second. It is not
    MNIST and says nothing about accuracy; it only lets the job's command run end to end.
    """
    import numpy as np

    from mnist_repro.decode import FILES
    from mnist_repro.idx import write_idx

    rng = np.random.default_rng(seed)
    templates = rng.random((10, 28, 28)) > 0.7
    for split, count in SMOKE_SIZES.items():
        labels = np.arange(count, dtype=np.uint8) % 10
        noise = rng.integers(0, 90, size=(count, 28, 28))
        images = np.clip(templates[labels] * 170 + noise, 0, 255).astype(np.uint8)
        write_idx(dest / FILES[f"{split}_images"], images)
        write_idx(dest / FILES[f"{split}_labels"], labels)
    return tree_listing(dest)


def base_image(docker_dir: Path) -> str:
    """The default of ``ARG BASE=`` in the Dockerfile (what Azure ML's image build pulls)."""
    dockerfile = docker_dir / "Dockerfile"
    try:
        found = BASE_ARG.search(dockerfile.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MnistReproError(f"{dockerfile}: not found") from None
    if not found or not found.group(1):
        raise MnistReproError(f"{dockerfile}: no `ARG BASE=<image>` line")
    return found.group(1)


def base_is_pinned(docker_dir: Path) -> bool:
    return PINNED.fullmatch(base_image(docker_dir)) is not None


def require_pinned_base(docker_dir: Path) -> None:
    """Refuse to build on Azure ML from a base named by a tag: a tag moves, while the
    environment's version (the content hash of docker/) does not."""
    if not base_is_pinned(docker_dir):
        raise MnistReproError(
            f"{docker_dir / 'Dockerfile'}: ARG BASE={base_image(docker_dir)} is not pinned by "
            f"digest (name@sha256:<64 hex>): {HOW_TO_PIN}"
        )


# --- the entities (the SDK's classes, imported only here and only when building) ---------------


def build_compute(settings: AzureSettings) -> Any:
    from azure.ai.ml.entities import AmlCompute

    compute = settings.compute
    return AmlCompute(
        name=compute.name,
        size=compute.sku,
        min_instances=compute.min_nodes,
        max_instances=compute.max_nodes,
        idle_time_before_scale_down=compute.idle_seconds,
        description="mnist-repro training cluster (make remote-delete-compute removes it)",
    )


def build_environment(name: str, docker_dir: Path, version: str) -> Any:
    from azure.ai.ml.entities import BuildContext, Environment

    if not (docker_dir / "Dockerfile").is_file():
        raise MnistReproError(f"{docker_dir / 'Dockerfile'}: not found")
    return Environment(
        name=name,
        version=version,
        build=BuildContext(path=str(docker_dir), dockerfile_path="Dockerfile"),
        description="Built from the repository's docker/ folder; version = content hash of docker/",
    )


def build_data(name: str, raw_dir: Path, version: str) -> Any:
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    return Data(
        name=name,
        version=version,
        path=str(raw_dir),
        type=AssetTypes.URI_FOLDER,
        description="The four MNIST idx .gz files, SHA-256 verified; version = content hash",
    )


def asset_ref(name: str, version: str) -> str:
    return f"azureml:{name}:{version}"


def build_train_job(
    settings: AzureSettings,
    *,
    command: str,
    code_dir: Path,
    environment: str,
    data: str,
    display_name: str,
    tags: Mapping[str, str],
    environment_variables: Mapping[str, str],
    extra_inputs: Mapping[str, Any] | None = None,
) -> Any:
    """The command job (a ``Command`` node; ``._to_job()`` gives the ``CommandJob``)."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml import command as command_job
    from azure.ai.ml.constants import AssetTypes, InputOutputModes

    return command_job(
        code=str(code_dir),
        command=command,
        inputs={
            DATA_INPUT: Input(
                type=AssetTypes.URI_FOLDER, path=data, mode=InputOutputModes.RO_MOUNT
            ),
            **(extra_inputs or {}),
        },
        # upload: the command writes to the node's local disk and Azure ML uploads the folder
        # when it ends. A read-write blobfuse mount (rw_mount) supports neither chmod nor,
        # reliably, rename, which the atomic writes of the train stage use.
        outputs={MODEL_OUTPUT: Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.UPLOAD)},
        environment=environment,
        environment_variables=dict(environment_variables),
        compute=settings.compute.name,
        experiment_name=settings.experiment,
        display_name=display_name,
        tags=dict(tags),
    )


def build_sweep_job(settings: AzureSettings, trial: Any) -> Any:
    """A grid sweep over ``azure.sweep.values``; as many trials at once as the cluster has nodes."""
    from azure.ai.ml.sweep import Choice

    sweep = settings.sweep
    node = trial(**{SWEEP_INPUT: Choice(values=list(sweep.values))})
    job = node.sweep(
        compute=settings.compute.name,
        sampling_algorithm="grid",
        primary_metric=sweep.primary_metric,
        goal=sweep.goal.capitalize(),
    )
    job.set_limits(
        max_total_trials=len(sweep.values),
        max_concurrent_trials=settings.compute.max_nodes,
    )
    job = job._to_job()
    job.experiment_name = settings.experiment
    job.display_name = f"sweep {sweep.param} over {len(sweep.values)} values"
    job.tags = dict(trial.tags or {})
    return job


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """``{"train.C": "1.0", ...}`` for tags (Azure ML tags are flat strings)."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}", sub))
        return out
    return {prefix: str(value)}


# --- one run's plan ----------------------------------------------------------------------------


def make_plan(
    repo: str | os.PathLike[str] = ".",
    params_path: str | os.PathLike[str] = PARAMS,
    *,
    sweep: bool = False,
    smoke: bool = False,
    need_data: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Read params.yaml, dvc.yaml, docker/ and the data; build every entity; stage the code.

    ``smoke``: the same command, image and compute on tiny synthetic data (its own data asset,
    ``<data_asset>_smoke``), with specs, data, code and download under ``<build_dir>/smoke``.
    """
    if sweep and smoke:
        raise MnistReproError("internal: a plan is a sweep or a smoke job, not both")
    repo, params_path = Path(repo), Path(params_path)
    settings = load_settings(params_path, environ)
    local_command = local_train_command(repo / DVC_YAML)
    remote_command = remote_train_command(local_command, str(repo / DVC_YAML))
    data_dir, out_dir = local_paths(local_command)
    build_dir = repo / settings.build_dir
    data_asset = settings.data_asset
    if smoke:
        build_dir = build_dir / SMOKE_DIR
        data_dir, out_dir = build_dir / "data", build_dir / "model"
        data_ver = data_version(write_smoke_data(data_dir))
        data_asset = f"{data_asset}_smoke"
    else:
        files = stage_section("download", params_path)["files"]
        data_ver = data_version(data_listing(repo / data_dir, files, need_files=need_data))
    environment_version = tree_hash(repo / DOCKER_DIR)
    commit, dirty = git_commit(repo), git_dirty(repo)
    train_params = stage_section("train", params_path)
    tags = {
        "git_commit": commit,
        "git_dirty": str(dirty),
        "data_version": data_ver,
        "environment_version": environment_version,
        **flatten("train", train_params),
        **({"smoke": "true"} if smoke else {}),
    }
    knobs = [f"{k}={train_params[k]}" for k in ("preset", "regularization") if k in train_params]
    short = " ".join([commit[:8] + ("+dirty" if dirty else ""), *knobs])
    kind = "sweep trial" if sweep else "smoke" if smoke else "train"
    job = build_train_job(
        settings,
        command=sweep_command(remote_command, settings.sweep.param) if sweep else remote_command,
        code_dir=stage_code(repo, build_dir / "code"),
        environment=asset_ref(settings.environment, environment_version),
        data=asset_ref(data_asset, data_ver),
        display_name=f"{kind} {short}",
        tags=tags,
        environment_variables={
            "PYTHONPATH": "src",
            "MNIST_REPRO_GIT_COMMIT": commit,
            "MNIST_TRAIN_BACKEND": "local",  # the job trains; it must never delegate again
        },
        extra_inputs={SWEEP_INPUT: settings.sweep.values[0]} if sweep else None,
    )
    return Plan(
        settings=settings,
        local_command=local_command,
        remote_command=remote_command,
        data_dir=repo / data_dir,
        out_dir=repo / out_dir,
        build_dir=build_dir,
        data_version=data_ver,
        environment_version=environment_version,
        commit=commit,
        params=train_params,
        compute=build_compute(settings),
        environment=build_environment(settings.environment, repo / DOCKER_DIR, environment_version),
        data=build_data(data_asset, repo / data_dir, data_ver),
        job=build_sweep_job(settings, job) if sweep else job,
        docker_dir=repo / DOCKER_DIR,
        tags=tags,
    )


# --- the dry run's YAML specs ----------------------------------------------------------------


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
        write_text(path, yaml.safe_dump(_plain(entity, out_dir), sort_keys=False, width=1000))
        paths.append(path)
    return paths
