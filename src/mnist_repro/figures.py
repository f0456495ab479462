"""The report's figures: plain matplotlib Figures (no pyplot), saved with stable bytes.

Each function takes arrays and returns a :class:`matplotlib.figure.Figure`; :func:`save_png`
writes it atomically with fixed size, dpi and metadata, so the same inputs give the same PNG
bytes on every run.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

DPI = 100
# Fixed style, independent of any matplotlibrc the user has.
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "path.simplify": True,
    "image.interpolation": "nearest",
    "image.resample": False,
}
INK = "Greys"  # the tutorial's colormap: dark ink on white paper


def _figure(width: float, height: float):
    import matplotlib

    # Reset to matplotlib's defaults plus STYLE, whatever matplotlibrc says (this is a CLI stage).
    matplotlib.rcParams.update(matplotlib.rcParamsDefault)
    matplotlib.rcParams.update(STYLE)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def save_png(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save ``fig`` as PNG atomically, with no software/date metadata (byte-stable)."""
    from mnist_repro.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def sample_indices(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct indices out of ``n_total``, drawn with a seeded generator."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))


def sample_digits(images: np.ndarray, labels: np.ndarray, title: str):
    """The tutorial's figure: digits in one row, each with its label above it."""
    n = len(images)
    fig = _figure(max(0.5 * n, 4), 1.45)
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.02, top=0.62, wspace=0.08)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        ax = fig.add_subplot(1, n, i + 1)
        ax.imshow(image, cmap=INK, vmin=0, vmax=255)
        ax.set_axis_off()
        ax.set_title(str(int(label)), fontsize=15, pad=3)
    fig.suptitle(title, y=0.97, fontsize=11)
    return fig


def confusion(matrix: np.ndarray, classes: list[int], title: str):
    """Counts per (true, predicted) class: errors shaded by count, the diagonal in green."""
    from matplotlib.colors import LinearSegmentedColormap

    k = len(classes)
    errors = matrix.astype(float).copy()
    np.fill_diagonal(errors, np.nan)
    worst = np.nanmax(errors) if k > 1 and np.nanmax(errors) > 0 else 1.0
    fig = _figure(7.2, 6.4)
    ax = fig.add_axes((0.11, 0.09, 0.72, 0.8))
    reds = LinearSegmentedColormap.from_list(
        "errors", ["#ffffff", "#f4a582", "#b2182b"]
    ).with_extremes(bad="#d9f0d3")
    shown = ax.imshow(np.ma.masked_invalid(errors), cmap=reds, vmin=0, vmax=worst)
    row_totals = matrix.sum(axis=1)
    for t in range(k):
        for p in range(k):
            count = int(matrix[t, p])
            if t == p:
                recall = count / row_totals[t] if row_totals[t] else 0.0
                ax.text(
                    p,
                    t - 0.12,
                    f"{count}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    fontweight="bold",
                    color="#1b7837",
                )
                ax.text(
                    p,
                    t + 0.25,
                    f"{100 * recall:.1f}%",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#1b7837",
                )
            elif count:
                dark = count > 0.6 * worst
                ax.text(
                    p,
                    t,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "#333333",
                )
    ax.set_xticks(range(k), [str(c) for c in classes])
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_xticks(np.arange(-0.5, k), minor=True)
    ax.set_yticks(np.arange(-0.5, k), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title)
    cax = fig.add_axes((0.86, 0.09, 0.03, 0.8))
    from matplotlib.ticker import MaxNLocator

    bar = fig.colorbar(shown, cax=cax, ticks=MaxNLocator(integer=True))
    bar.set_label("misclassified test images (off-diagonal)")
    return fig


def mistakes(
    images: np.ndarray,
    true: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    title: str,
    columns: int = 8,
):
    """A gallery of misclassified digits: true and predicted label, and the model's confidence."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = _figure(1.3 * columns, 1.62 * rows + 0.55)
    top = 1 - 0.55 / (1.62 * rows + 0.55)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top - 0.02, hspace=0.45, wspace=0.1)
    for i in range(rows * columns):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap=INK, vmin=0, vmax=255)
        ax.set_title(
            f"true {int(true[i])} \u2192 {int(predicted[i])}\n{_percent(confidence[i])} sure",
            fontsize=9,
            color="#b2182b",
            linespacing=1.15,
            pad=3,
        )
    if n == 0:
        fig.text(0.5, 0.4, "no mistakes on the test set", ha="center", fontsize=12)
    fig.suptitle(title, y=0.995, va="top", fontsize=11)
    return fig


def _percent(p: float) -> str:
    """A probability as a percentage that never rounds up to a certain-looking 100.0%."""
    return ">99.9%" if p >= 0.9995 else f"{100 * p:.1f}%"


def sweep(
    rows: list[dict[str, Any]],
    chosen: float,
    test: dict[str, Any],
    tutorial: float,
    title: str,
):
    """Validation accuracy and log loss (with intervals) against regularization (log scale),
    the chosen value marked, and its test accuracy (with interval) beside it."""
    fig = _figure(10, 5.2)
    acc_ax = fig.add_axes((0.075, 0.25, 0.55, 0.65))
    loss_ax = fig.add_axes((0.715, 0.25, 0.27, 0.65))
    rows = sorted(rows, key=lambda r: r["regularization"])
    x = np.array([r["regularization"] for r in rows])
    blue, red, grey = "#2166ac", "#d6604d", "#777777"

    def bars(ax, key: str, color: str, label: str) -> None:
        y = np.array([r[key] for r in rows])
        low = np.array([r[f"{key}_ci"]["low"] for r in rows])
        high = np.array([r[f"{key}_ci"]["high"] for r in rows])
        ax.errorbar(x, y, yerr=[y - low, high - y], fmt="o-", color=color, ecolor=color,
                    elinewidth=1.2, capsize=4, label=label)  # fmt: skip
        best = int(np.flatnonzero(x == chosen)[0])
        ax.plot([x[best]], [y[best]], marker="*", markersize=17, color=red, linestyle="none",
                label=f"chosen on validation: regularization {chosen:g}", zorder=5)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.minorticks_off()
        ax.set_xlabel("regularization (C = 1 / regularization)")
        ax.grid(True, which="both", alpha=0.3)

    bars(acc_ax, "val_accuracy", blue, "validation accuracy (held-out training images)")
    shift = chosen * 1.18  # beside the chosen value, so the two bars do not hide each other
    acc_ax.errorbar(
        [shift],
        [test["value"]],
        yerr=[[test["value"] - test["low"]], [test["high"] - test["value"]]],
        fmt="D",
        color="#1b7837",
        markersize=7,
        capsize=4,
        elinewidth=1.4,
        label=f"test accuracy of the choice, scored once: {test['value']:.4f}",
    )
    acc_ax.axhline(
        tutorial,
        color=grey,
        linestyle="--",
        linewidth=1,
        label=f"tutorial's published test accuracy {tutorial:.4f}",
    )
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_title("Accuracy (bars: 95% intervals): chosen on validation, tested once")
    bars(loss_ax, "val_log_loss", "#5e3c99", "validation log loss")
    loss_ax.set_ylabel("log loss (lower is better)")
    loss_ax.set_title("Validation log loss (95% intervals)")
    handles, labels = acc_ax.get_legend_handles_labels()
    order = sorted(
        range(len(labels)), key=lambda i: ("valid" not in labels[i], "tutorial" in labels[i])
    )
    fig.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="lower center",
        bbox_to_anchor=(0.5, 0.005),
        ncol=2,
        fontsize=9,
        frameon=False,
    )
    fig.suptitle(title, y=0.985, fontsize=11.5)
    return fig
