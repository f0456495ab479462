"""The evaluate stage: metrics that agree with scikit-learn, figures, plot data, stable bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from mnist_repro import cli, evaluate, paths

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Raw digits files, their decoded npz and a model trained on them (shared, read-only)."""
    root = tmp_path_factory.mktemp("evaluate")
    raw = root / "raw"
    write_fake_mnist(raw, n_train=1200, n_test=600)
    params = write_params(root / "params.yaml", {"train.max_iter": 200, "evaluate.mistakes": 16})
    assert cli.main(["decode", "--raw", str(raw), "--out", str(root / "processed")]) == 0
    args = ["--params", str(params), "--data", str(raw), "--out", str(root / "models")]
    assert cli.main(["train", *args]) == 0
    tutorial = ["--params", str(params), "--section", "train_tutorial", "--data", str(raw)]
    assert cli.main(["train", *tutorial, "--out", str(root / "tutorial")]) == 0
    return root, params


def _evaluate(root, params, out):
    return cli.main(
        [
            "evaluate",
            "--params", str(params),
            "--data", str(root / "processed/mnist.npz"),
            "--model", str(root / "models"),
            "--baseline", str(root / "tutorial"),
            "--out", str(out),
        ]
    )  # fmt: skip


def test_metrics_agree_with_the_model_and_scikit_learn(trained, tmp_path):
    from sklearn.metrics import accuracy_score, f1_score

    from mnist_repro import model
    from mnist_repro.decode import load_npz

    root, params = trained
    assert _evaluate(root, params, tmp_path) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    meta = json.loads((root / "models/model.json").read_text())
    arrays = load_npz(root / "processed/mnist.npz")
    estimator = model.load_model(root / "models/model.skops")
    pred = estimator.predict(model.features(arrays["test_images"], "float32"))
    truth = arrays["test_labels"]

    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, pred), abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(meta["test_accuracy"], abs=1e-6)
    assert metrics["accuracy"] >= 0.85  # far above chance (0.1)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"), abs=1e-6)
    assert metrics["regularization rate"] == 0.5
    assert metrics["train_size"] == 1200 and metrics["test_size"] == len(truth) == 600
    assert 0 < metrics["log_loss"] < 1
    assert sorted(metrics["per_class"], key=int) == [str(d) for d in range(10)]
    assert sum(row["support"] for row in metrics["per_class"].values()) == len(truth)
    for row in metrics["per_class"].values():
        assert {"precision", "recall", "f1", "support"} <= set(row)
        assert row["recall_ci"]["low"] <= row["recall"] <= row["recall_ci"]["high"]


def test_intervals_and_the_paired_comparison(trained, tmp_path):
    from mnist_repro import model, stats
    from mnist_repro.decode import load_npz

    root, params = trained
    assert _evaluate(root, params, tmp_path) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    wilson = stats.proportion_interval(metrics["correct"], 600)
    assert metrics["accuracy_ci"] == {
        "low": round(wilson["low"], 6),
        "high": round(wilson["high"], 6),
    }
    for key in ("accuracy", "macro_f1", "log_loss"):
        assert metrics[f"{key}_ci"]["low"] < metrics[key] < metrics[f"{key}_ci"]["high"], key
    assert metrics["confidence_level"] == 0.95
    assert metrics["bootstrap"] == {"resamples": 2000, "seed": 0}

    # The tutorial preset, scored on the same images, and the discordant counts.
    arrays = load_npz(root / "processed/mnist.npz")
    truth = arrays["test_labels"]
    mine = model.load_model(root / "models/model.skops").predict(
        model.features(arrays["test_images"], "float32")
    )
    theirs = model.load_model(root / "tutorial/model.skops").predict(
        model.features(arrays["test_images"], "float64")
    )
    base = metrics["tutorial_preset"]
    assert base["preset"] == "tutorial"
    assert base["accuracy"] == pytest.approx(np.mean(theirs == truth), abs=1e-6)
    paired = base["paired"]
    assert paired["only_this_right"] == np.sum((mine == truth) & (theirs != truth))
    assert paired["only_tutorial_right"] == np.sum((mine != truth) & (theirs == truth))
    expected = stats.mcnemar(truth, mine, theirs)["p_value"]
    assert paired["mcnemar_exact_p"] == pytest.approx(expected, rel=1e-5)


def test_figures_and_confusion_plot_data(trained, tmp_path):
    root, params = trained
    assert _evaluate(root, params, tmp_path) == 0
    for rel in paths.FIGURE_FILES.values():
        data = (tmp_path / rel).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert b"Software" not in data and b"matplotlib" not in data.lower()
    rows = (tmp_path / paths.CONFUSION_CSV).read_text().splitlines()
    assert rows[0] == "actual,predicted"
    assert len(rows) == 1 + 600
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    agree = sum(1 for row in rows[1:] if row.split(",")[0] == row.split(",")[1])
    assert agree / 600 == pytest.approx(metrics["accuracy"], abs=1e-6)


def test_two_runs_give_identical_bytes(trained, tmp_path):
    root, params = trained
    for run in ("a", "b"):
        assert _evaluate(root, params, tmp_path / run) == 0
    names = ["metrics.json", paths.CONFUSION_CSV, *paths.FIGURE_FILES.values()]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_sample_seed_changes_the_digits_figure_only(trained, tmp_path):
    root, params = trained
    other = write_params(
        tmp_path / "other.yaml", {"evaluate.mistakes": 16, "evaluate.sample_seed": 7}
    )
    assert _evaluate(root, params, tmp_path / "a") == 0
    assert _evaluate(root, other, tmp_path / "b") == 0
    digits = paths.FIGURE_FILES["digits"]
    assert (tmp_path / "a" / digits).read_bytes() != (tmp_path / "b" / digits).read_bytes()
    confusion = paths.FIGURE_FILES["confusion"]
    assert (tmp_path / "a" / confusion).read_bytes() == (tmp_path / "b" / confusion).read_bytes()


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"sample_digits": 0}, "evaluate.sample_digits"),
        ({"sample_digits": 500}, "evaluate.sample_digits"),
        ({"mistakes": -1}, "evaluate.mistakes"),
        ({"sample_seed": "x"}, "evaluate.sample_seed"),
        ({"colour": "red"}, "evaluate.colour"),
    ],
)
def test_bad_params_are_one_line(tmp_path, capsys, section, named):
    params = write_params(
        tmp_path / "params.yaml", {f"evaluate.{k}": v for k, v in section.items()}
    )
    assert _evaluate(tmp_path, params, tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0]
    assert not (tmp_path / "out").exists()


def test_missing_model_is_one_line(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml")
    assert _evaluate(tmp_path, params, tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {tmp_path / 'models' / 'model.json'}: not found (run the train stage first)"
    ]


def test_most_confident_mistakes_order():
    truth = np.array([0, 1, 2, 3, 4, 5])
    pred = np.array([0, 2, 2, 0, 1, 1])
    confidence = np.array([0.99, 0.6, 0.9, 0.8, 0.6, 0.95])
    # Wrong: 1 (0.6), 3 (0.8), 4 (0.6), 5 (0.95); ties broken by index.
    assert evaluate.most_confident_mistakes(truth, pred, confidence, 3).tolist() == [5, 3, 1]
    assert evaluate.most_confident_mistakes(truth, pred, confidence, 10).tolist() == [5, 3, 1, 4]
    assert evaluate.most_confident_mistakes(truth, truth, confidence, 10).tolist() == []


def test_confusion_matrix_counts_true_rows_predicted_columns():
    from sklearn.metrics import confusion_matrix as reference

    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    ours = evaluate.confusion_matrix(truth, pred, list(range(10)))
    np.testing.assert_array_equal(ours, reference(truth, pred, labels=list(range(10))))


def test_a_rerun_removes_temp_files_a_killed_run_left(trained, tmp_path):
    """SIGKILL mid-write leaves .<name>.<random>.tmp beside an output; the next run removes it."""
    root, params = trained
    outputs = [paths.METRICS_FILE, paths.CONFUSION_CSV, *paths.FIGURE_FILES.values()]
    for rel in outputs:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / f".{path.name}.k1ll3d.tmp").write_bytes(b"half a file")
    assert _evaluate(root, params, tmp_path) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.tmp")) == []
    assert all((tmp_path / rel).is_file() for rel in outputs)
