"""The ``azure`` section of params.yaml plus the tutorial's environment overrides, validated."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_repro.errors import MnistReproError
from mnist_repro.params import load_section

# The tutorial's variables (its compute cell reads them with os.environ.get).
ENV_COMPUTE = {
    "name": "AML_COMPUTE_CLUSTER_NAME",
    "min_nodes": "AML_COMPUTE_CLUSTER_MIN_NODES",
    "max_nodes": "AML_COMPUTE_CLUSTER_MAX_NODES",
    "sku": "AML_COMPUTE_CLUSTER_SKU",
}
# Azure ML compute names: 2-16 characters, a letter first, then letters, digits and hyphens.
COMPUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,15}$")
ASSET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


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
    build_dir: Path
    log_tail_lines: int
    sweep: SweepSettings


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise MnistReproError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise MnistReproError(f"{where}: expected an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise MnistReproError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return number


def _name(value: Any, where: str, pattern: re.Pattern[str] = ASSET_NAME) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise MnistReproError(f"{where}: not a valid Azure ML name: {value!r}")
    return value


def compute_settings(
    section: Mapping[str, Any], environ: Mapping[str, str], params_path: Path
) -> ComputeSettings:
    """Params ``azure.compute`` with the AML_COMPUTE_CLUSTER_* variables taking precedence."""
    merged: dict[str, tuple[Any, str]] = {}
    for key, env_name in ENV_COMPUTE.items():
        if key not in section:
            raise MnistReproError(f"{params_path}: azure.compute.{key} is missing")
        merged[key] = (section[key], f"{params_path}: azure.compute.{key}")
        if environ.get(env_name, "").strip():
            merged[key] = (environ[env_name].strip(), f"environment variable {env_name}")
    name = _name(*merged["name"], pattern=COMPUTE_NAME)
    min_nodes = _int(*merged["min_nodes"])
    max_nodes = _int(*merged["max_nodes"], minimum=1)
    if min_nodes > max_nodes:
        raise MnistReproError(
            f"{merged['min_nodes'][1]}: min nodes ({min_nodes}) exceeds max nodes ({max_nodes})"
        )
    sku = merged["sku"][0]
    if not isinstance(sku, str) or not re.match(r"^[A-Za-z0-9_]+$", sku):
        raise MnistReproError(f"{merged['sku'][1]}: not a VM size: {sku!r}")
    idle = _int(section.get("idle_seconds", 1800), f"{params_path}: azure.compute.idle_seconds")
    return ComputeSettings(name, min_nodes, max_nodes, sku, idle)


def sweep_settings(section: Mapping[str, Any], params_path: Path) -> SweepSettings:
    """``azure.sweep``; its values default to the local sweep's (``sweep.regularization``)."""
    where = f"{params_path}: azure.sweep"
    if not isinstance(section, Mapping):
        raise MnistReproError(f"{where}: expected a mapping")
    values = section.get("values")
    values_where = f"{where}.values"
    if values is None:
        values = load_section("sweep", params_path).get("regularization")
        values_where = f"{params_path}: sweep.regularization (azure.sweep.values is null)"
    param = section.get("param")
    if not isinstance(param, str) or not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+$", param):
        raise MnistReproError(f"{where}.param: expected a dotted params key, got {param!r}")
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values)
    ):
        raise MnistReproError(f"{values_where}: expected a list of positive numbers")
    goal = str(section.get("goal", "maximize")).lower()
    if goal not in ("maximize", "minimize"):
        raise MnistReproError(f"{where}.goal: expected maximize or minimize, got {goal!r}")
    metric = section.get("primary_metric", "accuracy")
    if not isinstance(metric, str) or not metric:
        raise MnistReproError(f"{where}.primary_metric: expected a metric name")
    return SweepSettings(param, tuple(float(v) for v in values), metric, goal)


def load_settings(
    params_path: str | os.PathLike[str] = "params.yaml", environ: Mapping[str, str] | None = None
) -> AzureSettings:
    """Validated settings; a bad value gets one line naming the param or variable."""
    params_path = Path(params_path)
    environ = os.environ if environ is None else environ
    section = load_section("azure", params_path)
    where = f"{params_path}: azure"
    compute = section.get("compute")
    if not isinstance(compute, Mapping):
        raise MnistReproError(f"{where}.compute: expected a mapping")
    return AzureSettings(
        experiment=_name(section.get("experiment"), f"{where}.experiment"),
        compute=compute_settings(compute, environ, params_path),
        data_asset=_name(section.get("data_asset"), f"{where}.data_asset"),
        environment=_name(section.get("environment"), f"{where}.environment"),
        model=_name(section.get("model"), f"{where}.model"),
        build_dir=Path(str(section.get("build_dir", "build/azureml"))),
        log_tail_lines=_int(section.get("log_tail_lines", 40), f"{where}.log_tail_lines", 1),
        sweep=sweep_settings(section.get("sweep"), params_path),
    )
