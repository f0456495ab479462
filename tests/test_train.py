"""The train stage: params validation, both presets learning the fake digits, deterministic
and safe model files, MLflow logging only when asked."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from helpers.dataset import fake_digits, write_fake_mnist
from helpers.params import write_params
from mnist_repro import cli, model, tracking, train
from mnist_repro.errors import MnistReproError


@pytest.fixture(scope="module")
def synthetic_raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    write_fake_mnist(folder, n_train=300, n_test=100, seed=1)
    return folder


@pytest.fixture(scope="module")
def digits_split():
    rng = np.random.default_rng(0)
    return *fake_digits(1200, rng), *fake_digits(600, rng)


def config(tmp_path, **train_keys):
    """The checked train section of the repo's params with ``train_keys`` changed."""
    params = write_params(
        tmp_path / "params.yaml", {f"train.{k}": v for k, v in train_keys.items()}
    )
    return train.load_config(params)


def _train(params, data, out, capsys=None):
    code = cli.main(["train", "--params", str(params), "--data", str(data), "--out", str(out)])
    return code


# --- params ---------------------------------------------------------------------------------


def test_nulls_take_the_preset_values(tmp_path):
    assert config(tmp_path, preset="fast", max_iter=None, tol=None, threads=None) == {
        "preset": "fast",
        "regularization": 0.5,
        "max_iter": model.PRESETS["fast"].max_iter,
        "tol": model.PRESETS["fast"].tol,
        "seed": 42,
        "threads": None,
        "jobs": 1,
        "window": 5,
        "precondition": 0.005,
    }
    tutorial = config(tmp_path, preset="tutorial", max_iter=7, tol=0.01)
    assert (tutorial["max_iter"], tutorial["tol"]) == (7, 0.01)


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"regularization": 0}, "train.regularization"),
        ({"regularization": -0.5}, "train.regularization"),
        ({"regularization": "high"}, "train.regularization"),
        ({"regularization": float("nan")}, "train.regularization"),
        ({"regularization": True}, "train.regularization"),
        ({"preset": "turbo"}, "train.preset"),
        ({"max_iter": 0}, "train.max_iter"),
        ({"max_iter": 2.5}, "train.max_iter"),
        ({"tol": -1e-4}, "train.tol"),
        ({"tol": "small"}, "train.tol"),
        ({"seed": -1}, "train.seed"),
        ({"seed": 1.5}, "train.seed"),
        ({"threads": 0}, "train.threads"),
        ({"threads": 10**400}, "train.threads"),
        ({"window": 0}, "train.window"),
        ({"window": None}, "train.window"),
        ({"precondition": 0}, "train.precondition"),
        ({"regularisation": 0.5}, "train.regularisation"),
    ],
)
def test_bad_params_fail_with_one_line_before_reading_data(tmp_path, capsys, section, named):
    params = write_params(tmp_path / "params.yaml", {f"train.{k}": v for k, v in section.items()})
    # The data folder does not exist: the params error must come first, and nothing is written.
    code = _train(params, tmp_path / "no-such-data", tmp_path / "models")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert named in err[0]
    assert str(params) in err[0]
    assert not (tmp_path / "models").exists()


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml")
    code = _train(params, tmp_path / "nothing-here", tmp_path / "models")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [
        f"error: {tmp_path / 'nothing-here'}: data folder not found (run the download stage first)"
    ]


# --- learning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["fast", "tutorial"])
def test_both_presets_learn_the_fake_digits(digits_split, preset, tmp_path):
    """Chance is 0.1, a linear model gets ~0.91 (shuffled labels: see below)."""
    x_train, y_train, x_test, y_test = digits_split
    conf = config(tmp_path, preset=preset)
    estimator, facts = train.fit(conf, x_train, y_train)
    accuracy = train.accuracy(estimator, conf, x_test, y_test)
    assert accuracy >= 0.85
    assert facts["n_iter"] and all(n >= 1 for n in facts["n_iter"])
    if preset == "tutorial":
        assert len(facts["n_iter"]) == 10  # one binary liblinear model per digit
        assert type(estimator).__name__ == "OneVsRestClassifier"
    else:
        # A stock estimator: the model file holds no type of this project.
        assert type(estimator).__name__ == "LogisticRegression"
        assert facts["converged"] and facts["solver"]["stop"] == "tol"
        assert facts["solver"]["iterations"] == facts["n_iter"][0]


def test_fast_fits_scikit_learns_model_on_scikit_learns_objective(digits_split, tmp_path):
    """The fast preset is LogisticRegression(C) fitted by the solver (tests/test_solver.py)."""
    from mnist_repro import solver

    x_train, y_train, _, _ = digits_split
    estimator, facts = train.fit(config(tmp_path), x_train, y_train)
    assert estimator.get_params()["C"] == 2.0 and estimator.get_params()["solver"] == "lbfgs"
    X = model.features(x_train, "float32")
    f = solver.objective(X, y_train, 2.0, estimator.coef_, estimator.intercept_)
    assert f == pytest.approx(facts["solver"]["objective"], rel=1e-5)


def test_shuffled_labels_stay_near_chance(digits_split, tmp_path):
    """The accuracy floor above means learning: with labels shuffled, the same fit fails it."""
    x_train, y_train, x_test, y_test = digits_split
    shuffled = np.random.default_rng(5).permutation(y_train)
    conf = config(tmp_path, max_iter=30)
    estimator, _ = train.fit(conf, x_train, shuffled)
    assert train.accuracy(estimator, conf, x_test, y_test) < 0.3


def test_regularization_is_c_inverse(digits_split, tmp_path):
    x_train, y_train, _, _ = digits_split
    strong = config(tmp_path, regularization=1000.0, max_iter=50)
    weak = config(tmp_path, regularization=0.01, max_iter=50)
    coef_strong = train.fit(strong, x_train, y_train)[0].coef_
    coef_weak = train.fit(weak, x_train, y_train)[0].coef_
    assert np.linalg.norm(coef_strong) < 0.2 * np.linalg.norm(coef_weak)


def test_stage_writes_model_metadata_and_timings(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_fake_mnist(raw, n_train=1200, n_test=600)
    params = write_params(tmp_path / "params.yaml", {"train.max_iter": 200})
    assert _train(params, raw, tmp_path / "models") == 0
    err = capsys.readouterr().err
    assert "fitting preset 'fast'" in err and "done in" in err

    meta = json.loads((tmp_path / "models/model.json").read_text())
    assert meta["preset"] == "fast"
    assert meta["params"]["regularization"] == 0.5 and meta["C"] == 2.0
    assert meta["train_size"] == 1200 and meta["test_size"] == 600
    assert meta["test_accuracy"] >= 0.85
    assert meta["converged"] is True and meta["n_iter"][0] < 200
    assert meta["solver"]["stop"] == "tol" and meta["solver"]["iterations"] == meta["n_iter"][0]
    assert meta["solver"]["evaluations"] >= meta["n_iter"][0]
    assert set(meta["data"]) == {p.name for p in raw.iterdir()}
    assert meta["packages"]["scikit-learn"]
    for volatile in ("git_commit", "host", "seconds", "finished_utc"):
        assert volatile not in json.dumps(meta)

    # The recipe's kernel (the repository's params.yaml pins haswell) and the kernels
    # NumPy's and SciPy's OpenBLAS really ran (in-process: this test process's own).
    from mnist_repro import blas

    assert meta["blas"] == {"kernel": "haswell", "openblas": blas.loaded_kernels()}
    assert set(meta["blas"]["openblas"]) == {"numpy", "scipy"}

    timings = json.loads((tmp_path / "models/train.timings.json").read_text())
    assert {"git_commit", "host", "seconds", "cpu", "machine", "isa", "zlib"} <= set(timings)
    assert timings["seconds"]["fit"] > 0

    # A stock LogisticRegression and its arrays, nothing else (builtins aside).
    types = model.file_types(tmp_path / "models/model.skops")
    assert {t for t in types if not t.startswith("builtins.")} == {
        "sklearn.linear_model._logistic.LogisticRegression",
        "numpy.ndarray",
    }
    loaded = model.load_model(tmp_path / "models/model.skops")
    images, labels = fake_digits(600, np.random.default_rng(7))
    assert np.mean(loaded.predict(model.features(images, "float32")) == labels) > 0.85


# --- determinism and safe loading ---------------------------------------------------------------


@pytest.mark.parametrize("preset", ["fast", "tutorial"])
def test_two_runs_write_identical_bytes(tmp_path, synthetic_raw, preset):
    params = write_params(tmp_path / "params.yaml", {"train.preset": preset})
    for run in ("a", "b"):
        assert _train(params, synthetic_raw, tmp_path / run) == 0
    for name in ("model.skops", "model.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_model_file_is_canonical_and_uncompressed(tmp_path, digits_split):
    x_train, y_train, _, _ = digits_split
    estimator, _ = train.fit(config(tmp_path, max_iter=20), x_train, y_train)
    model.save_model(estimator, tmp_path / "m.skops")
    with zipfile.ZipFile(tmp_path / "m.skops") as zf:
        infos = zf.infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert infos[-1].filename == "schema.json"
    assert [i.filename for i in infos[:-1]] == [f"{k:04d}.npy" for k in range(len(infos) - 1)]


def test_load_rejects_a_type_outside_the_allow_list(tmp_path, digits_split):
    """skops itself trusts every scikit-learn estimator; our loader trusts only our two presets."""
    from sklearn.tree import DecisionTreeClassifier

    x_train, y_train, _, _ = digits_split
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(
        x_train.reshape(1200, -1), y_train
    )
    path = tmp_path / "tree.skops"
    model.save_model(tree, path)
    with pytest.raises(
        MnistReproError, match=r"untrusted types: .*sklearn\.tree\._classes\.DecisionTreeClassifier"
    ):
        model.load_model(path)


def test_load_rejects_a_tampered_schema(tmp_path, digits_split):
    """A model file edited to construct something else (here os.system) is refused unread."""
    x_train, y_train, _, _ = digits_split
    estimator, _ = train.fit(config(tmp_path, max_iter=5), x_train, y_train)
    good = tmp_path / "good.skops"
    model.save_model(estimator, good)
    with zipfile.ZipFile(good) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    schema = json.loads(entries["schema.json"])
    schema["__class__"], schema["__module__"] = "system", "os"
    entries["schema.json"] = json.dumps(schema).encode()
    bad = tmp_path / "bad.skops"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    with pytest.raises(MnistReproError, match=r"untrusted types: os\.system"):
        model.load_model(bad)


def test_load_of_a_non_model_file_is_one_line(tmp_path):
    junk = tmp_path / "model.skops"
    junk.write_bytes(b"not a zip")
    with pytest.raises(MnistReproError, match="not a skops model file"):
        model.load_model(junk)
    with pytest.raises(MnistReproError, match="model file not found"):
        model.load_model(tmp_path / "missing.skops")


# --- tracking ---------------------------------------------------------------------------------


def test_tracking_is_a_no_op_without_a_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AZUREML_RUN_ID", raising=False)
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)  # importing it would fail
    assert tracking.enabled() is False
    tracking.check()
    assert tracking.log_metrics({"accuracy": 0.9}) is False


def test_tracking_without_mlflow_installed_fails_clearly(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///nowhere")
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)
    with pytest.raises(MnistReproError, match="mlflow is not installed"):
        tracking.check()


def test_train_logs_the_tutorial_metrics_to_mlflow(tmp_path, monkeypatch, synthetic_raw):
    mlflow = pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the file store needs no server
    params = write_params(
        tmp_path / "params.yaml", {"train.regularization": 0.8, "train.max_iter": 20}
    )
    assert _train(params, synthetic_raw, tmp_path / "models") == 0

    meta = json.loads((tmp_path / "models/model.json").read_text())
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1
    metrics = runs[0].data.metrics
    assert metrics["regularization rate"] == 0.8
    assert metrics["accuracy"] == pytest.approx(meta["test_accuracy"])
    assert runs[0].data.params["preset"] == "fast"


def test_an_mlflow_failure_is_one_line_and_writes_nothing(
    tmp_path, monkeypatch, capsys, synthetic_raw
):
    pytest.importorskip("mlflow")
    # MLflow refuses its file store unless MLFLOW_ALLOW_FILE_STORE is set: a real failure.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    params = write_params(tmp_path / "params.yaml", {"train.max_iter": 5})
    assert _train(params, synthetic_raw, tmp_path / "models") == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and "MLflow at file://" in err[0]
    assert not (tmp_path / "models" / "model.skops").exists()


# --- the tutorial preset in parallel; model selection (--select) ----------------------------


def test_parallel_one_vs_rest_fit_is_the_sequential_fit(digits_split, tmp_path):
    """train_tutorial fits its ten binary models two at a time: same coefficients, same bytes."""
    x_train, y_train, _, _ = digits_split
    sequential = config(tmp_path, preset="tutorial", jobs=1)
    parallel = config(tmp_path, preset="tutorial", jobs=2)
    one, _ = train.fit(sequential, x_train, y_train)
    two, _ = train.fit(parallel, x_train, y_train)
    assert len(one.estimators_) == len(two.estimators_) == 10
    for a, b in zip(one.estimators_, two.estimators_, strict=True):
        assert np.array_equal(a.coef_, b.coef_) and np.array_equal(a.intercept_, b.intercept_)
    assert model.model_bytes(one) == model.model_bytes(two)
    assert one.n_jobs is None and two.n_jobs is None  # the file does not record the parallelism


def test_validation_split_is_seeded_stratified_and_disjoint():
    from mnist_repro.decode import validation_split

    labels = np.repeat(np.arange(10), [100, 120, 90, 110, 100, 80, 100, 105, 95, 100])
    fit, val = validation_split(labels, 200, seed=0)
    assert len(val) == 200 and len(fit) == len(labels) - 200
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(len(labels)))
    counts = np.bincount(labels[val], minlength=10)
    expected = 200 * np.bincount(labels) / len(labels)
    assert np.all(np.abs(counts - expected) <= 1)  # each class in its proportion
    again, val_again = validation_split(labels, 200, seed=0)
    assert np.array_equal(val, val_again) and np.array_equal(fit, again)
    assert not np.array_equal(val, validation_split(labels, 200, seed=1)[1])
    with pytest.raises(ValueError, match="cannot hold every one"):
        validation_split(labels, 5, seed=0)


def test_select_scores_the_validation_set_and_never_the_test_set(
    tmp_path, synthetic_raw, monkeypatch
):
    from sklearn.metrics import log_loss

    from mnist_repro import decode

    logged = {}
    monkeypatch.setattr(
        tracking, "log_metrics", lambda metrics, params=None: logged.update(metrics) or True
    )
    params = write_params(
        tmp_path / "params.yaml", {"select.validation_size": 60, "select.seed": 3}
    )
    # The test images are garbage here: a select run must not even look at them.
    argv = ["train", "--select", "--params", str(params), "--data", str(synthetic_raw)]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 0
    meta = json.loads((tmp_path / "out/model.json").read_text())
    assert "test_accuracy" not in meta and meta["train_size"] == 240
    val = meta["validation"]
    assert val["accuracy"]["n"] == 60 and val["accuracy"]["low"] < val["accuracy"]["value"]
    assert set(logged) == {"regularization rate", *train.SELECT_METRICS}
    assert logged["val_accuracy"] == val["accuracy"]["value"]

    # The scores are those of the saved model on the held-out images.
    arrays = decode.load_raw(synthetic_raw)
    _, held_out = decode.validation_split(arrays["train_labels"], 60, 3)
    estimator = model.load_model(tmp_path / "out/model.skops")
    X = model.features(arrays["train_images"][held_out], "float32")
    y = arrays["train_labels"][held_out]
    assert val["accuracy"]["value"] == pytest.approx(np.mean(estimator.predict(X) == y))
    assert val["log_loss"]["value"] == pytest.approx(log_loss(y, estimator.predict_proba(X)))


def test_select_refuses_a_validation_set_too_large(tmp_path, synthetic_raw, capsys):
    params = write_params(tmp_path / "params.yaml", {"select.validation_size": 299})
    argv = ["train", "--select", "--params", str(params), "--data", str(synthetic_raw)]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 1
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {params}: select.validation_size: ")
    assert not (tmp_path / "out").exists()


def test_the_azure_sweep_optimizes_what_a_select_run_logs():
    from mnist_repro import params, sweep

    settings = params.load_file()["azure"]["sweep"]
    assert settings["primary_metric"] == sweep.METRIC
    assert sweep.METRIC in train.SELECT_METRICS
    assert settings["goal"] == "maximize"  # val_accuracy: higher is better
