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


def _range(ci: dict[str, float] | None, digits: int = 4) -> str:
    """An interval as ``0.9217 to 0.9319`` (blank when the metrics hold none)."""
    return "" if not ci else f"{ci['low']:.{digits}f} to {ci['high']:.{digits}f}"


def _inside(value: float, ci: dict[str, float]) -> bool:
    return ci["low"] <= value <= ci["high"]


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


def headline(meta: dict[str, Any], metrics: dict[str, Any], tutorial: float) -> str:
    """The report's first paragraph: the accuracy, its interval, and the paired comparison."""
    fit = meta["params"]
    acc = metrics["accuracy"]
    level = _percent(metrics.get("confidence_level", 0.95))
    text = f"Test accuracy **{acc:.4f}** with the `{meta['preset']}` preset"
    if "accuracy_ci" in metrics:
        text += f" ({level} interval {_range(metrics['accuracy_ci'])})"
    base = metrics.get("tutorial_preset")
    if base is None:
        diff = 100 * (acc - tutorial)
        verdict = "above" if diff > 0 else "below" if diff < 0 else "equal to"
        return (
            text + f": {abs(diff):.2f} percentage points {verdict} the **{tutorial:.4f}** the "
            "Azure ML tutorial published for its one-vs-rest logistic regression at "
            "regularization rate 0.5"
            + (
                "."
                if fit["regularization"] == 0.5
                else f" (this run: {fit['regularization']:g}, so not a like-for-like comparison)."
            )
        )
    paired = base["paired"]
    p = paired["mcnemar_exact_p"]
    significant = p < 0.05
    text += (
        f". The tutorial's own configuration, rerun here (the `{base['preset']}` preset, "
        f"regularization {base['regularization rate']:g}), scores **{base['accuracy']:.4f}** "
        f"({_range(base['accuracy_ci'])}) on the same {metrics['test_size']} test images. "
        f"They disagree on {paired['only_this_right'] + paired['only_tutorial_right']} "
        f"images: the `{meta['preset']}` preset alone is right on {paired['only_this_right']}, "
        f"the `{base['preset']}` preset alone on {paired['only_tutorial_right']}; "
        f"the exact McNemar test gives p = {_p(p)}, so "
        + (
            "the difference is larger than chance would explain (p < 0.05)."
            if significant
            else "chance alone could explain the difference (p >= 0.05)."
        )
    )
    within = _inside(tutorial, base["accuracy_ci"])
    text += (
        f" The accuracy the Azure ML tutorial published, {tutorial:.4f}, lies "
        + ("inside" if within else "outside")
        + f" the `{base['preset']}` preset's interval"
        + (
            ": the rerun agrees with it."
            if within
            else ": the rerun does not reproduce it within noise."
        )
    )
    return text


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def comparison(meta: dict[str, Any], metrics: dict[str, Any], tutorial: float) -> list[str]:
    """The section comparing the model with the tutorial preset on the same images."""
    base = metrics.get("tutorial_preset")
    if base is None:
        return []
    paired = base["paired"]
    me, them = f"`{meta['preset']}` (this model)", f"`{base['preset']}` (tutorial preset)"
    b, c = paired["only_this_right"], paired["only_tutorial_right"]
    level = _percent(metrics.get("confidence_level", 0.95))
    rows = [
        ("accuracy", "accuracy", "accuracy_ci"),
        ("macro F1", "macro_f1", "macro_f1_ci"),
        ("log loss", "log_loss", "log_loss_ci"),
    ]
    lines = [
        "## Comparison with the tutorial preset (paired, same test images)",
        "",
        f"| | {me} | {them} |",
        "|---|---|---|",
        f"| regularization rate | {metrics['regularization rate']:g} "
        f"| {base['regularization rate']:g} |",
    ]
    for name, key, ci in rows:
        lines.append(
            f"| {name} ({level} interval) | {metrics[key]:.4f} ({_range(metrics[ci])}) "
            f"| {base[key]:.4f} ({_range(base[ci])}) |"
        )
    lines += [
        f"| the tutorial's published accuracy | | {tutorial:.4f}: "
        + ("inside" if _inside(tutorial, base["accuracy_ci"]) else "outside")
        + " the interval |",
        "",
        f"| test images | {them} right | {them} wrong |",
        "|---|---|---|",
        f"| {me} right | {paired['both_right']} | **{b}** (b) |",
        f"| {me} wrong | **{c}** (c) | {paired['both_wrong']} |",
        "",
        f"Exact McNemar test: p = {_p(paired['mcnemar_exact_p'])} (two-sided binomial test of "
        f"b = {b} out of b + c = {b + c} at probability 1/2). Only the {b + c} images where "
        "exactly one model is right say which model is better; if both were equally accurate, "
        "each of them would be a coin toss between the two, and p is the chance of a split at "
        "least this lopsided. The two accuracy intervals may overlap even when this test finds "
        "a difference: they ignore that both models saw the same images, the paired test "
        "uses it, so it is the sharper comparison.",
        "",
    ]
    return lines


def render(
    meta: dict[str, Any], metrics: dict[str, Any], config: dict[str, float], host: dict[str, str]
) -> str:
    """The report's Markdown."""
    fit = meta["params"]
    tutorial = config["tutorial_accuracy"]
    acc = metrics["accuracy"]
    level = _percent(metrics.get("confidence_level", 0.95))
    boot = metrics.get("bootstrap", {})
    with_ci = "accuracy_ci" in metrics
    lines = [
        "# Results",
        "",
        "<!-- Written by the pipeline's `report` stage (`dvc repro`); edits are overwritten. -->",
        "",
        headline(meta, metrics, tutorial),
        "",
        "## Metrics",
        "",
        f"| metric | value | {level} interval |" if with_ci else "| metric | value | |",
        "|---|---|---|",
        f"| accuracy (test) | {acc:.4f} | {_range(metrics.get('accuracy_ci'))} |",
        f"| macro F1 | {metrics['macro_f1']:.4f} | {_range(metrics.get('macro_f1_ci'))} |",
        f"| log loss | {metrics['log_loss']:.4f} | {_range(metrics.get('log_loss_ci'))} |",
        f"| tutorial's published accuracy | {tutorial:.4f} | |",
        f"| regularization rate | {metrics['regularization rate']:g} | |",
        f"| training images | {metrics['train_size']} | |",
        f"| test images | {metrics['test_size']} | |",
        "",
    ]
    if with_ci:
        n = metrics["test_size"]
        lines += [
            "What the intervals mean, for a reader who is not a statistician:",
            "",
            f"- **Accuracy** (Wilson score interval): the {n} test images are one sample of "
            "the digits the model could meet; a range built this way holds the model's true "
            f"accuracy for {level} of such samples, so its width is the noise of a "
            f"{n}-image test set.",
            f"- **Macro F1** (bootstrap): the test images were redrawn at random, with "
            f"replacement, {boot.get('resamples', '?')} times (seed {boot.get('seed', '?')}) "
            "and macro F1 recomputed each time; the range is where the middle "
            f"{level} of those values fall (bias-corrected), i.e. how much it moves by chance.",
            f"- **Log loss** (t interval): the average of {n} per-image losses, plus or minus "
            "about two standard errors of that average.",
            "- **Recall per class** (Wilson): each class has only about a thousand test "
            "images, so its range is wider; two classes whose ranges overlap may not differ.",
            "",
        ]
    lines += comparison(meta, metrics, tutorial)
    lines += [
        "## Per class",
        "",
        f"| class | precision | recall ({level} interval) | F1 | test images |",
        "|---|---|---|---|---|",
    ]
    for label, row in sorted(metrics["per_class"].items(), key=lambda kv: int(kv[0])):
        interval = f" ({_range(row['recall_ci'], 3)})" if "recall_ci" in row else ""
        lines.append(
            f"| {label} | {row['precision']:.4f} | {row['recall']:.4f}{interval} "
            f"| {row['f1']:.4f} | {row['support']} |"
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
