"""The local inputs: params.yaml's `azure` section, the tutorial's AML_COMPUTE_CLUSTER_*
overrides, and the workspace config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mnist_repro.azure.workspace import find_config, load_settings
from mnist_repro.errors import MnistReproError

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _params(tmp_path: Path, old: str, new: str) -> Path:
    text = PARAMS.read_text()
    assert old in text
    (tmp_path / "params.yaml").write_text(text.replace(old, new, 1))
    return tmp_path / "params.yaml"


def _one_line_error(params_path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(MnistReproError) as info:
        load_settings(params_path, environ={} if environ is None else environ)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_defaults_are_the_tutorials():
    s = load_settings(PARAMS, environ={})
    assert (s.compute.name, s.compute.min_nodes, s.compute.max_nodes, s.compute.sku) == (
        "cpucluster",
        0,
        4,
        "STANDARD_D2_V2",
    )
    assert s.compute.idle_seconds > 0
    assert (s.experiment, s.data_asset, s.model) == (
        "sklearn-mnist",
        "mnist_opendataset",
        "sklearn_mnist",
    )
    assert s.sweep.goal == "maximize" and s.sweep.primary_metric == "val_accuracy"
    assert len(s.sweep.values) >= 2


def test_environment_variables_override_params():
    env = {
        "AML_COMPUTE_CLUSTER_NAME": "gpu-cluster",
        "AML_COMPUTE_CLUSTER_MIN_NODES": "1",
        "AML_COMPUTE_CLUSTER_MAX_NODES": " 8 ",
        "AML_COMPUTE_CLUSTER_SKU": "STANDARD_NC6",
    }
    c = load_settings(PARAMS, environ=env).compute
    assert (c.name, c.min_nodes, c.max_nodes, c.sku) == ("gpu-cluster", 1, 8, "STANDARD_NC6")


def test_empty_variable_falls_back_to_params():
    c = load_settings(PARAMS, environ={"AML_COMPUTE_CLUSTER_MAX_NODES": ""}).compute
    assert c.max_nodes == 4


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"AML_COMPUTE_CLUSTER_MAX_NODES": "four"},
            "AML_COMPUTE_CLUSTER_MAX_NODES: azure.compute.max_nodes must be an integer in [1, ",
        ),
        (
            {"AML_COMPUTE_CLUSTER_MIN_NODES": "-1"},
            "AML_COMPUTE_CLUSTER_MIN_NODES: azure.compute.min_nodes must be an integer in [0, ",
        ),
        (
            {"AML_COMPUTE_CLUSTER_MAX_NODES": "0"},
            "AML_COMPUTE_CLUSTER_MAX_NODES: azure.compute.max_nodes must be an integer in [1, ",
        ),
        (
            {"AML_COMPUTE_CLUSTER_MAX_NODES": "9" * 400},
            "AML_COMPUTE_CLUSTER_MAX_NODES: azure.compute.max_nodes must be an integer",
        ),
        (
            {"AML_COMPUTE_CLUSTER_MIN_NODES": "5"},
            "AML_COMPUTE_CLUSTER_MIN_NODES: azure.compute.min_nodes (5) exceeds max_nodes (4)",
        ),
        (
            {"AML_COMPUTE_CLUSTER_NAME": "bad name!"},
            "AML_COMPUTE_CLUSTER_NAME: azure.compute.name must be a compute name",
        ),
        (
            {"AML_COMPUTE_CLUSTER_SKU": "D2 v2"},
            "AML_COMPUTE_CLUSTER_SKU: azure.compute.sku must be a VM size",
        ),
    ],
)
def test_bad_overrides_get_one_line_naming_the_variable(env, message):
    assert message in _one_line_error(PARAMS, env)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_nodes: 4", "max_nodes: lots", "params.yaml: azure.compute.max_nodes must be"),
        ("max_nodes: 4", "max_nodes: " + "4" * 401, "azure.compute.max_nodes must be an integer"),
        ("log_tail_lines: 40", "log_tail_lines: 0", "azure.log_tail_lines must be an integer"),
        ("goal: maximize", "goal: upwards", "params.yaml: azure.sweep.goal must be one of"),
        ("model: sklearn_mnist", "modle: sklearn_mnist", "params.yaml: azure.modle: unknown key"),
        ("  log_tail_lines: 40", "  log_tail_line: 40", "azure.log_tail_line: unknown key"),
        ("    idle_seconds: 120", "    idle_second: 120", "azure.compute.idle_second: unknown"),
        ("    idle_seconds: 120", "    idle_seconds: 0", "azure.compute.idle_seconds must be"),
        ("  build_dir: build/azureml", "  # build_dir:", "params.yaml: azure.build_dir: missing"),
    ],
)
def test_bad_params_get_one_line_naming_the_key(tmp_path, old, new, message):
    assert message in _one_line_error(_params(tmp_path, old, new))


def test_sweep_values_null_means_the_local_sweeps_grid(tmp_path):
    text = PARAMS.read_text()
    local = yaml.safe_load(text)["sweep"]["regularization"]
    assert load_settings(PARAMS, environ={}).sweep.values == tuple(float(v) for v in local)
    explicit = _params(tmp_path, "values: null", "values: [0.3, 3]")
    assert load_settings(explicit, environ={}).sweep.values == (0.3, 3.0)
    zero = _params(tmp_path, "values: null", "values: [0, 1]")
    assert "params.yaml: azure.sweep.values must be a list" in _one_line_error(zero)
    # null borrows sweep.regularization, through the same checker
    bad_local = _params(tmp_path, "regularization: [0.05,", "regularization: [-1,")
    assert "params.yaml: sweep.regularization must be a list" in _one_line_error(bad_local)
    no_local = _params(tmp_path, "  regularization: [0.05,", "  other: [0.05,")
    assert "params.yaml: sweep.other: unknown key" in _one_line_error(no_local)


def test_config_file_places_and_errors(tmp_path):
    with pytest.raises(MnistReproError, match=r"no Azure ML workspace config in .*config\.example"):
        find_config(tmp_path)
    sample = json.loads((PARAMS.parent / "config.example.json").read_text())
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps(sample))
    assert find_config(tmp_path).workspace_name == "my-workspace"
    (tmp_path / "config.json").write_text('{"subscription_id": " ", "resource_group": "g"}')
    with pytest.raises(MnistReproError, match=r"config\.json: missing or empty subscription_id, "):
        find_config(tmp_path)  # config.json comes first
    (tmp_path / "config.json").write_text("[1")
    with pytest.raises(MnistReproError, match=r"config\.json: not readable JSON"):
        find_config(tmp_path)
