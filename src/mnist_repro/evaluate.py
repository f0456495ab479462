"""Stage ``evaluate``: score the trained model on the test set; write metrics, figures, plot data.

Outputs (under ``--out``, default ``reports``):

- ``metrics.json``: accuracy (also the tutorial's run metric ``accuracy``), ``regularization
  rate``, macro F1, log loss, per-class precision/recall/F1, train/test sizes; each with its
  interval (``<metric>_ci``: Wilson for accuracy and recall, a seeded bootstrap for macro F1, a
  t interval for log loss); and ``tutorial_preset``: the model of ``--baseline`` (the
  tutorial preset, stage ``train_tutorial``) scored on the same test images, with the paired
  comparison (discordant counts, exact McNemar test; :mod:`mnist_repro.stats`);
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

from mnist_repro import figures, log, model, params, paths, stats
from mnist_repro.atomic import write_json, write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import Integral, Interval, Real, read_json

LOG = log.get("evaluate")
SPEC = {
    "sample_digits": [Interval(Integral, 1, 60)],
    "sample_seed": [Interval(Integral, 0, 2**32 - 1)],
    "mistakes": [Interval(Integral, 0, 1000)],
    "confidence": [Interval(Real, 0.5, 1, closed="neither")],
    "bootstrap_resamples": [Interval(Integral, 100, 100_000)],
    "bootstrap_seed": [Interval(Integral, 0, 2**32 - 1)],
}


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """The train stage's model.json."""
    path = model_dir / paths.META_FILE
    meta = read_json(path, "train")
    if meta.get("preset") not in model.PRESETS:
        raise MnistReproError(f"{path}: unknown preset {meta.get('preset')!r}")
    return meta


def compute_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    classes: list[int],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Accuracy, macro F1, log loss and per-class precision/recall/F1/support, with intervals
    at ``config["confidence"]`` (``<name>_ci``: ``{"low", "high"}``)."""
    from sklearn.metrics import log_loss, precision_recall_fscore_support

    level = config["confidence"]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    per_class = {}
    for i, c in enumerate(classes):
        hits = int(np.sum((y_true == c) & (y_pred == c)))
        row = {
            "precision": _r(precision[i]),
            "recall": _r(recall[i]),
            "f1": _r(f1[i]),
            "support": int(support[i]),
        }
        if support[i]:
            row["recall_ci"] = _ci(stats.proportion_interval(hits, int(support[i]), level))
        per_class[str(c)] = row
    correct = int(np.sum(y_true == y_pred))
    index = np.searchsorted(classes, y_true)
    eps = np.finfo(proba.dtype).eps
    losses = -np.log(np.clip(proba[np.arange(len(y_true)), index], eps, 1))
    f1_interval = stats.macro_f1_interval(
        index,
        np.searchsorted(classes, y_pred),
        len(classes),
        resamples=config["bootstrap_resamples"],
        seed=config["bootstrap_seed"],
        confidence=level,
    )
    return {
        "accuracy": _r(correct / len(y_true)),
        "accuracy_ci": _ci(stats.proportion_interval(correct, len(y_true), level)),
        "correct": correct,
        "macro_f1": _r(np.mean(f1)),
        "macro_f1_ci": _ci(f1_interval),
        "log_loss": _r(log_loss(y_true, proba, labels=classes)),
        "log_loss_ci": _ci(stats.mean_interval(losses, level)),
        "per_class": per_class,
    }


def _ci(interval: dict[str, Any]) -> dict[str, float]:
    return {"low": _r(interval["low"]), "high": _r(interval["high"])}


def predictions(estimator: Any, meta: dict[str, Any], images: np.ndarray):
    """Predicted labels and class probabilities of ``estimator`` on ``images``."""
    X = model.features(images, meta["input"]["dtype"])
    with model.thread_limit(meta["params"].get("threads")):
        y_pred = estimator.predict(X).astype(np.int64)
        proba = estimator.predict_proba(X)
    return y_pred, proba


def compare(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    baseline_pred: np.ndarray,
    baseline_proba: np.ndarray,
    baseline_meta: dict[str, Any],
    classes: list[int],
    config: dict[str, Any],
) -> dict[str, Any]:
    """The baseline (the tutorial preset) on the same test images, and the paired test."""
    scores = compute_metrics(y_true, baseline_pred, baseline_proba, classes, config)
    paired = stats.mcnemar(y_true, y_pred, baseline_pred)
    return {
        "preset": baseline_meta["preset"],
        "regularization rate": baseline_meta["params"]["regularization"],
        **{k: v for k, v in scores.items() if k != "per_class"},
        "paired": {
            "both_right": paired["both_right"],
            "only_this_right": paired["only_a_right"],
            "only_tutorial_right": paired["only_b_right"],
            "both_wrong": paired["both_wrong"],
            "mcnemar_exact_p": float(f"{paired['p_value']:.6g}"),
        },
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
    config: dict[str, Any],
    out: Path,
    baseline: tuple[Any, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Score ``estimator`` (and ``baseline``, the tutorial preset: model and model.json) on
    the test arrays; write metrics, figures and plot data under out."""
    y_true = arrays["test_labels"].astype(np.int64)
    classes = [int(c) for c in estimator.classes_]
    y_pred, proba = predictions(estimator, meta, arrays["test_images"])
    confidence = proba.max(axis=1)

    metrics = {
        **compute_metrics(y_true, y_pred, proba, classes, config),
        "confidence_level": config["confidence"],
        "bootstrap": {"resamples": config["bootstrap_resamples"], "seed": config["bootstrap_seed"]},
        "regularization rate": meta["params"]["regularization"],
        "preset": meta["preset"],
        "train_size": len(arrays["train_labels"]),
        "test_size": len(y_true),
    }
    if baseline is not None:
        base_estimator, base_meta = baseline
        if [int(c) for c in base_estimator.classes_] != classes:
            raise MnistReproError("the baseline model predicts other classes than the model")
        LOG.info("scoring the %s preset on the same images", base_meta["preset"])
        base_pred, base_proba = predictions(base_estimator, base_meta, arrays["test_images"])
        metrics["tutorial_preset"] = compare(
            y_true, y_pred, base_pred, base_proba, base_meta, classes, config
        )
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
    parser.add_argument(
        "--baseline",
        help="folder with the tutorial preset's model to compare with on the same images "
        "(dvc.yaml: models/tutorial)",
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
    baseline = None
    if args.baseline:
        base_dir = Path(args.baseline)
        baseline = (model.load_model(base_dir / paths.MODEL_FILE), read_metadata(base_dir))
    metrics = evaluate(estimator, meta, arrays, config, out, baseline)
    LOG.info("wrote %s and figures", out / paths.METRICS_FILE)
    ci = metrics["accuracy_ci"]
    log.result(
        f"accuracy {metrics['accuracy']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}], "
        f"macro F1 {metrics['macro_f1']:.4f}, log loss {metrics['log_loss']:.4f}"
    )
    if "tutorial_preset" in metrics:
        tut = metrics["tutorial_preset"]
        paired = tut["paired"]
        log.result(
            f"tutorial preset accuracy {tut['accuracy']:.4f}; only this model right on "
            f"{paired['only_this_right']} images, only the tutorial preset on "
            f"{paired['only_tutorial_right']}: exact McNemar p = {paired['mcnemar_exact_p']:.3g}"
        )
    return 0
