"""The ``fast`` preset's solver: scikit-learn's multinomial logistic regression objective,
minimized by L-BFGS after a change of variables that keeps the optimum where it is.

The objective is exactly what ``LogisticRegression(solver="lbfgs", C=C)`` minimizes
(scikit-learn 1.9, ``_logistic.py`` and ``_linear_loss.py``)::

    f(W, b) = 1/n sum_i [logsumexp(x_i W^T + b) - (x_i W^T + b)_{y_i}] + ||W||^2 / (2 C n)

(the intercept ``b`` is not penalized). L-BFGS minimizes it over ``V`` with
``[W b]^T = L^{-T} V``, where ``L L^T = c [X 1]^T [X 1] / n + diag(lam, ..., lam, 0)`` and
``lam = 1 / (C n)``: a scaled bound on the objective's curvature, so L-BFGS sees a far better
conditioned problem and needs about a quarter of the iterations. ``f`` as a function of
``(W, b)`` is unchanged, so its minimizer is too. The ones column makes centring the pixels
unnecessary (the preconditioner couples intercept and weights), so ``X`` is never copied or
modified. Each iteration costs two float32 GEMM passes over ``X`` plus a softmax, as in
scikit-learn's own solver.

Stopping rule, the optimizer's own: stop at the first iteration ``k`` whose objective fell by
at most ``tol`` (relative) over the last ``window`` iterations,
``(f[k - window] - f[k]) / f[k] <= tol``. Convergence is near-geometric, so that decrease is of
the order of the remaining gap ``f[k] - f*``. scipy's own criteria are scikit-learn's
(``ftol = 64 eps``) and ``max_iter`` caps the iterations.

:func:`fit_softmax` fits arrays; :func:`install` puts the result into a stock, unfitted
``LogisticRegression`` (the file holds no type of this project; its ``predict`` is
scikit-learn's own and never modifies the caller's array).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, optimize

FTOL = 64 * np.finfo(float).eps  # scipy's relative-reduction test, as scikit-learn sets it


@dataclass(frozen=True)
class SoftmaxFit:
    """What :func:`fit_softmax` found: the weights in the caller's feature space, and facts."""

    coef: NDArray[np.float64]  # (classes, features)
    intercept: NDArray[np.float64]  # (classes,)
    classes: NDArray[Any]  # sorted unique labels
    n_iter: int  # L-BFGS iterations
    n_fev: int  # objective + gradient evaluations (two passes over X each)
    objective: float  # f at the returned point
    stop: str  # "tol" (the rule fired), "max_iter", or scipy's message
    converged: bool  # stopped by the rule or by scipy's own convergence tests


def preconditioner(X: NDArray[np.float32], lam: float, c: float) -> NDArray[np.float64]:
    """Lower Cholesky factor of ``c [X 1]^T [X 1] / n + diag(lam, ..., lam, 0)``."""
    n, d = X.shape
    P = np.empty((d + 1, d + 1))
    P[:d, :d] = X.T @ X  # one float32 syrk; no copy of X
    P[:d, d] = P[d, :d] = X.sum(axis=0, dtype=np.float64)
    P[d, d] = n
    P *= c / n
    P[np.arange(d), np.arange(d)] += lam
    return linalg.cholesky(P, lower=True, check_finite=False)


def weights(theta: NDArray[np.float64], L: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """``[W^T; b]`` ((features + 1) x classes) from the optimizer's variables ``theta``."""
    V = theta.reshape(L.shape[0], k)
    return linalg.solve_triangular(L, V, lower=True, trans="T", check_finite=False)


def loss_gradient(
    A: NDArray[np.float64], X: NDArray[np.float32], flat_y: NDArray[np.intp], lam: float
) -> tuple[float, NDArray[np.float64]]:
    """``f`` and its gradient with respect to ``A = [W^T; b]``.

    ``flat_y`` indexes each sample's true class in the raveled (classes, n) score matrix. The
    scores are kept as (classes, n) so that the reductions over classes are element-wise
    operations between rows.
    """
    n, d = X.shape
    Z = A[:d].T.astype(np.float32) @ X.T
    Z += A[d].astype(np.float32)[:, None]
    Z -= np.max(Z, axis=0)
    flat = Z.reshape(-1)
    loss = -flat[flat_y].sum(dtype=np.float64)
    np.exp(Z, out=Z)
    total = np.sum(Z, axis=0)
    loss += np.log(total).sum(dtype=np.float64)
    Z /= total  # probabilities
    flat[flat_y] -= 1.0  # residuals P - Y
    G = np.empty_like(A)
    G[:d] = (Z @ X).T
    G[d] = Z.sum(axis=1, dtype=np.float64)
    G /= n
    G[:d] += lam * A[:d]
    f = loss / n + 0.5 * lam * float(np.einsum("ij,ij->", A[:d], A[:d]))
    return f, G


def objective(
    X: NDArray[np.floating],
    y: NDArray[Any],
    C: float,
    coef: NDArray[np.floating],
    intercept: NDArray[np.floating],
) -> float:
    """scikit-learn's objective at ``(coef, intercept)``, in float64 (for checks and reports)."""
    _, y_idx = np.unique(np.asarray(y), return_inverse=True)
    Z = np.asarray(X, dtype=np.float64) @ np.asarray(coef, np.float64).T + intercept
    Z -= Z.max(axis=1, keepdims=True)
    log_p = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    n = len(y_idx)
    penalty = float(np.sum(np.square(np.asarray(coef, np.float64)))) / (2 * C * n)
    return float(-log_p[np.arange(n), y_idx].mean()) + penalty


def fit_softmax(
    X: NDArray[np.float32],
    y: NDArray[Any],
    C: float,
    *,
    tol: float,
    window: int,
    precondition: float,
    max_iter: int,
) -> SoftmaxFit:
    """Minimize ``LogisticRegression(C=C)``'s multinomial objective on ``(X, y)``.

    ``X``: (n, features), C-contiguous float32; read only. ``tol``/``window``: the stopping
    rule (module docstring); ``precondition``: ``c``; ``max_iter``: L-BFGS iteration cap.
    """
    if X.dtype != np.float32 or not X.flags.c_contiguous:
        raise ValueError("X must be a C-contiguous float32 array")
    classes, y_idx = np.unique(np.asarray(y), return_inverse=True)
    k = classes.size
    if k < 3:
        raise ValueError("fit_softmax is for three or more classes")
    n, d = X.shape
    lam = 1.0 / (C * n)
    L = preconditioner(X, lam, precondition)
    flat_y = y_idx.astype(np.intp) * n + np.arange(n)
    n_fev = 0

    def fun(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        nonlocal n_fev
        n_fev += 1
        f, G = loss_gradient(weights(theta, L, k), X, flat_y, lam)
        return f, linalg.solve_triangular(L, G, lower=True, check_finite=False).reshape(-1)

    history: list[float] = []
    fired = False

    def callback(intermediate_result: optimize.OptimizeResult) -> None:
        nonlocal fired
        history.append(float(intermediate_result.fun))
        if len(history) > window and history[-1 - window] - history[-1] <= tol * abs(history[-1]):
            fired = True
            raise StopIteration

    result = optimize.minimize(
        fun,
        np.zeros((d + 1) * k),
        method="L-BFGS-B",
        jac=True,
        callback=callback,
        options={"maxiter": max_iter, "maxcor": 10, "maxls": 50, "gtol": 1e-10, "ftol": FTOL},
    )
    if fired:
        stop, converged = "tol", True
    elif result.nit >= max_iter:
        stop, converged = "max_iter", False
    else:
        stop, converged = f"scipy: {result.message}", bool(result.success)
    A = weights(result.x, L, k)
    return SoftmaxFit(
        coef=np.ascontiguousarray(A[:d].T),
        intercept=A[d].copy(),
        classes=classes,
        n_iter=int(result.nit),
        n_fev=n_fev,
        objective=float(result.fun),
        stop=stop,
        converged=converged,
    )


def install(estimator: Any, fit: SoftmaxFit, dtype: type = np.float32) -> Any:
    """Make an unfitted ``LogisticRegression`` carry ``fit``'s weights; return it.

    float32 weights, as scikit-learn's own lbfgs stores for float32 input: ``predict`` then
    computes in float32 without an up-cast copy of the caller's ``X``.
    """
    estimator.classes_ = fit.classes
    estimator.coef_ = fit.coef.astype(dtype)
    estimator.intercept_ = fit.intercept.astype(dtype)
    estimator.n_features_in_ = fit.coef.shape[1]
    estimator.n_iter_ = np.array([fit.n_iter], dtype=np.int32)
    return estimator
