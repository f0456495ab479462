"""The fast preset's fit against a tightly converged reference on real MNIST: does the optimum
stay where scikit-learn's objective puts it, and how close does the preset's stopping rule get?

    python tools/bench/bench_solver.py [--data data/raw]   # after make repro; about a minute
    python tools/bench/bench_solver.py --sklearn   # + scikit-learn's lbfgs to tol 1e-10 (~10 min)

Reads params.yaml's ``train`` section (C, tol, window, precondition, threads) and pins
``blas.kernel`` like the stages do. Fits, in one process, one thread:

- ``preset``: the fast preset exactly as the train stage fits it;
- ``reference``: the same solver run tight (tol 0: until scipy's own test, scikit-learn's
  ``ftol``, or ``--ref-iter`` iterations);
- ``former``: the former fast preset (centred pixels, scikit-learn's lbfgs, tol 2e-4);
- with ``--sklearn``: scikit-learn's ``LogisticRegression(solver="lbfgs", tol=1e-10)`` on
  float64 centred pixels, an independent reference.

For each, against ``reference``: the objective (float64) and its gap, the relative distance of
``[W b]`` (2-norm), the largest weight difference, and the share of train/test predictions that
agree. Reports; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mnist_repro import blas
from mnist_repro.paths import PARAMS, RAW


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=PARAMS)
    parser.add_argument("--data", type=Path, default=RAW)
    parser.add_argument("--ref-iter", type=int, default=400, help="reference iteration cap")
    parser.add_argument("--sklearn", action="store_true", help="also scikit-learn's own lbfgs")
    args = parser.parse_args(argv)
    blas.apply_from_params(args.params)  # before NumPy loads, as the stages do

    import numpy as np

    from mnist_repro import decode, model, solver, train

    config = train.load_config(args.params)
    if not args.data.is_dir():
        print(f"bench-solver: {args.data}: no such folder: run `make repro` first", file=sys.stderr)
        return 1
    arrays = decode.load_raw(args.data)
    X = model.features(arrays["train_images"], "float32")
    Xt = model.features(arrays["test_images"], "float32")
    y, yt = arrays["train_labels"], arrays["test_labels"]
    C = 1 / config["regularization"]
    opts = {"window": config["window"], "precondition": config["precondition"]}
    print(
        f"solver benchmark: load average {os.getloadavg()[0]:.2f}; C={C:g}, "
        f"tol={config['tol']:g}, window={config['window']}, precondition={config['precondition']:g}"
    )

    fits = {}  # name -> (coef, intercept, iterations, seconds)
    with model.thread_limit(config["threads"]):
        for name, tol, cap in (("preset", config["tol"], config["max_iter"]),
                               ("reference", 0.0, args.ref_iter)):  # fmt: skip
            start = time.perf_counter()
            r = solver.fit_softmax(X, y, C, tol=tol, max_iter=cap, **opts)
            seconds = time.perf_counter() - start
            stop = r.stop.split(":")[0]  # tol, max_iter, or scipy (its own convergence test)
            fits[name] = (r.coef, r.intercept, f"{r.n_iter} ({stop})", seconds)
        from sklearn.linear_model import LogisticRegression

        mean = X.mean(axis=0, dtype=np.float64)
        former = [("former", np.float32, 2e-4, 100)]
        if args.sklearn:
            former.append(("sklearn-tight", np.float64, 1e-10, 10_000))
        for name, dtype, tol, cap in former:
            Xc = X.astype(dtype) - mean.astype(dtype)  # centred, as the former preset did
            start = time.perf_counter()
            est = LogisticRegression(C=C, tol=tol, max_iter=cap).fit(Xc, y)
            seconds = time.perf_counter() - start
            del Xc
            # Back to uncentred pixels: x W^T + b' with b' = b - mean W^T.
            b = est.intercept_ - mean @ est.coef_.T.astype(np.float64)
            fits[name] = (est.coef_.astype(np.float64), b, str(int(est.n_iter_[0])), seconds)

    def predict(coef, intercept, data):
        return np.argmax(data @ coef.T.astype(np.float32) + intercept.astype(np.float32), axis=1)

    ref_coef, ref_b = fits["reference"][:2]
    ref_wb = np.hstack([ref_coef, ref_b[:, None]])
    f_ref = solver.objective(X, y, C, ref_coef, ref_b)
    ref_train, ref_test = predict(ref_coef, ref_b, X), predict(ref_coef, ref_b, Xt)
    print(
        f"{'fit':<14}{'iterations':<16}{'fit s':>7}{'objective':>16}{'gap':>10}{'rel gap':>9}"
        f"{'|dWb|/|Wb*|':>12}{'max|dW|':>9}{'agree tr':>9}{'agree te':>9}{'test acc':>9}"
    )
    for name, (coef, b, its, seconds) in fits.items():
        f = solver.objective(X, y, C, coef, b)
        wb = np.hstack([coef, b[:, None]])
        p_train, p_test = predict(coef, b, X), predict(coef, b, Xt)
        print(
            f"{name:<14}{its:<16}{seconds:>7.2f}{f:>16.10f}{f - f_ref:>10.2e}"
            f"{(f - f_ref) / f_ref:>9.1e}"
            f"{np.linalg.norm(wb - ref_wb) / np.linalg.norm(ref_wb):>12.4f}"
            f"{np.abs(coef - ref_coef).max():>9.3f}{np.mean(p_train == ref_train):>9.4f}"
            f"{np.mean(p_test == ref_test):>9.4f}{np.mean(p_test == yt):>9.4f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
