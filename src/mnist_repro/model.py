"""The classifier: presets, input features, and a safe, byte-stable model file.

Two presets fit the tutorial's regularized logistic regression (``C = 1 / regularization``):

``tutorial``
    The tutorial's model as it runs on today's scikit-learn: one-vs-rest liblinear on float64
    pixels / 255. scikit-learn 1.9 removed ``multi_class`` and multiclass liblinear, so the
    one-vs-rest scheme the tutorial got implicitly is made explicit with ``OneVsRestClassifier``.
``fast`` (the default)
    One multinomial (softmax) model on float32 pixels / 255: scikit-learn's
    ``LogisticRegression(solver="lbfgs")`` objective, minimized by :mod:`mnist_repro.solver`
    (preconditioned L-BFGS, same optimum, a quarter of the iterations) and saved as a stock
    ``LogisticRegression``. More accurate than the tutorial's and over 20 times faster
    (docs/models.md).

The model file is skops, not pickle. :func:`load_model` accepts only the types in
:data:`TRUSTED_TYPES` (an explicit allow-list, stricter than skops' defaults).
:func:`model_bytes` rewrites skops' zip so the same model always gives the same bytes (skops
names entries after ``id()`` of objects and stamps them with the current time).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_repro.atomic import atomic_open, stable_zip_info
from mnist_repro.errors import MnistReproError


@dataclass(frozen=True)
class Preset:
    """What a preset fixes: the solver set-up and the input dtype; ``max_iter``/``tol`` defaults."""

    name: str
    description: str
    dtype: str
    max_iter: int
    tol: float


PRESETS: dict[str, Preset] = {
    "tutorial": Preset(
        name="tutorial",
        description="OneVsRestClassifier(LogisticRegression(solver='liblinear')) on float64 / 255",
        dtype="float64",
        max_iter=100,
        tol=1e-4,
    ),
    "fast": Preset(
        name="fast",
        description=(
            "multinomial LogisticRegression(solver='lbfgs') objective on float32 / 255, "
            "minimized by preconditioned L-BFGS (mnist_repro.solver)"
        ),
        dtype="float32",
        max_iter=500,
        tol=2e-3,
    ),
}

# Every type a model file may contain: the two presets' estimators and what they hold.
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.bool",
    "builtins.dict",
    "builtins.float",
    "builtins.int",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.float64",
    "numpy.ndarray",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.multiclass.OneVsRestClassifier",
    "sklearn.preprocessing._label.LabelBinarizer",
)


def build_estimator(
    preset: str, regularization: float, max_iter: int, tol: float, seed: int
) -> Any:
    """An unfitted estimator for ``preset`` (parameters are validated by the caller)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    C = 1.0 / regularization
    if preset == "tutorial":
        binary = LogisticRegression(
            solver="liblinear", C=C, max_iter=max_iter, tol=tol, random_state=seed
        )
        return OneVsRestClassifier(binary)
    if preset == "fast":
        # Fitted by mnist_repro.solver (train.fit), not by its own fit(): the same objective.
        return LogisticRegression(
            solver="lbfgs", C=C, max_iter=max_iter, tol=tol, random_state=seed
        )
    raise MnistReproError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")


def thread_limit(threads: int | None):
    """Limit BLAS and OpenMP threads (``None``: leave the libraries' defaults)."""
    from threadpoolctl import threadpool_limits

    if threads is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def parallel(jobs: int):
    """Fit one-vs-rest's binary models ``jobs`` at a time, in threads (liblinear releases the
    GIL): each is fitted exactly as alone, so the model is the same; only the wall time
    changes. The estimator's own ``n_jobs`` stays unset, so the model file is unchanged too.
    The ``fast`` preset fits one multinomial model and ignores it."""
    from joblib import parallel_config

    return parallel_config(backend="threading", n_jobs=jobs)


def features(images: np.ndarray, dtype: str) -> np.ndarray:
    """Flatten (N, 28, 28) uint8 images into (N, 784) pixels / 255 of ``dtype``.

    Divided in place: one array of ``dtype`` at a time (the same values as ``a / 255``).
    """
    kind = np.dtype(dtype).type
    X = images.reshape(len(images), -1).astype(kind)
    X /= kind(255)
    return X


def iterations(estimator: Any) -> list[int]:
    """The solver's iteration count(s): one per binary model for one-vs-rest."""
    if hasattr(estimator, "estimators_"):
        return [int(np.max(e.n_iter_)) for e in estimator.estimators_]
    return [int(np.max(estimator.n_iter_))]


def model_bytes(estimator: Any) -> bytes:
    """The skops file for ``estimator``, with deterministic entry names, ids and timestamps."""
    import skops.io as sio

    return _canonical_zip(sio.dumps(estimator))


def _json_objects(node: Any) -> Iterator[dict]:
    """Every object (dict) in a parsed JSON document, each before its children.

    Callers may change an object's scalar values while iterating; its children are read after.
    """
    if isinstance(node, dict):
        yield node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return
    for child in children:
        yield from _json_objects(child)


def _canonical_zip(data: bytes) -> bytes:
    """Rewrite a skops zip: object ids and array file names renumbered in order of appearance,
    entries stored uncompressed with a fixed timestamp, so equal models give equal bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}

        for node in _json_objects(schema):
            if isinstance(node.get("__id__"), int):
                node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
            if isinstance(node.get("file"), str) and "__loader__" in node:
                node["file"] = files.setdefault(node["file"], f"{len(files):04d}.npy")
        entries = [(new, src.read(old)) for old, new in files.items()]
    entries.append(("schema.json", json.dumps(schema, indent=2).encode("utf-8")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name, payload in entries:
            dst.writestr(stable_zip_info(name), payload)
    return out.getvalue()


def save_model(estimator: Any, path: str | os.PathLike[str]) -> None:
    """Write ``estimator`` to ``path`` atomically as a canonical skops file."""
    with atomic_open(path, "wb") as fh:
        fh.write(model_bytes(estimator))


def file_types(path: str | os.PathLike[str]) -> set[str]:
    """Every ``module.Class`` named in a skops file's schema (read without loading anything)."""
    try:
        with zipfile.ZipFile(path) as zf:
            schema = json.loads(zf.read("schema.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise MnistReproError(f"{path}: not a skops model file ({exc})") from None

    return {
        f"{node['__module__']}.{node['__class__']}"
        for node in _json_objects(schema)
        if isinstance(node.get("__class__"), str) and isinstance(node.get("__module__"), str)
    }


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model file, refusing any type outside :data:`TRUSTED_TYPES`."""
    import skops.io as sio

    if not os.path.isfile(path):
        raise MnistReproError(f"{path}: model file not found (run the train stage first)")
    untrusted = sorted(file_types(path) - set(TRUSTED_TYPES))
    if untrusted:
        raise MnistReproError(f"{path}: refusing to load untrusted types: {', '.join(untrusted)}")
    try:
        return sio.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # skops raises several types for a damaged or foreign file
        raise MnistReproError(f"{path}: cannot load model ({type(exc).__name__}: {exc})") from None
