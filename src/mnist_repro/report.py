"""Stage ``report``: write ``reports/README.md`` from the model metadata, metrics and figures.

The report holds only what the pipeline decides (params, data hashes, metrics, figures), so a
rerun with the same inputs writes the same bytes. The commit it names is the last commit that
changed the code, the pipeline or the params (not ``HEAD``): committing the results afterwards
does not change the report.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mnist_repro import log, params, paths
from mnist_repro.atomic import write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import Interval, Real, read_json
from mnist_repro.provenance import git_commit, git_dirty

LOG = log.get("report")
SPEC = {"tutorial_accuracy": [Interval(Real, 0, 1)]}
CODE_PATHS = ("src", "dvc.yaml", "params.yaml")
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


def code_commit(cwd: str | os.PathLike[str] = ".") -> str:
    """The last commit that changed src/, dvc.yaml or params.yaml, ``+ uncommitted changes``
    when they differ from it; ``MNIST_REPRO_GIT_COMMIT`` overrides (no .git folder)."""
    if os.environ.get("MNIST_REPRO_GIT_COMMIT"):
        return git_commit(cwd)
    commit = git_commit(cwd, CODE_PATHS)
    if commit == "unknown":
        return "unknown (not a git checkout or no commit yet)"
    return f"{commit} + uncommitted changes" if git_dirty(cwd, CODE_PATHS) else commit


def render(
    meta: dict[str, Any], metrics: dict[str, Any], config: dict[str, float], commit: str
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
        f"| code | `{commit}` (last commit changing src/, dvc.yaml or params.yaml) |",
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
        "Reproduce with `make repro`; compare runs with `dvc metrics diff` and `dvc plots diff`.",
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
    write_text(reports / paths.REPORT_FILE, render(meta, metrics, config, code_commit()))
    LOG.info("wrote %s", reports / paths.REPORT_FILE)
    return 0
