"""The local inputs of every Azure ML action: the workspace config and params ``azure:``.

Nothing here talks to Azure (no SDK import): the workspace config is ``config.json`` or
``.azureml/config.json``; the settings are params.yaml's ``azure`` section, checked by the
one params checker, with the tutorial's ``AML_COMPUTE_CLUSTER_*`` variables taking precedence.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_repro import params
from mnist_repro.errors import MnistReproError
from mnist_repro.params import Integral, Interval, ListOf, Options, Pattern, Real

CONFIG_PLACES = (Path("config.json"), Path(".azureml") / "config.json")
CONFIG_KEYS = ("subscription_id", "resource_group", "workspace_name")
HOW_TO_CONFIG = (
    "create config.json (or .azureml/config.json) in the repository root with "
    + ", ".join(CONFIG_KEYS)
    + ": download it from your workspace's overview page in Azure ML studio, or copy "
    "config.example.json and fill it in (it is git-ignored)"
)

# Azure ML names: compute 2-16 characters, a letter first; assets up to 255 characters.
AZURE_NAME = Pattern(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}", "an Azure ML name (letters, digits, _.-)"
)
COMPUTE_NAME = Pattern(r"[A-Za-z][A-Za-z0-9-]{1,15}", "a compute name (2-16 letters, digits, -)")
PARAM_KEY = Pattern(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", "a dotted params key such as train.C")
POSITIVE = Interval(Real, 0, None, closed="neither")
COMPUTE = {
    "name": [COMPUTE_NAME],
    "min_nodes": [Interval(Integral, 0, 1000)],
    "max_nodes": [Interval(Integral, 1, 1000)],
    "sku": [Pattern(r"[A-Za-z0-9_]+", "a VM size such as STANDARD_D2_V2")],
    # The SDK sends 0 as "unset" (the service's own default applies): at least a minute.
    "idle_seconds": [Interval(Integral, 60, 7 * 24 * 3600)],
}
SPEC = {
    "experiment": [AZURE_NAME],
    "compute": COMPUTE,
    "data_asset": [AZURE_NAME],
    "environment": [AZURE_NAME],
    "model": [AZURE_NAME],
    "build_dir": [Pattern(r"[^\x00]+", "a folder path")],
    "log_tail_lines": [Interval(Integral, 1, 100_000)],
    "sweep": {
        "param": [PARAM_KEY],
        "values": [ListOf(POSITIVE), None],  # null: the local sweep's grid
        "primary_metric": [Pattern(r"\S+", "a metric name")],
        "goal": [Options({"maximize", "minimize"})],
    },
}
# The tutorial's variables (its compute cell reads them with os.environ.get).
ENV_COMPUTE = {
    "name": "AML_COMPUTE_CLUSTER_NAME",
    "min_nodes": "AML_COMPUTE_CLUSTER_MIN_NODES",
    "max_nodes": "AML_COMPUTE_CLUSTER_MAX_NODES",
    "sku": "AML_COMPUTE_CLUSTER_SKU",
}


@dataclass(frozen=True)
class WorkspaceConfig:
    path: Path
    subscription_id: str
    resource_group: str
    workspace_name: str


@dataclass(frozen=True)
class ComputeSettings:
    name: str
    min_nodes: int
    max_nodes: int
    sku: str
    idle_seconds: int


@dataclass(frozen=True)
class SweepSettings:
    param: str
    values: tuple[float, ...]
    primary_metric: str
    goal: str


@dataclass(frozen=True)
class AzureSettings:
    experiment: str
    compute: ComputeSettings
    data_asset: str
    environment: str
    model: str
    build_dir: Path  # specs, the staged code folder, downloads
    log_tail_lines: int
    sweep: SweepSettings


def find_config(root: str | os.PathLike[str] = ".") -> WorkspaceConfig:
    """The first of ``config.json`` and ``.azureml/config.json`` under ``root``, validated."""
    root = Path(root)
    for place in CONFIG_PLACES:
        if (root / place).is_file():
            return read_config(root / place)
    raise MnistReproError(f"no Azure ML workspace config in {root.resolve()}: {HOW_TO_CONFIG}")


def read_config(path: Path) -> WorkspaceConfig:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MnistReproError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MnistReproError(f"{path}: expected a JSON object with {', '.join(CONFIG_KEYS)}")
    missing = [k for k in CONFIG_KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise MnistReproError(f"{path}: missing or empty {', '.join(missing)}")
    return WorkspaceConfig(path, *(data[k].strip() for k in CONFIG_KEYS))


def stage_section(name: str, params_path: Path) -> dict[str, Any]:
    """Another stage's params section, checked in full with that stage's own ``SPEC``.

    Imported here, not at the top: the stage modules load numpy and matplotlib.
    """
    module = importlib.import_module(f"mnist_repro.{name}")
    return params.load(name, module.SPEC, params_path)


def _from_environment(text: str) -> int | str:
    """A variable's text as the value params.yaml would hold: an integer if it reads as one."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return text


def compute_settings(
    checked: Mapping[str, Any], environ: Mapping[str, str], params_path: Path
) -> ComputeSettings:
    """``azure.compute`` with each set AML_COMPUTE_CLUSTER_* variable in place of its key."""
    values, sources = dict(checked), dict.fromkeys(checked, str(params_path))
    for key, variable in ENV_COMPUTE.items():
        if environ.get(variable, "").strip():
            value = _from_environment(environ[variable])
            values[key] = params.validate(
                {key: COMPUTE[key]}, {key: value}, "azure.compute", variable
            )[key]
            sources[key] = variable
    if values["min_nodes"] > values["max_nodes"]:
        raise MnistReproError(
            f"{sources['min_nodes']}: azure.compute.min_nodes ({values['min_nodes']}) exceeds "
            f"max_nodes ({values['max_nodes']})"
        )
    return ComputeSettings(**values)


def load_settings(
    params_path: str | os.PathLike[str] = params.PARAMS,
    environ: Mapping[str, str] | None = None,
) -> AzureSettings:
    """Checked settings; a bad value gets one line naming the param or the variable."""
    params_path = Path(params_path)
    environ = os.environ if environ is None else environ
    section = params.load("azure", SPEC, params_path)
    sweep = section["sweep"]
    values = sweep["values"]
    if values is None:
        values = stage_section("sweep", params_path)["regularization"]
    return AzureSettings(
        experiment=section["experiment"],
        compute=compute_settings(section["compute"], environ, params_path),
        data_asset=section["data_asset"],
        environment=section["environment"],
        model=section["model"],
        build_dir=Path(section["build_dir"]),
        log_tail_lines=section["log_tail_lines"],
        sweep=SweepSettings(
            sweep["param"], tuple(float(v) for v in values), sweep["primary_metric"], sweep["goal"]
        ),
    )
