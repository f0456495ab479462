"""``make sweep``: choose the regularization on held-out data, then score the choice once.

For each value of params ``sweep.regularization`` the train stage's own command runs in its
selection mode, ``python -m mnist_repro train --select`` (what each trial of ``make
remote-sweep`` runs on Azure ML), with a copy of params.yaml holding that
``train.regularization``: it fits on the training images minus the validation set of params
``select`` and scores that set, never the test set. The value with the highest validation
accuracy (:data:`METRIC`; ties: the stronger regularization) is then fitted on all the
training images and scored on the test set, once, by the plain train command. Writes
``reports/sweep.md`` and ``reports/figures/sweep.png``; the runs stay in ``build/sweep/``.
Not part of ``dvc repro``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mnist_repro import figures, log, params, paths, report, stats, train
from mnist_repro.atomic import write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import ListOf

LOG = log.get("sweep")
SPEC = {"regularization": [ListOf(train.SPEC["regularization"][0], max_len=100)]}
METRIC = "val_accuracy"  # one of train.SELECT_METRICS; params azure.sweep.primary_metric too
WORK = paths.BUILD / "sweep"


def params_copy(source: Path, regularization: float, dest: Path) -> Path:
    """``source`` with ``train.regularization`` set: what one run reads."""
    data = params.load_file(source)
    data["train"]["regularization"] = regularization
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return dest


def train_run(params_file: Path, data: Path, out: Path, select: bool) -> dict[str, Any]:
    """One run of the train stage's command in a fresh process; its model.json."""
    cmd = [sys.executable, "-m", "mnist_repro", "train", *(["--select"] if select else []),
           "--params", str(params_file), "--data", str(data), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "MNIST_TRAIN_BACKEND": "local"}  # never submit to Azure ML from here
    if subprocess.run(cmd, env=env, check=False).returncode != 0:
        raise MnistReproError(f"{' '.join(cmd[1:])}: failed")
    return params.read_json(out / paths.META_FILE, "train")


def row(meta: dict[str, Any]) -> dict[str, Any]:
    """One value's validation scores, from the model.json of a ``--select`` run."""
    val = meta["validation"]
    return {
        "regularization": float(meta["params"]["regularization"]),
        "val_accuracy": val["accuracy"]["value"],
        "val_accuracy_ci": {k: val["accuracy"][k] for k in ("low", "high")},
        "val_log_loss": val["log_loss"]["value"],
        "val_log_loss_ci": {k: val["log_loss"][k] for k in ("low", "high")},
        "fit_size": meta["train_size"],
        "validation_size": val["accuracy"]["n"],
    }


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with the highest validation accuracy; ties go to the stronger regularization."""
    return max(rows, key=lambda r: (r[METRIC], r["regularization"]))


def test_score(meta: dict[str, Any], confidence: float) -> dict[str, Any]:
    """The chosen value's test accuracy (model.json of a full fit) with its Wilson interval."""
    n = int(meta["test_size"])
    return stats.proportion_interval(round(meta["test_accuracy"] * n), n, confidence) | {
        "train_size": meta["train_size"]
    }


def _range(ci: dict[str, float]) -> str:
    return f"{ci['low']:.4f} to {ci['high']:.4f}"


def render(
    rows: list[dict[str, Any]],
    chosen: dict[str, Any],
    test: dict[str, Any],
    select: dict[str, Any],
    tutorial: float,
    preset: str,
) -> str:
    level = f"{100 * select['confidence']:g}%"
    first = rows[0]
    lines = [
        "# Regularization sweep",
        "",
        "<!-- Written by `make sweep`; edits are overwritten. -->",
        "",
        f"Preset `{preset}`. **The regularization was chosen on validation data only.** Each "
        f"rate was fitted on {first['fit_size']:,} training images and scored on the other "
        f"{first['validation_size']:,} (held out from the training set: stratified, seed "
        f"{select['seed']}; params `select`); the test set played no part in the choice. The "
        f"chosen rate was then fitted on all {test['train_size']:,} training images and scored "
        f"on the {test['n']:,} test images once. Each run is the train stage's command, "
        "`python -m mnist_repro train --select`, the same one each trial of "
        "`make remote-sweep` runs on Azure ML.",
        "",
        "![validation accuracy and log loss against regularization, and the chosen value's "
        f"test accuracy]({paths.SWEEP_FIGURE})",
        "",
        f"| regularization | C | validation accuracy ({level} interval) "
        f"| validation log loss ({level} interval) | |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "**chosen**" if r is chosen else ""
        lines.append(
            f"| {r['regularization']:g} | {1 / r['regularization']:g} "
            f"| {r['val_accuracy']:.4f} ({_range(r['val_accuracy_ci'])}) "
            f"| {r['val_log_loss']:.4f} ({_range(r['val_log_loss_ci'])}) | {mark} |"
        )
    overlapping = all(
        r["val_accuracy_ci"]["high"] >= chosen["val_accuracy_ci"]["low"] for r in rows
    )
    spread = max(r["val_accuracy"] for r in rows) - min(r["val_accuracy"] for r in rows)
    lines += [
        "",
        f"| chosen rate | chosen on | test accuracy, scored once ({level} interval) |",
        "|---|---|---|",
        f"| {chosen['regularization']:g} | highest validation accuracy "
        f"({chosen['val_accuracy']:.4f}) | **{test['value']:.4f}** ({_range(test)}), fitted "
        f"on all {test['train_size']:,} training images |",
        "",
        "Each interval is the range that holds the true score for "
        f"{level} of the samples of images one could have drawn (accuracy: Wilson; log loss: "
        "t interval of the mean per-image loss). "
        + (
            f"The validation accuracies span {100 * spread:.2f} percentage points and every "
            "one's interval reaches the chosen rate's: this validation set cannot tell these "
            "rates apart, so the choice is one of several equally good ones, and the test "
            "score above is an honest estimate of the chosen model, not a best-of-seven."
            if overlapping
            else "Some rates are clearly worse on validation (their intervals end below the "
            "chosen rate's); the test score above is an honest estimate of the chosen model."
        )
        + (
            " The chosen rate is at the edge of the grid: a wider grid might go further, "
            "within the same noise."
            if chosen["regularization"] in (rows[0]["regularization"], rows[-1]["regularization"])
            else ""
        ),
        "",
        f"The tutorial published {tutorial:.4f} (test accuracy, regularization 0.5, its "
        "one-vs-rest model).",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=paths.RAW, help="the four idx .gz files (%(default)s)")
    parser.add_argument("--work", default=WORK, help="the runs' folders (%(default)s)")
    parser.add_argument("--out", default=paths.REPORTS, help="output folder (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    source = Path(args.params)
    values = sorted({float(v) for v in params.load("sweep", SPEC, source)["regularization"]})
    preset = train.load_config(source)["preset"]
    select = params.load("select", train.SELECT_SPEC, source)
    tutorial = params.load("report", report.SPEC, source)["tutorial_accuracy"]
    data, work = Path(args.data), Path(args.work)
    if not data.is_dir():
        raise MnistReproError(f"{data}: data folder not found (run `make repro` first)")
    rows = []
    for i, value in enumerate(values, 1):
        LOG.info("[%d/%d] regularization %g: fit without the validation set, score it", i,
                 len(values), value)  # fmt: skip
        copy = params_copy(source, value, work / f"params-{value:g}.yaml")
        rows.append(row(train_run(copy, data, work / f"select-{value:g}", select=True)))
    chosen = choose(rows)
    LOG.info(
        "chosen on validation: regularization %g (%s %.4f); fitting it on every training "
        "image and scoring the test set once",
        chosen["regularization"],
        METRIC,
        chosen[METRIC],
    )
    copy = params_copy(source, chosen["regularization"], work / "params-chosen.yaml")
    test = test_score(train_run(copy, data, work / "chosen", select=False), select["confidence"])
    out = Path(args.out)
    write_text(out / paths.SWEEP_FILE, render(rows, chosen, test, select, tutorial, preset))
    figures.save_png(
        figures.sweep(
            rows,
            chosen["regularization"],
            test,
            tutorial,
            f"Preset '{preset}': regularization chosen on {rows[0]['validation_size']:,} "
            "held-out training images",
        ),
        out / paths.SWEEP_FIGURE,
    )
    (work / "sweep.json").write_text(
        json.dumps({"rows": rows, "chosen": chosen["regularization"], "test": test}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    log.result(
        f"chosen regularization {chosen['regularization']:g} on validation "
        f"({METRIC} {chosen[METRIC]:.4f}); test accuracy {test['value']:.4f} "
        f"[{test['low']:.4f}, {test['high']:.4f}]"
    )
    LOG.info("wrote %s and %s", out / paths.SWEEP_FILE, out / paths.SWEEP_FIGURE)
    return 0
