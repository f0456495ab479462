"""Stage ``train``: fit the tutorial's regularized logistic regression on the raw MNIST files.

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
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mnist_repro import blas, model, progress, tracking
from mnist_repro.atomic import write_json
from mnist_repro.errors import MnistReproError
from mnist_repro.params import load_section

STAGE = "train"
MODEL_FILE = "model.skops"
META_FILE = "model.json"
TIMINGS_FILE = "train.timings.json"

PARAM_KEYS = ("preset", "regularization", "max_iter", "tol", "seed", "threads")


def validate_params(section: dict[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Check the ``train`` section and fill the preset's defaults; a one-line error otherwise.

    Returns ``{"preset", "regularization", "max_iter", "tol", "seed", "threads"}``, concrete.
    """

    def bad(key: str, problem: str) -> MnistReproError:
        return MnistReproError(f"{source}: train.{key} {problem}, got {section.get(key)!r}")

    unknown = sorted(set(section) - set(PARAM_KEYS))
    if unknown:
        return_keys = ", ".join(PARAM_KEYS)
        raise MnistReproError(
            f"{source}: unknown parameter train.{unknown[0]} (known: {return_keys})"
        )

    preset_name = section.get("preset", "fast")
    if preset_name not in model.PRESETS:
        raise bad("preset", f"must be one of {', '.join(model.PRESETS)}")
    preset = model.PRESETS[preset_name]

    reg = section.get("regularization", 0.5)
    if not _is_number(reg) or not math.isfinite(reg) or reg <= 0:
        raise bad("regularization", "must be a number > 0 (C = 1 / regularization)")

    max_iter = section.get("max_iter")
    if max_iter is None:
        max_iter = preset.max_iter
    elif not _is_int(max_iter) or max_iter < 1:
        raise bad("max_iter", "must be an integer >= 1 (or null for the preset's default)")

    tol = section.get("tol")
    if tol is None:
        tol = preset.tol
    elif not _is_number(tol) or not math.isfinite(tol) or tol <= 0:
        raise bad("tol", "must be a number > 0 (or null for the preset's default)")

    seed = section.get("seed", 42)
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise bad("seed", "must be an integer in [0, 2**32)")

    threads = section.get("threads", 1)
    if threads is not None and (not _is_int(threads) or threads < 1):
        raise bad("threads", "must be an integer >= 1 (or null for all cores)")

    return {
        "preset": preset_name,
        "regularization": float(reg),
        "max_iter": int(max_iter),
        "tol": float(tol),
        "seed": int(seed),
        "threads": threads,
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fit(config: dict[str, Any], images: np.ndarray, labels: np.ndarray) -> tuple[Any, dict]:
    """Fit the configured preset on (N, 28, 28) uint8 images; return the model and fit facts."""
    preset = model.PRESETS[config["preset"]]
    estimator = model.build_estimator(
        config["preset"],
        config["regularization"],
        config["max_iter"],
        config["tol"],
        config["seed"],
    )
    X = model.features(images, preset.dtype)
    what = f"fitting preset '{preset.name}' ({len(X)} images, C={1 / config['regularization']:g})"
    with warnings.catch_warnings():
        # Convergence is recorded in model.json and reported below, not as a warning.
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        with progress.ticking(STAGE, what), model.thread_limit(config["threads"]):
            estimator.fit(X, labels)
        fit_s = time.perf_counter() - start
    n_iter = model.iterations(estimator)
    converged = max(n_iter) < config["max_iter"]
    if not converged:
        progress.say(
            STAGE,
            f"note: stopped at max_iter={config['max_iter']} before tol={config['tol']:g}"
            + (" (as this preset intends: see README)" if preset.name == "fast" else ""),
        )
    return estimator, {"n_iter": n_iter, "converged": converged, "fit_s": fit_s}


def accuracy(estimator: Any, config: dict[str, Any], images: np.ndarray, labels: np.ndarray):
    """Test-set accuracy of a fitted preset."""
    X = model.features(images, model.PRESETS[config["preset"]].dtype)
    with model.thread_limit(config["threads"]):
        return float(np.mean(estimator.predict(X) == labels))


def metadata(
    config: dict[str, Any],
    facts: dict,
    arrays: dict[str, np.ndarray],
    data_hashes: dict,
    test_accuracy: float,
    blas_record: dict[str, Any],
) -> dict[str, Any]:
    """model.json: everything that decides the model, and nothing that varies between runs."""
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
        "test_size": len(arrays["test_labels"]),
        "classes": sorted(int(c) for c in np.unique(arrays["train_labels"])),
        "n_iter": facts["n_iter"],
        "converged": facts["converged"],
        "test_accuracy": test_accuracy,
        "packages": package_versions(),
        "blas": blas_record,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="data/raw", help="folder with the four idx .gz files")
    parser.add_argument("--out", default="models", help="output folder (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = validate_params(load_section(STAGE, args.params), source=str(args.params))
    kernel = blas.kernel_setting(args.params)  # the CLI pinned it before NumPy loaded
    tracking.check()
    from mnist_repro import decode
    from mnist_repro.provenance import file_hashes, git_commit, git_dirty, python_version

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise MnistReproError(f"{data_dir}: data folder not found (run the download stage first)")
    progress.say(STAGE, f"reading {data_dir}")
    t0 = time.perf_counter()
    arrays = decode.load_raw(data_dir)
    hashes = file_hashes([data_dir / name for name in decode.FILES.values()])
    load_s = time.perf_counter() - t0

    estimator, facts = fit(config, arrays["train_images"], arrays["train_labels"])
    t0 = time.perf_counter()
    test_accuracy = accuracy(estimator, config, arrays["test_images"], arrays["test_labels"])
    predict_s = time.perf_counter() - t0
    progress.say(STAGE, f"test accuracy {test_accuracy:.4f} (the tutorial published 0.9204)")

    # Log first: if MLflow refuses, the stage fails before writing anything.
    if tracking.log_metrics(
        {"regularization rate": config["regularization"], "accuracy": test_accuracy},
        params=config,
    ):
        progress.say(STAGE, "logged 'regularization rate' and 'accuracy' to MLflow")

    out = Path(args.out)
    model.save_model(estimator, out / MODEL_FILE)
    meta = metadata(config, facts, arrays, hashes, test_accuracy, blas.record(kernel))
    write_json(out / META_FILE, meta)
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
    write_json(out / TIMINGS_FILE, timings)
    progress.say(STAGE, f"wrote {out / MODEL_FILE} and {out / META_FILE}")
    return 0
