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

from mnist_repro import blas, progress
from mnist_repro.atomic import write_json, write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import load_section, read_json

STAGE = "report"
PARAM_KEYS = ("tutorial_accuracy",)
TIMINGS_FILE = "train.timings.json"  # the train stage's run record (git-ignored)
FINGERPRINT_FILE = "fingerprint.json"
HOST_KEYS = ("cpu", "machine", "isa", "zlib")
FIGURES = (
    (
        "figures/digits.png",
        "Training digits",
        "Random training images with their labels, the figure the tutorial draws before training.",
    ),
    (
        "figures/confusion.png",
        "Confusion matrix",
        "Rows are the true digit, columns the "
        "prediction; the diagonal (green) holds the correct answers and their recall.",
    ),
    (
        "figures/mistakes.png",
        "Most confident mistakes",
        "Test images the model got wrong while "
        "most sure of itself: often ambiguous or mislabelled digits.",
    ),
)


def validate_params(section: dict[str, Any], source: str = "params.yaml") -> dict[str, float]:
    unknown = sorted(set(section) - set(PARAM_KEYS))
    if unknown:
        raise MnistReproError(
            f"{source}: unknown parameter report.{unknown[0]} (known: {', '.join(PARAM_KEYS)})"
        )
    value = section.get("tutorial_accuracy", 0.9204)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise MnistReproError(
            f"{source}: report.tutorial_accuracy must be a number in [0, 1], got {value!r}"
        )
    return {"tutorial_accuracy": float(value)}


def read_host(model_dir: Path) -> dict[str, str]:
    """CPU, machine, x86-64 level and zlib of the last train run, from its run record if any."""
    try:
        timings = json.loads((model_dir / TIMINGS_FILE).read_text(encoding="utf-8"))
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
    params = meta["params"]
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
            if params["regularization"] == 0.5
            else f" (this run: {params['regularization']:g}, so not a like-for-like comparison)."
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
    for path, title, caption in FIGURES:
        lines += [f"### {title}", "", caption, "", f"![{title}]({path})", ""]
    converged = (
        "yes"
        if meta["converged"]
        else (
            f"no: stopped at max_iter={params['max_iter']}"
            + (" (by design, see the top-level README)" if meta["preset"] == "fast" else "")
        )
    )
    lines += [
        "## What ran",
        "",
        "| | |",
        "|---|---|",
        f"| preset | `{meta['preset']}`: {meta['estimator']} |",
        f"| regularization | {params['regularization']:g} (C = {meta['C']:g}) |",
        f"| max_iter, tol | {params['max_iter']}, {params['tol']:g} |",
        f"| seed, threads | {params['seed']}, {params['threads']} |",
        f"| solver iterations | {_iterations(meta['n_iter'])} |",
        f"| converged | {converged} |",
        f"| BLAS kernel | {blas.describe(meta.get('blas', {'kernel': 'not recorded'}))} |",
        f"| host CPU | {host['cpu']} ({host['machine']}, {host['isa']}), the last train run "
        f"here (models/{TIMINGS_FILE}) |",
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
    parser.add_argument("--model", default="models", help="folder with model.json")
    parser.add_argument("--reports", default="reports", help="folder with metrics.json, figures")


def run(args: argparse.Namespace) -> int:
    config = validate_params(load_section(STAGE, args.params), source=str(args.params))
    reports = Path(args.reports)
    meta = read_json(Path(args.model) / "model.json", "train")
    metrics = read_json(reports / "metrics.json", "evaluate")
    for path, _, _ in FIGURES:
        if not (reports / path).is_file():
            raise MnistReproError(f"{reports / path}: not found (run the evaluate stage first)")
    host = read_host(Path(args.model))
    write_text(reports / "README.md", render(meta, metrics, config, host))
    write_json(reports / FINGERPRINT_FILE, fingerprint(meta, host))
    progress.say(STAGE, f"wrote {reports / 'README.md'} and {reports / FINGERPRINT_FILE}")
    return 0
