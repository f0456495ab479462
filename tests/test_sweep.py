"""make sweep: every value scored on the validation set by `train --select`, the choice made
there, then one full fit scored on the test set; the report says so. The runs are faked here
(the real ones fit on MNIST); their command line and the choice are what is checked."""

from __future__ import annotations

import json

import pytest

from helpers.params import write_params
from mnist_repro import cli, paths, sweep


def select_meta(reg: float, accuracy: float, loss: float = 0.3) -> dict:
    """The model.json of a `train --select` run (what train.metadata writes for it)."""
    return {
        "params": {"regularization": reg},
        "train_size": 50000,
        "validation": {
            "accuracy": {"value": accuracy, "k": round(accuracy * 10000), "n": 10000,
                         "low": accuracy - 0.005, "high": accuracy + 0.005},
            "log_loss": {"value": loss, "low": loss - 0.02, "high": loss + 0.02},
            "confidence": 0.95,
        },
    }  # fmt: skip


def test_choose_takes_the_best_validation_accuracy_ties_to_the_stronger_regularization():
    rows = [sweep.row(select_meta(r, a)) for r, a in ((0.1, 0.92), (0.5, 0.925), (2.0, 0.925))]
    assert sweep.choose(rows)["regularization"] == 2.0
    rows.append(sweep.row(select_meta(5.0, 0.93)))
    assert sweep.choose(rows)["regularization"] == 5.0


@pytest.fixture
def faked(monkeypatch):
    """Fake runs of the train command: validation scores per value, one test score."""
    calls = []
    scores = {0.1: 0.921, 0.5: 0.9245, 2.0: 0.9243}

    def train_run(params_file, data, out, select):
        import yaml

        reg = yaml.safe_load(params_file.read_text())["train"]["regularization"]
        calls.append((reg, select))
        if select:
            return select_meta(reg, scores[reg])
        return {"params": {"regularization": reg}, "train_size": 60000,
                "test_accuracy": 0.927, "test_size": 10000}  # fmt: skip

    monkeypatch.setattr(sweep, "train_run", train_run)
    return calls


def test_sweep_chooses_on_validation_then_scores_the_test_set_once(tmp_path, faked, capsys):
    params = write_params(tmp_path / "params.yaml", {"sweep.regularization": [2, 0.1, 0.5, 0.5]})
    (tmp_path / "raw").mkdir()
    argv = ["sweep", "--params", str(params), "--data", str(tmp_path / "raw")]
    assert cli.main([*argv, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "out")]) == 0
    # Every value once in selection mode, then the chosen one once on the full training set.
    assert faked == [(0.1, True), (0.5, True), (2.0, True), (0.5, False)]
    text = (tmp_path / "out" / paths.SWEEP_FILE).read_text()
    assert "**The regularization was chosen on validation data only.**" in text
    assert (
        "| 0.5 | 2 | 0.9245 (0.9195 to 0.9295) | 0.3000 (0.2800 to 0.3200) | **chosen** |" in text
    )
    assert (
        "| 0.1 | 10 | 0.9210 (" in text
        and "**chosen**" not in text.split("| 0.1 |")[1].split("\n")[0]
    )
    assert "| 0.5 | highest validation accuracy (0.9245) | **0.9270** (0.9217 to 0.9319)" in text
    assert "cannot tell these rates apart" in text
    assert (tmp_path / "out" / paths.SWEEP_FIGURE).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tmp_path / "w" / "sweep.json").read_text())
    assert summary["chosen"] == 0.5 and summary["test"]["k"] == 9270
    out = capsys.readouterr().out
    assert out.startswith("chosen regularization 0.5 on validation (val_accuracy 0.9245)")


def test_params_copy_changes_only_the_regularization(tmp_path):
    import yaml

    source = write_params(tmp_path / "params.yaml")
    copy = sweep.params_copy(source, 2.0, tmp_path / "w" / "p.yaml")
    a, b = yaml.safe_load(source.read_text()), yaml.safe_load(copy.read_text())
    assert b["train"]["regularization"] == 2.0
    b["train"]["regularization"] = a["train"]["regularization"]
    assert a == b


@pytest.mark.parametrize("values", [None, [], [0.5, 0], [True], 0.5, [float("inf")]])
def test_bad_sweep_params_fail_before_any_run(tmp_path, capsys, monkeypatch, values):
    monkeypatch.setattr(sweep, "train_run", lambda *args, **kw: pytest.fail("ran"))
    params = write_params(tmp_path / "params.yaml", {"sweep.regularization": values})
    assert cli.main(["sweep", "--params", str(params), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {params}: sweep.regularization must be")
    assert not (tmp_path / "out").exists()


def test_missing_data_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "train_run", lambda *args, **kw: pytest.fail("ran"))
    params = write_params(tmp_path / "params.yaml")
    argv = ["sweep", "--params", str(params), "--data", str(tmp_path / "nothing")]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"error: {tmp_path / 'nothing'}: data folder not found (run `make repro` first)"
