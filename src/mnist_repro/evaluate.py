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

from mnist_repro import figures, log, model, params, paths
from mnist_repro.atomic import write_json, write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import Integral, Interval, read_json

LOG = log.get("evaluate")
SPEC = {
    "sample_digits": [Interval(Integral, 1, 60)],
    "sample_seed": [Interval(Integral, 0, 2**32 - 1)],
    "mistakes": [Interval(Integral, 0, 1000)],
}


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """The train stage's model.json."""
    path = model_dir / paths.META_FILE
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
    write_json(out / paths.METRICS_FILE, metrics)
    write_text(out / paths.CONFUSION_CSV, confusion_csv(y_true, y_pred))

    LOG.info("drawing figures")
    picked = figures.sample_indices(
        len(arrays["train_images"]), config["sample_digits"], config["sample_seed"]
    )
    figures.save_png(
        figures.sample_digits(
            arrays["train_images"][picked],
            arrays["train_labels"][picked],
            f"{len(picked)} random training images and their labels (seed {config['sample_seed']})",
        ),
        out / paths.FIGURE_FILES["digits"],
    )
    matrix = confusion_matrix(y_true, y_pred, classes)
    figures.save_png(
        figures.confusion(
            matrix,
            classes,
            f"Test set confusion matrix: {len(y_true)} images, "
            f"accuracy {100 * metrics['accuracy']:.2f}% (preset '{meta['preset']}')",
        ),
        out / paths.FIGURE_FILES["confusion"],
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
        out / paths.FIGURE_FILES["mistakes"],
    )
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default=paths.PROCESSED / paths.NPZ_NAME, help="decoded arrays (%(default)s)"
    )
    parser.add_argument(
        "--model", default=paths.MODELS, help="folder with the trained model (%(default)s)"
    )
    parser.add_argument("--out", default=paths.REPORTS, help="output folder (%(default)s)")


def run(args: argparse.Namespace) -> int:
    config = params.load("evaluate", SPEC, args.params)
    from mnist_repro.decode import load_npz

    model_dir = Path(args.model)
    meta = read_metadata(model_dir)
    estimator = model.load_model(model_dir / paths.MODEL_FILE)
    arrays = load_npz(args.data)
    LOG.info("scoring %d test images", len(arrays["test_labels"]))
    out = Path(args.out)
    metrics = evaluate(estimator, meta, arrays, config, out)
    LOG.info("wrote %s and figures", out / paths.METRICS_FILE)
    log.result(
        f"accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
        f"log loss {metrics['log_loss']:.4f}"
    )
    return 0
