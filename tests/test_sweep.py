"""make sweep's pure parts: params, reading `dvc exp show --json`, the Markdown table.
(The sweep itself runs DVC experiments on real data: not part of the test suite.)"""

from __future__ import annotations

import pytest

from helpers.params import write_params
from mnist_repro import cli, sweep


def _exp(name, reg, accuracy, timestamp, status="Success"):
    metrics = (
        None
        if accuracy is None
        else {
            "reports/metrics.json": {
                "data": {"accuracy": accuracy, "macro_f1": accuracy - 0.01, "log_loss": 0.3}
            }
        }
    )
    return {
        "rev": f"{name:0<40}",
        "name": name,
        "data": {
            "timestamp": timestamp,
            "status": status,
            "params": {"params.yaml": {"data": {"train": {"regularization": reg}}}},
            "metrics": metrics,
        },
    }


def _show(*exps):
    """The shape of `dvc exp show --json` (DVC 3): workspace, then the baseline commit with its
    experiments, each in a group of revs."""
    return [
        {"rev": "workspace", "data": {}},
        {"rev": "a" * 40, "name": "main", "data": {}, "experiments": [{"revs": [e]} for e in exps]},
    ]


def test_collect_keeps_the_newest_run_per_swept_value():
    show = _show(
        _exp("old-05", 0.5, 0.90, "2026-11-27T10:00:00"),
        _exp("new-05", 0.5, 0.92, "2026-11-27T11:00:00"),
        _exp("r1", 1, 0.93, "2026-11-27T11:00:00"),
        _exp("other", 7.5, 0.99, "2026-11-27T11:00:00"),  # not in the sweep: ignored
        _exp("broken", 2.0, None, "2026-11-27T11:00:00", status="Failed"),
    )
    rows = sweep.collect(show, [0.5, 1.0, 2.0])
    assert [(r["regularization"], r["name"]) for r in rows] == [
        (0.5, "new-05"),
        (1.0, "r1"),
        (2.0, "broken"),
    ]
    text = sweep.render(rows, 0.9204, "fast")
    assert "| 1 | 1 | 0.9300 **best** |" in text
    assert "| 0.5 | 2 | 0.9200 |" in text
    assert "failed (Failed)" in text
    assert "![accuracy against regularization](figures/sweep.png)" in text


@pytest.mark.parametrize("values", [None, [], [0.5, 0], [True], 0.5, [float("inf")]])
def test_bad_sweep_params_fail_before_any_dvc_command(tmp_path, capsys, monkeypatch, values):
    monkeypatch.setattr(sweep, "dvc", lambda *args: pytest.fail("ran dvc"))
    params = write_params(tmp_path / "params.yaml", {"sweep.regularization": values})
    assert cli.main(["sweep", "--params", str(params), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {params}: sweep.regularization must be")
    assert not (tmp_path / "out").exists()


def test_values_are_sorted_and_unique(tmp_path, monkeypatch):
    queued = []

    def fake_dvc(*args):
        queued.extend(a for a in args if a.startswith("train.regularization="))
        return "[]" if "--json" in args else ""

    monkeypatch.setattr(sweep, "dvc", fake_dvc)
    params = write_params(tmp_path / "params.yaml", {"sweep.regularization": [2, 0.5, 2.0, 1]})
    assert cli.main(["sweep", "--params", str(params), "--out", str(tmp_path / "out")]) == 1
    assert queued == [f"train.regularization={v!r}" for v in (0.5, 1.0, 2.0)]
