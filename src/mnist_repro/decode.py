"""Stage ``decode``: the four MNIST idx files -> ``mnist.npz`` plus a JSON summary.

``python -m mnist_repro decode --raw data/raw --out data/processed`` writes
``mnist.npz`` (uint8 images N x 28 x 28 and uint8 labels, train and test) and
``summary.json`` (shapes, dtypes, class counts, source file hashes). Both are
byte-identical on rerun and written atomically.
"""

from __future__ import annotations

import argparse
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from mnist_repro import log, paths, provenance
from mnist_repro.atomic import atomic_open, stable_zip_info, write_json
from mnist_repro.errors import MnistReproError
from mnist_repro.idx import read_idx

FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
SPLITS = ("train", "test")
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
LOG = log.get("decode")


def _check_images(path: Path, images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        shape = " x ".join(map(str, images.shape))
        raise MnistReproError(
            f"{path}: expected uint8 images N x 28 x 28, found {images.dtype} {shape}"
        )


def _check_labels(path: Path, labels: np.ndarray) -> None:
    if labels.dtype != np.uint8 or labels.ndim != 1:
        shape = " x ".join(map(str, labels.shape))
        raise MnistReproError(
            f"{path}: expected uint8 labels of shape N, found {labels.dtype} {shape}"
        )
    bad = np.flatnonzero(labels >= N_CLASSES)
    if bad.size:
        raise MnistReproError(
            f"{path}: {bad.size} labels outside 0-9 (first: {labels[bad[0]]} at index {bad[0]})"
        )


def load_raw(
    raw_dir: str | os.PathLike[str],
    splits: Iterable[str] = SPLITS,
    on_file: Callable[[Path, np.ndarray, float], None] | None = None,
) -> dict[str, np.ndarray]:
    """Decode and validate the idx files of ``splits`` from ``raw_dir``.

    Returns ``{"<split>_images": uint8 (N, 28, 28), "<split>_labels": uint8 (N,)}``
    with matching N and labels in 0-9. The arrays are read-only views on the
    decompressed data. ``on_file(path, array, seconds)`` is called after each file.
    """
    raw_dir = Path(raw_dir)
    arrays: dict[str, np.ndarray] = {}
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} (expected one of {SPLITS})")
        images_path = raw_dir / FILES[f"{split}_images"]
        labels_path = raw_dir / FILES[f"{split}_labels"]
        for key, path, check in (
            (f"{split}_images", images_path, _check_images),
            (f"{split}_labels", labels_path, _check_labels),
        ):
            start = time.perf_counter()
            array = read_idx(path)
            check(path, array)
            if on_file is not None:
                on_file(path, array, time.perf_counter() - start)
            arrays[key] = array
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images == 0:
            raise MnistReproError(f"{images_path}: holds no images (0 x 28 x 28)")
        if n_images != n_labels:
            raise MnistReproError(
                f"{labels_path}: {n_labels} labels but {images_path.name} holds {n_images} images"
            )
    return arrays


def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` that ``numpy.load`` reads, with deterministic bytes.

    ``numpy.savez`` stamps the current time into each zip entry; here every entry gets
    a fixed timestamp and permissions, entries are sorted by name and stored
    uncompressed (zlib output may differ between builds), so equal arrays give equal
    bytes everywhere. Written atomically.
    """
    with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            array = np.ascontiguousarray(arrays[name])
            info = stable_zip_info(f"{name}.npy")
            with zf.open(info, "w", force_zip64=array.nbytes > (1 << 30)) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load and validate the decode stage's ``mnist.npz`` (no pickles).

    Returns the four arrays keyed as in :data:`FILES`; every problem is a one-line
    :class:`MnistReproError` naming the file.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted(set(FILES) - set(npz.files))
            if missing:
                raise MnistReproError(
                    f"{path}: missing arrays {', '.join(missing)} (has: {', '.join(npz.files)})"
                )
            arrays = {key: npz[key] for key in FILES}
    except FileNotFoundError:
        raise MnistReproError(f"{path}: not found (run the decode stage first)") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise MnistReproError(f"{path}: not a readable .npz file ({exc})") from None
    except ValueError as exc:  # pickled object arrays, malformed .npy headers
        raise MnistReproError(f"{path}: not a valid .npz of plain arrays ({exc})") from None
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise MnistReproError(
                f"{path}: {split}_images must be uint8 N x 28 x 28, "
                f"found {images.dtype} {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.shape != (len(images),):
            raise MnistReproError(
                f"{path}: {split}_labels must be uint8 of shape ({len(images)},), "
                f"found {labels.dtype} {labels.shape}"
            )
    return arrays


def validation_split(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sorted) of a seeded, stratified split of ``labels`` into a fitting part and a
    validation part of ``size`` images, each class in the same proportion in both parts.

    Model selection (``train --select``, ``make sweep``, ``make remote-sweep``) fits on the
    first and scores the second, so the test set is never used to choose anything.
    """
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(labels))
    if not n_classes <= size <= len(labels) - n_classes:
        raise ValueError(
            f"a validation set of {size} images out of {len(labels)} cannot hold every one "
            f"of the {n_classes} classes on both sides"
        )
    fit, validation = train_test_split(
        np.arange(len(labels)), test_size=size, stratify=labels, random_state=seed
    )
    return np.sort(fit), np.sort(validation)


def summarize(arrays: Mapping[str, np.ndarray], raw_dir: Path) -> dict:
    """Shapes, dtypes and class counts per split, and the source files' sizes and hashes."""
    splits = {}
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        counts = np.bincount(labels, minlength=N_CLASSES)
        splits[split] = {
            "n": len(labels),
            "images": {"shape": list(images.shape), "dtype": str(images.dtype)},
            "labels": {"shape": list(labels.shape), "dtype": str(labels.dtype)},
            "class_counts": {str(c): int(n) for c, n in enumerate(counts)},
        }
    sources = {}
    for name in sorted(FILES.values()):
        path = raw_dir / name
        sources[name] = {"sha256": provenance.sha256_file(path), "size": path.stat().st_size}
    return {"splits": splits, "source_files": sources}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--raw", type=Path, default=paths.RAW, help="folder with the four idx .gz files"
    )
    parser.add_argument(
        "--out", type=Path, default=paths.PROCESSED, help="folder for the arrays and summary"
    )


def run(args: argparse.Namespace) -> int:
    def progress(path: Path, array: np.ndarray, seconds: float) -> None:
        shape = " x ".join(map(str, array.shape))
        LOG.info("%s: %s %s in %.2f s", path.name, shape, array.dtype, seconds)

    arrays = load_raw(args.raw, on_file=progress)
    summary = summarize(arrays, args.raw)
    npz_path = args.out / paths.NPZ_NAME
    save_npz(npz_path, arrays)
    summary["npz"] = {"sha256": provenance.sha256_file(npz_path), "size": npz_path.stat().st_size}
    write_json(args.out / paths.SUMMARY_NAME, summary)
    LOG.info("wrote %s and %s", npz_path, args.out / paths.SUMMARY_NAME)
    return 0
