"""``make sweep``: a regularization sweep as DVC experiments; writes reports/sweep.md and a plot.

Each value in params ``sweep.regularization`` is queued as ``dvc exp run --queue -S
train.regularization=<value>``; the queue then runs one experiment at a time, each in its own
temporary copy of the repo (the workspace is left alone). The results are read back with
``dvc exp show --json``: the newest experiment per value on top of the current commit.
``dvc exp apply <name>`` brings any of them into the workspace.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from mnist_repro import figures, log, params, paths, report, train
from mnist_repro.atomic import write_text
from mnist_repro.errors import MnistReproError
from mnist_repro.params import ListOf

LOG = log.get("sweep")
SPEC = {"regularization": [ListOf(train.SPEC["regularization"][0], max_len=100)]}
METRICS = f"{paths.REPORTS}/{paths.METRICS_FILE}"  # as `dvc exp show` names it


def dvc(*args: str) -> str:
    """Run a dvc command; its output streams to the terminal unless captured for JSON."""
    capture = "--json" in args
    proc = subprocess.run(["dvc", *args], capture_output=capture, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()[-1:] if capture else []
        raise MnistReproError(
            f"dvc {' '.join(args)} failed (exit {proc.returncode})"
            + (f": {detail[0]}" if detail else "")
        )
    return proc.stdout or ""


def collect(show: list[dict[str, Any]], values: list[float]) -> list[dict[str, Any]]:
    """The newest experiment per swept value, from ``dvc exp show --json``."""
    found: dict[float, dict[str, Any]] = {}
    groups = [g for e in show if e.get("rev") != "workspace" for g in e.get("experiments") or []]
    for group in groups:
        for rev in group.get("revs") or []:
            data = rev.get("data") or {}
            params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
            reg = (params.get("train") or {}).get("regularization")
            if reg is None or float(reg) not in values:
                continue
            metrics = ((data.get("metrics") or {}).get(METRICS) or {}).get("data") or {}
            row = {
                "regularization": float(reg),
                "name": rev.get("name") or (rev.get("rev") or "")[:7],
                "timestamp": data.get("timestamp") or "",
                "status": data.get("status") or "",
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "log_loss": metrics.get("log_loss"),
            }
            old = found.get(row["regularization"])
            if old is None or row["timestamp"] > old["timestamp"]:
                found[row["regularization"]] = row
    return [found[v] for v in values if v in found]


def render(rows: list[dict[str, Any]], tutorial: float, preset: str) -> str:
    done = [r for r in rows if r["accuracy"] is not None]
    best = max(done, key=lambda r: (r["accuracy"], -r["regularization"])) if done else None
    lines = [
        "# Regularization sweep",
        "",
        "<!-- Written by `make sweep` (DVC experiments); edits are overwritten. -->",
        "",
        f"Preset `{preset}`, one DVC experiment per regularization rate (C = 1 / rate), test set "
        f"accuracy; the tutorial published {tutorial:.4f} for rate 0.5. "
        "`dvc exp show` lists the runs, `dvc exp apply <experiment>` restores one.",
        "",
        f"![accuracy against regularization]({paths.SWEEP_FIGURE})",
        "",
        "| regularization | C | accuracy | macro F1 | log loss | experiment |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["accuracy"] is None:
            lines.append(
                f"| {r['regularization']:g} | {1 / r['regularization']:g} | failed "
                f"({r['status'] or 'no metrics'}) | | | `{r['name']}` |"
            )
            continue
        mark = " **best**" if r is best else ""
        lines.append(
            f"| {r['regularization']:g} | {1 / r['regularization']:g} | {r['accuracy']:.4f}{mark} "
            f"| {r['macro_f1']:.4f} | {r['log_loss']:.4f} | `{r['name']}` |"
        )
    lines.append("")
    if best:
        lines.append(
            f"Best: regularization {best['regularization']:g} with accuracy "
            f"{best['accuracy']:.4f} (experiment `{best['name']}`). Chosen on the test set, so "
            "an optimistic estimate: confirm on held-out data before relying on it."
        )
        lines.append("")
    return "\n".join(lines)


def _head() -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collect-only", action="store_true", help="skip running; rewrite the report from exps"
    )
    parser.add_argument("--out", default=paths.REPORTS, help="output folder (default: %(default)s)")
    parser.add_argument("--rev", help="baseline commit of the experiments (default: HEAD)")


def run(args: argparse.Namespace) -> int:
    values = sorted({float(v) for v in params.load("sweep", SPEC, args.params)["regularization"]})
    preset = params.load("train", train.SPEC, args.params)["preset"]
    tutorial = params.load("report", report.SPEC, args.params)["tutorial_accuracy"]
    # The experiments hang off the commit checked out when they were queued.
    baseline = args.rev or _head()
    if not args.collect_only:
        for value in values:
            LOG.info("queueing train.regularization=%g", value)
            dvc("exp", "run", "--queue", "-S", f"train.regularization={value!r}")
        LOG.info("running %d experiments, one at a time", len(values))
        dvc("exp", "run", "--run-all", "--jobs", "1")
    show = dvc("exp", "show", "--json", *(["--rev", baseline] if baseline else []))
    rows = collect(json.loads(show), values)
    if not rows:
        raise MnistReproError(
            f"dvc exp show: no sweep experiments on top of commit {baseline or 'HEAD'}"
        )
    out = Path(args.out)
    write_text(out / paths.SWEEP_FILE, render(rows, tutorial, preset))
    done = [r for r in rows if r["accuracy"] is not None]
    if done:
        figures.save_png(
            figures.sweep(
                [r["regularization"] for r in done],
                [r["accuracy"] for r in done],
                tutorial,
                f"Test accuracy against regularization ({len(done)} DVC experiments)",
            ),
            out / paths.SWEEP_FIGURE,
        )
    LOG.info("wrote %s and %s", out / paths.SWEEP_FILE, out / paths.SWEEP_FIGURE)
    return 0
