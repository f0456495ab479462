"""Stage ``evaluate``: score the trained model on the test set; write metrics, figures, plot data.

Outputs (under ``--out``, default ``reports``):

- ``metrics.json``: accuracy (also the tutorial's run metric ``accuracy``), ``regularization
  rate``, macro F1, log loss, per-class precision/recall/F1, train/test sizes;
- ``figures/digits.png`` (the tutorial's 30 random training digits with their labels),
  ``figures/confusion.png``, ``figures/mistakes.png`` (the most confident mistakes);
- ``plots/confusion.csv``: one ``actual,predicted`` row per test image, for DVC's
  ``confusion`` plot template.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from mnist_repro import figures, model, progress
from mnist_repro.atomic import write_json, write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import load_section, read_json

STAGE = "evaluate"
PARAM_KEYS = ("sample_digits", "sample_seed", "mistakes")
FIGURES = {
    "digits": "figures/digits.png",
    "confusion": "figures/confusion.png",
    "mistakes": "figures/mistakes.png",
}
METRICS_FILE = "metrics.json"
CONFUSION_DATA = "plots/confusion.csv"


def validate_params(section: dict[str, Any], source: str = "params.yaml") -> dict[str, int]:
    """Check the ``evaluate`` section: three non-negative integers (a one-line error if not)."""
    unknown = sorted(set(section) - set(PARAM_KEYS))
    if unknown:
        raise MnistReproError(
            f"{source}: unknown parameter evaluate.{unknown[0]} (known: {', '.join(PARAM_KEYS)})"
        )
    defaults = {"sample_digits": 30, "sample_seed": 0, "mistakes": 32}
    config = {}
    for key, default in defaults.items():
        value = section.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MnistReproError(
                f"{source}: evaluate.{key} must be an integer >= 0, got {value!r}"
            )
        config[key] = value
    if not 1 <= config["sample_digits"] <= 60:
        raise MnistReproError(
            f"{source}: evaluate.sample_digits must be between 1 and 60, "
            f"got {config['sample_digits']!r}"
        )
    return config


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """The train stage's model.json."""
    path = model_dir / "model.json"
    meta = read_json(path, "train")
    if meta.get("preset") not in model.PRESETS:
        raise MnistReproError(f"{path}: unknown preset {meta.get('preset')!r}")
    return meta


def compute_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: list[int]
) -> dict[str, Any]:
    """Accuracy, macro F1, log loss and per-class precision/recall/F1/support."""
    from sklearn.metrics import log_loss, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    per_class = {
        str(c): {
            "precision": _r(precision[i]),
            "recall": _r(recall[i]),
            "f1": _r(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }
    return {
        "accuracy": _r(np.mean(y_true == y_pred)),
        "macro_f1": _r(np.mean(f1)),
        "log_loss": _r(log_loss(y_true, proba, labels=classes)),
        "per_class": per_class,
    }


def _r(value: float) -> float:
    """Metrics rounded to 6 decimals: stable text, more digits than a 10 000-image test set has."""
    return round(float(value), 6)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: list[int]) -> np.ndarray:
    """``matrix[t, p]`` = how many images of class ``classes[t]`` were predicted ``classes[p]``."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        matrix[index[t], index[p]] += 1
    return matrix


def most_confident_mistakes(
    y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, n: int
) -> np.ndarray:
    """Indices of up to ``n`` misclassified images, most confident first (ties: lower index)."""
    wrong = np.flatnonzero(y_true != y_pred)
    order = np.lexsort((wrong, -confidence[wrong]))
    return wrong[order[:n]]


def confusion_csv(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """DVC ``confusion`` template data: ``actual,predicted`` per test image."""
    rows = [f"{t},{p}" for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True)]
    return "actual,predicted\n" + "\n".join(rows) + "\n"


def evaluate(
    estimator: Any,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    config: dict[str, int],
    out: Path,
) -> dict[str, Any]:
    """Score ``estimator`` on the test arrays; write metrics, figures and plot data under out."""
    X_test = model.features(arrays["test_images"], meta["input"]["dtype"])
    y_true = arrays["test_labels"].astype(np.int64)
    classes = [int(c) for c in estimator.classes_]
    with model.thread_limit(meta["params"].get("threads")):
        y_pred = estimator.predict(X_test).astype(np.int64)
        proba = estimator.predict_proba(X_test)
    confidence = proba.max(axis=1)

    metrics = {
        **compute_metrics(y_true, y_pred, proba, classes),
        "regularization rate": meta["params"]["regularization"],
        "preset": meta["preset"],
        "train_size": len(arrays["train_labels"]),
        "test_size": len(y_true),
    }
    write_json(out / METRICS_FILE, metrics)
    write_text(out / CONFUSION_DATA, confusion_csv(y_true, y_pred))

    progress.say(STAGE, "drawing figures")
    picked = figures.sample_indices(
        len(arrays["train_images"]), config["sample_digits"], config["sample_seed"]
    )
    figures.save_png(
        figures.sample_digits(
            arrays["train_images"][picked],
            arrays["train_labels"][picked],
            f"{len(picked)} random training images and their labels (seed {config['sample_seed']})",
        ),
        out / FIGURES["digits"],
    )
    matrix = confusion_matrix(y_true, y_pred, classes)
    figures.save_png(
        figures.confusion(
            matrix,
            classes,
            f"Test set confusion matrix: {len(y_true)} images, "
            f"accuracy {100 * metrics['accuracy']:.2f}% (preset '{meta['preset']}')",
        ),
        out / FIGURES["confusion"],
    )
    worst = most_confident_mistakes(y_true, y_pred, confidence, config["mistakes"])
    n_wrong = int(np.sum(y_true != y_pred))
    figures.save_png(
        figures.mistakes(
            arrays["test_images"][worst],
            y_true[worst],
            y_pred[worst],
            confidence[worst],
            (
                f"The {len(worst)} most confident of {n_wrong} mistakes on the test set"
                if len(worst) < n_wrong
                else f"All {n_wrong} mistakes on the test set"
            )
            + " (true label \u2192 prediction, predicted probability)",
        ),
        out / FIGURES["mistakes"],
    )
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="data/processed/mnist.npz", help="decoded arrays")
    parser.add_argument("--model", default="models", help="folder with model.skops, model.json")
    parser.add_argument("--out", default="reports", help="output folder (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    config = validate_params(load_section(STAGE, args.params), source=str(args.params))
    from mnist_repro.decode import load_npz

    model_dir = Path(args.model)
    meta = read_metadata(model_dir)
    estimator = model.load_model(model_dir / "model.skops")
    arrays = load_npz(args.data)
    progress.say(STAGE, f"scoring {len(arrays['test_labels'])} test images")
    metrics = evaluate(estimator, meta, arrays, config, Path(args.out))
    progress.say(
        STAGE,
        f"accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
        f"log loss {metrics['log_loss']:.4f}; wrote {args.out}/{METRICS_FILE} and figures",
    )
    return 0
