"""Helpers for the train/evaluate/report tests: small real and synthetic digit sets on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_repro.decode import FILES
from mnist_repro.idx import write_idx


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), brought to MNIST's form:
    each pixel a 3x3 block (24x24), a 2-pixel margin (28x28), values 0-16 scaled to 0-255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    big = np.kron(bunch.images, np.ones((3, 3)))
    padded = np.pad(big, ((0, 0), (2, 2), (2, 2)))
    images = np.round(padded * 255 / 16).astype(np.uint8)
    return images, bunch.target.astype(np.uint8)


def write_digits_mnist(folder: Path, n_train: int = 1200) -> Path:
    """Write the 28x28 digits as the four MNIST idx .gz files: ``n_train`` to train, rest test.

    The split is a fixed shuffle (seed 0), so both sides hold every class."""
    images, labels = digits_28x28()
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train_images": images[:n_train],
        "train_labels": labels[:n_train],
        "test_images": images[n_train:],
        "test_labels": labels[n_train:],
    }
    for key, array in parts.items():
        write_idx(folder / FILES[key], array)
    return folder


def write_params(path: Path, train: dict | None = None, **sections: dict) -> Path:
    """A params file with the given ``train`` section (and any others)."""
    import yaml

    data = {"train": train or {}, **sections}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
