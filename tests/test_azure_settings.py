"""params.yaml `azure` section and the tutorial's AML_COMPUTE_CLUSTER_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mnist_repro.azure.settings import load_settings
from mnist_repro.errors import MnistReproError

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


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
    assert s.sweep.goal == "maximize" and s.sweep.primary_metric == "accuracy"
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
            "AML_COMPUTE_CLUSTER_MAX_NODES: expected an integer",
        ),
        (
            {"AML_COMPUTE_CLUSTER_MIN_NODES": "-1"},
            "AML_COMPUTE_CLUSTER_MIN_NODES: expected an integer",
        ),
        (
            {"AML_COMPUTE_CLUSTER_MAX_NODES": "0"},
            "AML_COMPUTE_CLUSTER_MAX_NODES: expected an integer >= 1",
        ),
        ({"AML_COMPUTE_CLUSTER_MIN_NODES": "5"}, "min nodes (5) exceeds max nodes (4)"),
        ({"AML_COMPUTE_CLUSTER_NAME": "bad name!"}, "AML_COMPUTE_CLUSTER_NAME: not a valid"),
        ({"AML_COMPUTE_CLUSTER_SKU": "D2 v2"}, "AML_COMPUTE_CLUSTER_SKU: not a VM size"),
    ],
)
def test_bad_overrides_get_one_line_naming_the_variable(env, message):
    with pytest.raises(MnistReproError) as info:
        load_settings(PARAMS, environ=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_params_value_names_the_key(tmp_path):
    text = PARAMS.read_text().replace("max_nodes: 4", "max_nodes: lots")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(MnistReproError, match=r"params.yaml: azure.compute.max_nodes"):
        load_settings(tmp_path / "params.yaml", environ={})


def test_sweep_values_default_to_the_local_sweeps(tmp_path):
    text = PARAMS.read_text()
    local = yaml.safe_load(text)["sweep"]["regularization"]
    assert load_settings(PARAMS, environ={}).sweep.values == tuple(float(v) for v in local)
    (tmp_path / "params.yaml").write_text(text.replace("values: null", "values: [0.3, 3]"))
    assert load_settings(tmp_path / "params.yaml", environ={}).sweep.values == (0.3, 3.0)
    (tmp_path / "params.yaml").write_text(text.replace("values: null", "values: [0, 1]"))
    with pytest.raises(MnistReproError, match=r"azure\.sweep\.values: expected a list"):
        load_settings(tmp_path / "params.yaml", environ={})
