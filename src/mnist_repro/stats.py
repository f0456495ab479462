"""The statistics behind the report: intervals and the paired test, as small pure functions.

Each returns a dict with ``value``, ``low`` and ``high`` (the interval's ends). Each one is a
thin wrapper over a kept implementation in SciPy, so the numbers are SciPy's:

- :func:`proportion_interval`: a binomial proportion (accuracy, a class's recall) and its
  Wilson score interval, ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``;
- :func:`mean_interval`: the mean of many per-image values (log loss) with a t interval,
  ``scipy.stats.ttest_1samp(values, 0).confidence_interval()``;
- :func:`macro_f1` and :func:`macro_f1_interval`: macro F1 from confusion counts (vectorized
  over resamples) and its seeded, paired bootstrap interval, ``scipy.stats.bootstrap``;
- :func:`mcnemar`: two classifiers on the same images: the discordant counts and the exact
  McNemar test, ``scipy.stats.binomtest(b, b + c, 0.5)`` (two-sided).

tests/test_stats.py checks each against a value computed independently of SciPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _interval(low: float, high: float) -> dict[str, float]:
    return {"low": float(low), "high": float(high)}


def proportion_interval(k: int, n: int, confidence: float = 0.95) -> dict[str, Any]:
    """``k`` successes out of ``n``: the proportion and its Wilson score interval."""
    from scipy.stats import binomtest

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return {"value": k / n, "k": int(k), "n": int(n), **_interval(ci.low, ci.high)}


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """The mean of ``values`` and its t interval (the central limit theorem, n large)."""
    from scipy.stats import ttest_1samp

    values = np.asarray(values, dtype=np.float64)
    ci = ttest_1samp(values, 0.0).confidence_interval(confidence_level=confidence)
    return {"value": float(values.mean()), **_interval(ci.low, ci.high)}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, axis: int = -1) -> Any:
    """Macro F1 of integer labels ``0..n_classes-1``, along ``axis`` (any leading shape).

    Per class F1 = 2 TP / (true count + predicted count), 0 for a class never seen nor
    predicted (scikit-learn's ``zero_division=0``); macro F1 is their plain mean. Counting is
    one ``np.bincount`` over every resample at once, so a bootstrap needs no Python loop.
    """
    y_true = np.moveaxis(np.asarray(y_true), axis, -1)
    y_pred = np.moveaxis(np.asarray(y_pred), axis, -1)
    lead = y_true.shape[:-1]
    rows = int(np.prod(lead, dtype=np.int64))
    k = n_classes
    offset = (np.arange(rows, dtype=np.int64) * k).reshape(*lead, 1) if lead else 0
    true_counts = np.bincount((offset + y_true).ravel(), minlength=rows * k).reshape(rows, k)
    pred_counts = np.bincount((offset + y_pred).ravel(), minlength=rows * k).reshape(rows, k)
    hits = np.where(y_true == y_pred, y_true, k)  # class k: a miss, counted then dropped
    hit_offset = (np.arange(rows, dtype=np.int64) * (k + 1)).reshape(*lead, 1) if lead else 0
    tp = np.bincount((hit_offset + hits).ravel(), minlength=rows * (k + 1))
    tp = tp.reshape(rows, k + 1)[:, :k]
    denominator = true_counts + pred_counts
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    result = f1.mean(axis=-1).reshape(lead)
    return float(result) if not lead else result


def macro_f1_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    *,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Macro F1 and its bootstrap interval: images resampled with replacement, each keeping
    its (true, predicted) pair; BCa (bias-corrected and accelerated), seeded."""
    from scipy.stats import bootstrap

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    value = macro_f1(y_true, y_pred, n_classes)

    def statistic(t: np.ndarray, p: np.ndarray, axis: int = -1) -> Any:
        return macro_f1(t, p, n_classes, axis=axis)

    if np.array_equal(y_true, y_pred):  # every resample scores 1: BCa is undefined
        return {"value": value, "low": value, "high": value, "resamples": resamples, "seed": seed}
    res = bootstrap(
        (y_true, y_pred),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        batch=100,
        confidence_level=confidence,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return {
        "value": value,
        **_interval(ci.low, ci.high),
        "resamples": resamples,
        "seed": seed,
    }


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """Two classifiers scored on the same images: who is right where the other is wrong.

    ``b``: images A gets right and B wrong; ``c``: the reverse. Under "A and B are equally
    accurate" each discordant image is a fair coin, so the exact two-sided p-value is the
    binomial test of ``b`` successes in ``b + c`` trials with probability 1/2.
    """
    from scipy.stats import binomtest

    right_a = np.asarray(pred_a) == np.asarray(y_true)
    right_b = np.asarray(pred_b) == np.asarray(y_true)
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {
        "both_right": int(np.sum(right_a & right_b)),
        "only_a_right": b,
        "only_b_right": c,
        "both_wrong": int(np.sum(~right_a & ~right_b)),
        "p_value": p,
    }
