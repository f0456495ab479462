"""Each statistic of mnist_repro.stats against a value computed independently of SciPy: closed
formulas with the standard library, hand-summed binomial tails, a textbook t quantile, a naive
bootstrap loop over scikit-learn's f1_score; plus the bootstrap's determinism under its seed."""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest

from mnist_repro import stats

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054, from the standard library


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval, closed formula (Wilson 1927; Agresti and Coull 1998, eq. 2)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(9270, 10000), (9193, 10000), (871, 892), (0, 20), (7, 20)])
def test_wilson_interval_matches_the_closed_formula(k, n):
    got = stats.proportion_interval(k, n)
    low, high = wilson(k, n)
    assert got["value"] == k / n and (got["k"], got["n"]) == (k, n)
    assert got["low"] == pytest.approx(low, abs=1e-12)
    assert got["high"] == pytest.approx(high, abs=1e-12)


def test_wilson_interval_for_the_committed_accuracy():
    # 9270 of 10000 (the default preset's test accuracy): 0.92174 to 0.93194, about +-0.0051.
    got = stats.proportion_interval(9270, 10000)
    assert (round(got["low"], 5), round(got["high"], 5)) == (0.92174, 0.93194)


def test_wilson_interval_at_another_level():
    got = stats.proportion_interval(50, 100, confidence=0.9)
    low, high = wilson(50, 100, NormalDist().inv_cdf(0.95))
    assert (got["low"], got["high"]) == pytest.approx((low, high), abs=1e-12)


def test_proportion_refuses_impossible_counts():
    with pytest.raises(ValueError):
        stats.proportion_interval(11, 10)
    with pytest.raises(ValueError):
        stats.proportion_interval(0, 0)


def test_mean_interval_matches_the_t_table():
    # 1..10: mean 5.5, sd sqrt(55/6); t(0.975, 9 df) = 2.2621571628 (any t table).
    values = np.arange(1, 11, dtype=float)
    half = 2.2621571628 * math.sqrt(55 / 6) / math.sqrt(10)
    got = stats.mean_interval(values)
    assert got["value"] == 5.5
    assert (got["low"], got["high"]) == pytest.approx((5.5 - half, 5.5 + half), abs=1e-9)


# --- McNemar ----------------------------------------------------------------------------------


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value summed by hand: twice the smaller binomial tail at 1/2."""
    n = b + c
    tail = sum(Fraction(math.comb(n, i), 2**n) for i in range(min(b, c) + 1))
    return float(min(Fraction(1), 2 * tail))


def paired(b: int, c: int, both_right: int = 50, both_wrong: int = 5):
    """Labels and two models' predictions with the given discordant counts."""
    n = both_right + b + c + both_wrong
    y = np.zeros(n, dtype=int)
    a = np.zeros(n, dtype=int)
    t = np.zeros(n, dtype=int)
    a[both_right + b :] = 1  # A wrong on the c and both-wrong images
    t[both_right : both_right + b] = 1  # B wrong on the b images
    t[both_right + b + c :] = 1  # and on the both-wrong ones
    return y, a, t


@pytest.mark.parametrize(("b", "c"), [(0, 5), (5, 0), (3, 3), (12, 4), (150, 86), (1, 10)])
def test_exact_mcnemar_matches_the_hand_summed_binomial_tail(b, c):
    y, a, t = paired(b, c)
    got = stats.mcnemar(y, a, t)
    assert (got["only_a_right"], got["only_b_right"]) == (b, c)
    assert (got["both_right"], got["both_wrong"]) == (50, 5)
    assert got["p_value"] == pytest.approx(exact_mcnemar(b, c), rel=1e-9)


def test_exact_mcnemar_known_values():
    # 0 against 5: both tails are 1/32, p = 2/32 (the smallest p five discordant pairs allow).
    assert stats.mcnemar(*paired(0, 5))["p_value"] == pytest.approx(0.0625, rel=1e-12)
    assert stats.mcnemar(*paired(4, 4))["p_value"] == 1.0
    assert stats.mcnemar(*paired(0, 0))["p_value"] == 1.0  # no discordant image: no evidence
    # Agresti, Categorical Data Analysis (2nd ed., Table 10.1), approval ratings: b=150, c=86,
    # McNemar z = (86 - 150) / sqrt(236) = -4.17; the exact test agrees, p about 3.8e-5.
    p = stats.mcnemar(*paired(150, 86))["p_value"]
    z = (86 - 150) / math.sqrt(236)
    assert round(z, 2) == -4.17
    assert p == pytest.approx(exact_mcnemar(150, 86), rel=1e-9)
    assert 2e-5 < p < 6e-5


# --- macro F1 and its bootstrap ----------------------------------------------------------------


def noisy(n: int, accuracy: float, seed: int, k: int = 10):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < accuracy, y, rng.integers(0, k, n))
    return y, pred


def test_macro_f1_matches_scikit_learn_also_with_an_absent_class():
    from sklearn.metrics import f1_score

    y, pred = noisy(3000, 0.9, seed=1)
    assert stats.macro_f1(y, pred, 10) == pytest.approx(f1_score(y, pred, average="macro"))
    y[y == 7] = 3  # class 7 never true, but predicted: its F1 is 0, as scikit-learn says
    expected = f1_score(y, pred, labels=list(range(10)), average="macro", zero_division=0)
    assert stats.macro_f1(y, pred, 10) == pytest.approx(expected)


def test_macro_f1_is_vectorized_over_resamples():
    y, pred = noisy(500, 0.8, seed=2)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 500, size=(4, 3, 500))
    batched = stats.macro_f1(y[idx], pred[idx], 10)
    assert batched.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            assert batched[i, j] == pytest.approx(stats.macro_f1(y[idx[i, j]], pred[idx[i, j]], 10))
    # Resamples along another axis, as scipy.stats.bootstrap may pass them.
    moved = stats.macro_f1(np.moveaxis(y[idx], -1, 0), np.moveaxis(pred[idx], -1, 0), 10, axis=0)
    assert np.allclose(moved, batched)


def naive_bootstrap(y, pred, resamples: int, seed: int) -> tuple[float, float]:
    """A plain percentile bootstrap with scikit-learn's f1_score: one resample at a time."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        values.append(f1_score(y[i], pred[i], labels=list(range(10)), average="macro"))
    return tuple(np.percentile(values, [2.5, 97.5]))


def test_bootstrap_interval_agrees_with_a_naive_bootstrap_loop():
    y, pred = noisy(2000, 0.9, seed=3)
    got = stats.macro_f1_interval(y, pred, 10, resamples=1000, seed=0)
    low, high = naive_bootstrap(y, pred, 1000, seed=1)
    assert got["low"] < got["value"] < got["high"]
    # Different resamples and BCa against percentile: the ends agree to Monte Carlo noise.
    assert got["low"] == pytest.approx(low, abs=0.004)
    assert got["high"] == pytest.approx(high, abs=0.004)


def test_bootstrap_width_matches_the_binomial_noise_it_should_have():
    # Two balanced classes, errors symmetric: macro F1 is close to accuracy, whose standard
    # error is sqrt(p (1 - p) / n); the 95% bootstrap interval is about +-1.96 of those.
    y, pred = noisy(10000, 0.8, seed=4, k=2)
    got = stats.macro_f1_interval(y, pred, 2, resamples=2000, seed=0)
    p = float(np.mean(y == pred))
    expected_half = Z95 * math.sqrt(p * (1 - p) / len(y))
    assert (got["high"] - got["low"]) / 2 == pytest.approx(expected_half, rel=0.1)


def test_bootstrap_is_deterministic_under_its_seed():
    y, pred = noisy(1500, 0.85, seed=5)
    first = stats.macro_f1_interval(y, pred, 10, resamples=500, seed=7)
    again = stats.macro_f1_interval(y, pred, 10, resamples=500, seed=7)
    other = stats.macro_f1_interval(y, pred, 10, resamples=500, seed=8)
    assert first == again
    assert (first["low"], first["high"]) != (other["low"], other["high"])
    assert (first["resamples"], first["seed"]) == (500, 7)


def test_bootstrap_of_a_perfect_classifier_is_the_point():
    y = np.arange(100) % 10
    got = stats.macro_f1_interval(y, y, 10, resamples=200, seed=0)
    assert (got["value"], got["low"], got["high"]) == (1.0, 1.0, 1.0)
