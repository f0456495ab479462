"""The fast preset's solver minimizes scikit-learn's own objective: the optimum does not move.

Reference: scikit-learn's ``LogisticRegression(solver="lbfgs")`` run to a tight tolerance in
float64 on the same (small, synthetic) data. Tolerances stated here:

- the objective: scikit-learn's own loss code and :func:`solver.loss_gradient` agree to 1e-7
  relative (float32 scores), and the gradient to 1e-6;
- at the preset's stopping rule (tol 2e-3 over 5 iterations) the objective is within 2e-3
  relative of the optimum (the rule's promise) and never below it;
- run tight (tol 0: scipy's own test, as scikit-learn sets it), the objective is within 1e-6
  relative and the weights within 1e-3 relative (2-norm over [W b]) of the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.dataset import fake_digits
from mnist_repro import model, solver

C = 2.0


@pytest.fixture(scope="module")
def data():
    images, labels = fake_digits(300, np.random.default_rng(3))
    return model.features(images[:, ::2, ::2], "float32"), labels  # 14x14 keeps it quick


@pytest.fixture(scope="module")
def reference(data):
    from sklearn.linear_model import LogisticRegression

    X, y = data
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=20_000).fit(X.astype(np.float64), y)
    return ref, solver.objective(X, y, C, ref.coef_, ref.intercept_)


def fit(data, **kw):
    X, y = data
    return solver.fit_softmax(
        X, y, C, **({"tol": 2e-3, "window": 5, "precondition": 0.005, "max_iter": 500} | kw)
    )


def stacked(coef, intercept):
    return np.hstack([np.asarray(coef, np.float64), np.asarray(intercept, np.float64)[:, None]])


def test_the_objective_is_scikit_learns(data):
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    X, y = data
    classes, y_idx = np.unique(y, return_inverse=True)
    k, (n, d) = classes.size, X.shape
    A = np.random.default_rng(0).normal(0, 0.1, (d + 1, k))
    sk = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=k), fit_intercept=True)
    coef = np.ascontiguousarray(A.T)  # sklearn's layout: (classes, features + 1)
    f_sk, g_sk = sk.loss_gradient(coef, X.astype(np.float64), y_idx.astype(np.float64),
                                  l2_reg_strength=1 / (C * n))  # fmt: skip
    f, G = solver.loss_gradient(A, X, y_idx * n + np.arange(n), 1 / (C * n))
    assert f == pytest.approx(f_sk, rel=1e-7)
    np.testing.assert_allclose(G.T, g_sk, atol=1e-6)
    assert solver.objective(X, y, C, A[:d].T, A[d]) == pytest.approx(f_sk, rel=1e-12)


def test_the_stopping_rule_ends_near_the_optimum(data, reference):
    X, y = data
    result = fit(data)
    assert result.stop == "tol" and result.converged
    f = solver.objective(X, y, C, result.coef, result.intercept)
    f_ref = reference[1]
    assert f_ref * (1 - 1e-9) <= f <= f_ref * (1 + 2e-3)
    assert result.objective == pytest.approx(f, rel=1e-6)


def test_run_tight_it_finds_scikit_learns_optimum(data, reference):
    X, y = data
    ref, f_ref = reference
    result = fit(data, tol=0.0, max_iter=5000)
    assert result.converged and result.stop.startswith("scipy: CONVERGENCE")
    assert solver.objective(X, y, C, result.coef, result.intercept) == pytest.approx(
        f_ref, rel=1e-6
    )
    mine, theirs = stacked(result.coef, result.intercept), stacked(ref.coef_, ref.intercept_)
    assert np.linalg.norm(mine - theirs) <= 1e-3 * np.linalg.norm(theirs)


def test_max_iter_caps_the_iterations(data):
    result = fit(data, tol=0.0, max_iter=3)
    assert (result.n_iter, result.stop, result.converged) == (3, "max_iter", False)


def test_the_fit_and_predict_leave_x_alone_and_predict_in_float32(data):
    from sklearn.linear_model import LogisticRegression

    X, y = data
    before = X.copy()
    result = fit(data)
    estimator = solver.install(LogisticRegression(C=C), result)
    proba = estimator.predict_proba(X)
    np.testing.assert_array_equal(X, before)
    assert estimator.coef_.dtype == np.float32 and proba.dtype == np.float32
    assert list(estimator.classes_) == sorted(set(y.tolist()))


def test_the_input_must_be_float32_c_contiguous_and_multiclass(data):
    X, y = data
    with pytest.raises(ValueError, match="float32"):
        solver.fit_softmax(X.astype(np.float64), y, C, tol=1e-3, window=5,
                           precondition=0.005, max_iter=5)  # fmt: skip
    with pytest.raises(ValueError, match="three or more"):
        solver.fit_softmax(X, y % 2, C, tol=1e-3, window=5, precondition=0.005, max_iter=5)
