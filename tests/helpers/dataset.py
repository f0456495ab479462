"""The one fake dataset: small MNIST look-alikes, four idx .gz files of drawn digits.

``write_fake_mnist(folder)`` writes the files under the names MNIST uses and
returns ``{file name: {"sha256": ..., "size": ...}}``, shaped like the ``download.files``
section of params.yaml. Same arguments, same bytes (seeded; gzip without timestamps).

Each class is a digit drawn from pen strokes (arcs and lines in a 28 x 28 frame,
like MNIST's 20 x 20 box centred in 28 x 28), rendered in a few slants and stroke
widths; every sample picks one, shifts it by up to 3 pixels, varies its ink, fades
in another digit and adds noise. A linear model learns it well but not perfectly.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from mnist_repro.decode import FILES
from mnist_repro.idx import write_idx
from mnist_repro.provenance import sha256_file

SIZE = 28


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float) -> np.ndarray:
    """Points on an ellipse arc; angles in turns, 0 = right, 0.25 = down (image y points down)."""
    t = np.linspace(start, stop, 48) * 2 * np.pi
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    t = np.linspace(0.0, 1.0, 32)[:, None]
    return np.array([x0, y0]) * (1 - t) + np.array([x1, y1]) * t


# Strokes per digit in a unit box: x in [0, 1] left to right, y in [0, 1] top to bottom.
STROKES: dict[int, list[np.ndarray]] = {
    0: [_arc(0.5, 0.5, 0.42, 0.48, 0, 1)],
    1: [_line(0.55, 0.0, 0.45, 1.0), _line(0.55, 0.0, 0.35, 0.2)],
    2: [
        _arc(0.5, 0.27, 0.4, 0.27, 0.5, 1.1),
        _line(0.85, 0.45, 0.05, 1.0),
        _line(0.05, 1.0, 0.95, 1.0),
    ],
    3: [_arc(0.45, 0.25, 0.4, 0.25, 0.55, 1.25), _arc(0.45, 0.73, 0.45, 0.27, -0.25, 0.45)],
    4: [_line(0.65, 0.0, 0.0, 0.65), _line(0.0, 0.65, 1.0, 0.65), _line(0.7, 0.3, 0.7, 1.0)],
    5: [
        _line(0.95, 0.0, 0.15, 0.0),
        _line(0.15, 0.0, 0.1, 0.45),
        _arc(0.45, 0.7, 0.45, 0.3, -0.35, 0.4),
    ],
    6: [_arc(0.75, 0.55, 0.7, 0.55, 0.5, 0.75), _arc(0.5, 0.72, 0.42, 0.28, 0, 1)],
    7: [_line(0.0, 0.0, 1.0, 0.0), _line(1.0, 0.0, 0.35, 1.0)],
    8: [_arc(0.5, 0.24, 0.33, 0.24, 0, 1), _arc(0.5, 0.74, 0.42, 0.26, 0, 1)],
    9: [_arc(0.5, 0.28, 0.42, 0.28, 0, 1), _line(0.92, 0.28, 0.8, 1.0)],
}

# Rendered variants per digit: (slant, stroke width in pixels).
VARIANTS = ((-0.25, 1.1), (0.0, 1.5), (0.2, 1.2), (0.35, 1.8))


def render_digit(digit: int, slant: float = 0.0, width: float = 1.4) -> np.ndarray:
    """A clean float image in [0, 1] of ``digit``: 20 px tall, centred in 28 x 28."""
    points = np.concatenate(STROKES[digit])
    x = 8 + 12 * points[:, 0] + slant * 10 * (0.5 - points[:, 1])
    y = 4 + 20 * points[:, 1]
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    dist2 = (cols[..., None] - x) ** 2 + (rows[..., None] - y) ** 2
    return np.exp(-dist2.min(axis=-1) / (2 * width**2))


@functools.cache
def _templates() -> np.ndarray:
    """All digits in all variants, (10, len(VARIANTS), 28, 28); read-only, shared."""
    templates = np.stack(
        [[render_digit(d, slant, width) for slant, width in VARIANTS] for d in range(10)]
    )
    templates.flags.writeable = False
    return templates


def fake_digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (n, 28, 28) and uint8 labels, every class present if n >= 10."""
    templates = _templates()
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    variant = rng.integers(0, len(VARIANTS), n)
    images = templates[labels, variant]
    # Fade in another digit: the ambiguity that keeps a linear model below 100%.
    other = (labels + rng.integers(1, 10, n)) % 10
    fade = rng.uniform(0.0, 0.45, n)[:, None, None]
    images = images + fade * templates[other, rng.integers(0, len(VARIANTS), n)]
    images *= rng.uniform(0.6, 1.0, n)[:, None, None]
    # Shift each image by up to 3 pixels (wrapping around, as np.roll; the border is blank).
    dy, dx = rng.integers(-3, 4, (2, n, 1))
    rows = (np.arange(SIZE) - dy) % SIZE
    cols = (np.arange(SIZE) - dx) % SIZE
    shifted = images[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    noisy = shifted * 255 + rng.normal(0, 30, shifted.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8), labels


def write_fake_mnist(
    folder: str | os.PathLike[str], n_train: int = 600, n_test: int = 200, seed: int = 0
) -> dict[str, dict]:
    """Write the four MNIST-named idx .gz files into ``folder``; return their hashes and sizes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = fake_digits(n, rng)
        for kind, array in (("images", images), ("labels", labels)):
            path = folder / FILES[f"{split}_{kind}"]
            write_idx(path, array)
            written[path.name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return written
