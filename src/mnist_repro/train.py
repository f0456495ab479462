"""Stage ``train``: fit the tutorial's regularized logistic regression on the raw MNIST files.

``--section`` picks the params section (``train``, or ``train_tutorial`` for the stage that
reruns the tutorial preset as the report's paired baseline). ``--select`` is model selection:
fit on the training images minus a seeded, stratified validation set (params ``select``), score
that validation set, never the test set, and log ``val_accuracy`` and ``val_log_loss``: what
``make sweep`` and each trial of ``make remote-sweep`` run.

Like the tutorial's ``train.py`` it reads the four idx files (``--data``), fits on the training
set, scores the test set and logs ``regularization rate`` and ``accuracy`` (to MLflow when there
is a tracking server: an Azure ML job, or ``MLFLOW_TRACKING_URI``). It writes

- ``<out>/model.skops``: the fitted model (skops, canonical bytes);
- ``<out>/model.json``: what the model is: params, data hashes, package versions, the BLAS
  kernel, iterations, convergence, test accuracy. Byte-identical on a rerun with the same
  params and data, on any machine that can run the pinned kernel;
- ``<out>/train.timings.json``: git commit, host, CPU and timings. Not a DVC output, git-ignored.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mnist_repro import blas, log, model, params, paths, solver, stats, tracking
from mnist_repro.atomic import write_json
from mnist_repro.errors import MnistReproError
from mnist_repro.params import Integral, Interval, Options, Real

LOG = log.get("train")
SPEC = {
    "preset": [Options(set(model.PRESETS))],
    "regularization": [Interval(Real, 0, 1e6, closed="right")],
    "max_iter": [Interval(Integral, 1, 1_000_000), None],
    "tol": [Interval(Real, 0, 1, closed="right"), None],
    "seed": [Interval(Integral, 0, 2**32 - 1)],
    "threads": [Interval(Integral, 1, 4096), None],
    "jobs": [Interval(Integral, 1, 64)],
    "window": [Interval(Integral, 1, 1000)],
    "precondition": [Interval(Real, 0, 1e6, closed="right")],
}
SECTIONS = ("train", "train_tutorial")  # the sections --section may name (both dvc.yaml stages)
SELECT_SPEC = {
    "validation_size": [Interval(Integral, 1, 1_000_000)],
    "seed": [Interval(Integral, 0, 2**32 - 1)],
    "confidence": [Interval(Real, 0.5, 1, closed="neither")],
}
# What --select logs to MLflow; params azure.sweep.primary_metric names one of them.
SELECT_METRICS = ("val_accuracy", "val_log_loss")


def load_config(path: str | os.PathLike[str] = paths.PARAMS, section: str = "train") -> dict:
    """The checked ``section`` (``train`` by default) of ``path``, made concrete by
    :func:`complete`."""
    return complete(params.load(section, SPEC, path))


def complete(section: dict[str, Any]) -> dict[str, Any]:
    """A checked ``train`` section with the preset's ``max_iter``/``tol`` in place of nulls."""
    preset = model.PRESETS[section["preset"]]
    return section | {
        "regularization": float(section["regularization"]),
        "max_iter": section["max_iter"] or preset.max_iter,
        "tol": float(section["tol"] or preset.tol),
    }


def fit(config: dict[str, Any], images: np.ndarray, labels: np.ndarray) -> tuple[Any, dict]:
    """Fit the configured preset on (N, 28, 28) uint8 images; return the model and fit facts.

    ``fast`` is fitted by :mod:`mnist_repro.solver` into a stock ``LogisticRegression``;
    ``tutorial`` by scikit-learn's liblinear, as the tutorial did.
    """
    preset = model.PRESETS[config["preset"]]
    estimator = model.build_estimator(
        config["preset"],
        config["regularization"],
        config["max_iter"],
        config["tol"],
        config["seed"],
    )
    X = model.features(images, preset.dtype)
    C = 1 / config["regularization"]
    what = f"fitting preset '{preset.name}' ({len(X)} images, C={C:g})"
    facts: dict[str, Any] = {}
    with warnings.catch_warnings():
        # Convergence is recorded in model.json and reported below, not as a warning.
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        with (
            log.ticking(LOG, what),
            model.thread_limit(config["threads"]),
            model.parallel(config["jobs"]),
        ):
            if preset.name == "fast":
                result = solver.fit_softmax(
                    X,
                    labels,
                    C,
                    tol=config["tol"],
                    window=config["window"],
                    precondition=config["precondition"],
                    max_iter=config["max_iter"],
                )
                solver.install(estimator, result)
            else:
                estimator.fit(X, labels)
        fit_s = time.perf_counter() - start
    n_iter = model.iterations(estimator)
    if preset.name == "fast":
        converged = result.converged
        facts["solver"] = {
            "iterations": result.n_iter,
            "evaluations": result.n_fev,
            "stop": result.stop,
            "objective": round(result.objective, 12),
        }
        LOG.info(
            "%d iterations, %d evaluations, objective %.8f, stopped by %s",
            result.n_iter,
            result.n_fev,
            result.objective,
            result.stop,
        )
    else:
        converged = max(n_iter) < config["max_iter"]
    if not converged:
        LOG.info("note: stopped at max_iter=%d before tol=%g", config["max_iter"], config["tol"])
    return estimator, facts | {"n_iter": n_iter, "converged": converged, "fit_s": fit_s}


def accuracy(estimator: Any, config: dict[str, Any], images: np.ndarray, labels: np.ndarray):
    """Test-set accuracy of a fitted preset."""
    X = model.features(images, model.PRESETS[config["preset"]].dtype)
    with model.thread_limit(config["threads"]):
        return float(np.mean(estimator.predict(X) == labels))


def validation_scores(
    estimator: Any, config: dict[str, Any], images: np.ndarray, labels: np.ndarray, confidence
) -> dict[str, Any]:
    """Accuracy and log loss on the validation images, each with its interval."""
    X = model.features(images, model.PRESETS[config["preset"]].dtype)
    with model.thread_limit(config["threads"]):
        proba = estimator.predict_proba(X)
    classes = list(estimator.classes_)
    column = np.searchsorted(classes, labels)
    predicted = np.asarray(classes)[np.argmax(proba, axis=1)]
    # Per-image log loss, clipped as scikit-learn's log_loss clips (its mean is log_loss).
    eps = np.finfo(proba.dtype).eps
    losses = -np.log(np.clip(proba[np.arange(len(labels)), column], eps, 1))
    return {
        "accuracy": stats.proportion_interval(
            int(np.sum(predicted == labels)), len(labels), confidence
        ),
        "log_loss": stats.mean_interval(losses, confidence),
        "confidence": confidence,
    }


def metadata(
    config: dict[str, Any],
    facts: dict,
    arrays: dict[str, np.ndarray],
    data_hashes: dict,
    scores: dict[str, Any],
    blas_record: dict[str, Any],
) -> dict[str, Any]:
    """model.json: everything that decides the model, and nothing that varies between runs.

    ``scores`` is ``test_size`` and ``test_accuracy``, or for a ``--select`` run the split
    (``select``) and the ``validation`` scores in place of any test score.
    """
    from mnist_repro.provenance import package_versions

    preset = model.PRESETS[config["preset"]]
    return {
        "preset": preset.name,
        "estimator": preset.description,
        "params": config,
        "C": 1.0 / config["regularization"],
        "input": {"dtype": preset.dtype, "features": "28x28 pixels flattened, / 255"},
        "data": data_hashes,
        "train_size": len(arrays["train_labels"]),
        "classes": sorted(int(c) for c in np.unique(arrays["train_labels"])),
        "n_iter": facts["n_iter"],
        "converged": facts["converged"],
        **({"solver": facts["solver"]} if "solver" in facts else {}),
        **scores,
        "packages": package_versions(),
        "blas": blas_record,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=paths.RAW, help="folder with the four idx .gz files")
    parser.add_argument("--out", default=paths.MODELS, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--section",
        default="train",
        choices=SECTIONS,
        help="params section to train with (default: %(default)s)",
    )
    parser.add_argument(
        "--select",
        action="store_true",
        help="model selection: fit without the validation set (params select), score it "
        "instead of the test set",
    )


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = load_config(args.params, args.section)
    select = params.load("select", SELECT_SPEC, args.params) if args.select else None
    kernel = blas.kernel_setting(args.params)  # the CLI pinned it before NumPy loaded
    tracking.check()
    from mnist_repro import decode
    from mnist_repro.provenance import file_hashes, git_commit, git_dirty, python_version

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise MnistReproError(f"{data_dir}: data folder not found (run the download stage first)")
    LOG.info("reading %s", data_dir)
    t0 = time.perf_counter()
    arrays = decode.load_raw(data_dir)
    hashes = file_hashes([data_dir / name for name in decode.FILES.values()])
    load_s = time.perf_counter() - t0

    if select is not None:
        try:
            fit_idx, val_idx = decode.validation_split(
                arrays["train_labels"], select["validation_size"], select["seed"]
            )
        except ValueError as exc:
            raise MnistReproError(f"{args.params}: select.validation_size: {exc}") from None
        LOG.info(
            "model selection: fitting on %d training images, scoring %d held out (seed %d)",
            len(fit_idx),
            len(val_idx),
            select["seed"],
        )
        arrays = {
            "train_images": arrays["train_images"][fit_idx],
            "train_labels": arrays["train_labels"][fit_idx],
            "validation_images": arrays["train_images"][val_idx],
            "validation_labels": arrays["train_labels"][val_idx],
        }

    estimator, facts = fit(config, arrays["train_images"], arrays["train_labels"])
    t0 = time.perf_counter()
    if select is None:
        test_accuracy = accuracy(estimator, config, arrays["test_images"], arrays["test_labels"])
        scores = {"accuracy": test_accuracy}
        LOG.info("test accuracy %.4f", test_accuracy)
    else:
        validation = validation_scores(
            estimator,
            config,
            arrays["validation_images"],
            arrays["validation_labels"],
            select["confidence"],
        )
        values = (validation["accuracy"]["value"], validation["log_loss"]["value"])
        scores = dict(zip(SELECT_METRICS, values, strict=True))
        LOG.info(
            "validation accuracy %.4f [%.4f, %.4f], log loss %.4f",
            scores["val_accuracy"],
            validation["accuracy"]["low"],
            validation["accuracy"]["high"],
            scores["val_log_loss"],
        )
    predict_s = time.perf_counter() - t0

    # Log first: if MLflow refuses, the stage fails before writing anything.
    if tracking.log_metrics({"regularization rate": config["regularization"], **scores}, config):
        LOG.info("logged 'regularization rate' and %s to MLflow", " and ".join(map(repr, scores)))

    out = Path(args.out)
    model.save_model(estimator, out / paths.MODEL_FILE)
    if select is None:
        scored = {"test_size": len(arrays["test_labels"]), "test_accuracy": test_accuracy}
    else:
        scored = {"select": select, "validation": validation}
    write_json(
        out / paths.META_FILE,
        metadata(config, facts, arrays, hashes, scored, blas.record(kernel)),
    )
    timings = {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "host": platform.node(),
        **blas.host(),
        "python": python_version(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": {
            "load": round(load_s, 3),
            "fit": round(facts["fit_s"], 3),
            "predict": round(predict_s, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    write_json(out / paths.TIMINGS_FILE, timings)
    LOG.info("wrote %s and %s", out / paths.MODEL_FILE, out / paths.META_FILE)
    return 0
