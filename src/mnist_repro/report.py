"""Stage ``report``: write ``reports/README.md`` from the model metadata, metrics and figures.

The report holds what the pipeline decides (params, data hashes, BLAS kernel, package versions,
metrics, figures), so a rerun with the same inputs writes the same bytes. It names no git
commit or git state: DVC does not track them, so a report rerun would not follow them (the
train stage's run record, ``models/train.timings.json``, holds the commit). One line comes
from that run record: the CPU of the last train run here, which ``reports/fingerprint.json``
also holds, with the kernel and packages, for ``make verify`` to compare hosts against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mnist_repro import blas, log, params, paths
from mnist_repro.atomic import write_json, write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import Interval, Real, read_json

LOG = log.get("report")
SPEC = {"tutorial_accuracy": [Interval(Real, 0, 1)]}
HOST_KEYS = ("cpu", "machine", "isa", "zlib")
FIGURES = (
    (
        "digits",
        "Training digits",
        "Random training images with their labels, the figure the tutorial draws before training.",
    ),
    (
        "confusion",
        "Confusion matrix",
        "Rows are the true digit, columns the "
        "prediction; the diagonal (green) holds the correct answers and their recall.",
    ),
    (
        "mistakes",
        "Most confident mistakes",
        "Test images the model got wrong while "
        "most sure of itself: often ambiguous or mislabelled digits.",
    ),
)


def read_host(model_dir: Path) -> dict[str, str]:
    """CPU, machine, x86-64 level and zlib of the train run, from its run record if any."""
    try:
        timings = json.loads((model_dir / paths.TIMINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        timings = {}
    if not isinstance(timings, dict):
        timings = {}
    return {key: str(timings.get(key, "unknown")) for key in HOST_KEYS}


def fingerprint(meta: dict[str, Any], host: dict[str, str]) -> dict[str, Any]:
    """What made these results: the train run's host, the BLAS kernels and the packages."""
    return {
        **host,
        "blas": meta.get("blas", {"kernel": "not recorded"}),
        "packages": meta["packages"],
    }


def render(
    meta: dict[str, Any], metrics: dict[str, Any], config: dict[str, float], host: dict[str, str]
) -> str:
    """The report's Markdown."""
    fit = meta["params"]
    tutorial = config["tutorial_accuracy"]
    acc = metrics["accuracy"]
    diff = 100 * (acc - tutorial)
    verdict = "above" if diff > 0 else "below" if diff < 0 else "equal to"
    lines = [
        "# Results",
        "",
        "<!-- Written by the pipeline's `report` stage (`dvc repro`); edits are overwritten. -->",
        "",
        f"Test accuracy **{acc:.4f}** with the `{meta['preset']}` preset: "
        f"{abs(diff):.2f} percentage points {verdict} the **{tutorial:.4f}** the Azure ML "
        "tutorial published for its one-vs-rest logistic regression at regularization rate 0.5"
        + (
            "."
            if fit["regularization"] == 0.5
            else f" (this run: {fit['regularization']:g}, so not a like-for-like comparison)."
        ),
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy (test) | {acc:.4f} |",
        f"| tutorial's published accuracy | {tutorial:.4f} |",
        f"| macro F1 | {metrics['macro_f1']:.4f} |",
        f"| log loss | {metrics['log_loss']:.4f} |",
        f"| regularization rate | {metrics['regularization rate']:g} |",
        f"| training images | {metrics['train_size']} |",
        f"| test images | {metrics['test_size']} |",
        "",
        "| class | precision | recall | F1 | test images |",
        "|---|---|---|---|---|",
    ]
    for label, row in sorted(metrics["per_class"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} "
            f"| {row['support']} |"
        )
    lines += ["", "## Figures", ""]
    for key, title, caption in FIGURES:
        path = paths.FIGURE_FILES[key]
        lines += [f"### {title}", "", caption, "", f"![{title}]({path})", ""]
    converged = (
        "yes"
        if meta["converged"]
        else (
            f"no: stopped at max_iter={fit['max_iter']}"
            + (" (by design, see the top-level README)" if meta["preset"] == "fast" else "")
        )
    )
    lines += [
        "## What ran",
        "",
        "| | |",
        "|---|---|",
        f"| preset | `{meta['preset']}`: {meta['estimator']} |",
        f"| regularization | {fit['regularization']:g} (C = {meta['C']:g}) |",
        f"| max_iter, tol | {fit['max_iter']}, {fit['tol']:g} |",
        f"| seed, threads | {fit['seed']}, {fit['threads']} |",
        f"| solver iterations | {_iterations(meta['n_iter'])} |",
        f"| converged | {converged} |",
        f"| BLAS kernel | {blas.describe(meta.get('blas', {'kernel': 'not recorded'}))} |",
        f"| host CPU | {host['cpu']} ({host['machine']}, {host['isa']}), the train run "
        f"these results come from (models/{paths.TIMINGS_FILE}) |",
        f"| zlib (PNG compression) | {host['zlib']} (the system's, Pillow links it) |",
        f"| code | mnist-repro {meta['packages'].get('mnist-repro', 'unknown')}; each stage's "
        "code hashes are in dvc.lock |",
        "",
        "Data (SHA-256 of the raw files the model was trained and tested on):",
        "",
        "| file | sha256 |",
        "|---|---|",
    ]
    lines += [f"| {name} | `{digest}` |" for name, digest in sorted(meta["data"].items())]
    lines += ["", "Packages:", "", "| package | version |", "|---|---|"]
    lines += [f"| {name} | {version} |" for name, version in sorted(meta["packages"].items())]
    lines += [
        "",
        "Reproduce with `make repro`, then `make verify` says whether the run matched these "
        "results; compare runs with `dvc metrics diff` and `dvc plots diff`.",
        "",
    ]
    return "\n".join(lines)


def _iterations(n_iter: list[int]) -> str:
    if len(n_iter) == 1:
        return str(n_iter[0])
    return f"{min(n_iter)}-{max(n_iter)} over {len(n_iter)} one-vs-rest models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=paths.MODELS, help="folder with the model's metadata")
    parser.add_argument("--reports", default=paths.REPORTS, help="folder with metrics, figures")


def run(args: argparse.Namespace) -> int:
    config = params.load("report", SPEC, args.params)
    reports = Path(args.reports)
    meta = read_json(Path(args.model) / paths.META_FILE, "train")
    metrics = read_json(reports / paths.METRICS_FILE, "evaluate")
    for path in paths.FIGURE_FILES.values():
        if not (reports / path).is_file():
            raise MnistReproError(f"{reports / path}: not found (run the evaluate stage first)")
    host = read_host(Path(args.model))
    write_text(reports / paths.REPORT_FILE, render(meta, metrics, config, host))
    write_json(reports / paths.FINGERPRINT_FILE, fingerprint(meta, host))
    LOG.info("wrote %s and %s", reports / paths.REPORT_FILE, reports / paths.FINGERPRINT_FILE)
    return 0
