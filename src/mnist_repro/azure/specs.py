"""Build the Azure ML entities (compute, environment, data asset, jobs) with the real SDK.

Pure functions: nothing here talks to Azure. The job runs exactly the local train stage's
command, read from dvc.yaml, with the data folder and the output folder swapped for the
job's input and output.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mnist_repro.azure.settings import AzureSettings, ComputeSettings, SweepSettings
from mnist_repro.content_hash import listing_hash, tree_listing
from mnist_repro.errors import MnistReproError

TRAIN_STAGE = "train"
DATA_INPUT = "data"
MODEL_OUTPUT = "model"
REMOTE_DATA = "${{inputs.data}}"
REMOTE_OUT = "${{outputs.model}}"
SWEEP_INPUT = "regularization"
CODE_FILES = ("params.yaml",)  # besides src/: all the train command reads


def local_train_command(dvc_yaml: str | Path = "dvc.yaml") -> str:
    """The ``cmd`` of dvc.yaml's train stage."""
    dvc_yaml = Path(dvc_yaml)
    try:
        stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
        cmd = stages[TRAIN_STAGE]["cmd"]
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


def remote_train_command(local_cmd: str, where: str = "dvc.yaml") -> str:
    """``local_cmd`` with ``--data X`` and ``--out Y`` pointing at the job's input and output."""
    tokens = local_cmd.split()
    if shlex.split(local_cmd) != tokens:
        raise MnistReproError(f"{where}: train cmd must not use shell quoting: {local_cmd!r}")
    tokens[_option(tokens, "--data", where)] = REMOTE_DATA
    tokens[_option(tokens, "--out", where)] = REMOTE_OUT
    return " ".join(tokens)


def local_paths(local_cmd: str, where: str = "dvc.yaml") -> tuple[Path, Path]:
    """The data folder and the output folder of the local train command."""
    tokens = local_cmd.split()
    return (
        Path(tokens[_option(tokens, "--data", where)]),
        Path(tokens[_option(tokens, "--out", where)]),
    )


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


def build_compute(compute: ComputeSettings) -> Any:
    from azure.ai.ml.entities import AmlCompute

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
        outputs={MODEL_OUTPUT: Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)},
        environment=environment,
        environment_variables=dict(environment_variables),
        compute=settings.compute.name,
        experiment_name=settings.experiment,
        display_name=display_name,
        tags=dict(tags),
    )


TRIAL_PARAMS = "${TMPDIR:-/tmp}/mnist-repro-trial-params.yaml"  # the shell expands it


def sweep_command(train_command: str, sweep: SweepSettings) -> str:
    """A trial: params.yaml with its regularization, then the train command reading that copy."""
    return (
        f"python -m mnist_repro.azure.set_param params.yaml {TRIAL_PARAMS} "
        f"{sweep.param}=${{{{inputs.{SWEEP_INPUT}}}}} && {train_command} --params {TRIAL_PARAMS}"
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
