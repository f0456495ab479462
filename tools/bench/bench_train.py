"""Benchmark: the `tutorial` preset against the default preset on real MNIST, side by side.

    make bench     # after `make repro`; or: python tools/bench/bench_train.py [--data data/raw]

Reads the pipeline's own verified files (data/raw, which `make repro` writes): they are decoded
and checked once up front, and each fit is the train stage's own command
(``python -m mnist_repro train``) in a fresh process, with a copy of params.yaml whose
``train.preset`` is the one measured, writing into build/bench/. Fit time and accuracy are what
the stage records (train.timings.json, model.json); peak memory is the process's max RSS. The
default preset is fitted ``--repeats`` times and its median reported, the tutorial preset
``--tutorial-repeats`` times (it takes minutes). The last line reads exactly::

    speedup=<tutorial_fit_s / default_fit_s> default_accuracy=<a> tutorial_accuracy=<b>

A benchmark, not a test: it asserts nothing. Run it on a quiet machine: the presets use
different numbers of threads (liblinear one, the default preset params.yaml's train.threads),
so load from other processes skews the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mnist_repro import decode
from mnist_repro.errors import MnistReproError
from mnist_repro.paths import BUILD, META_FILE, PARAMS, RAW, TIMINGS_FILE


def check_data(data: Path) -> str | None:
    """Why ``data`` cannot be benchmarked (``None`` when its four files decode cleanly)."""
    if not data.is_dir():
        return f"{data}: no such folder"
    try:
        decode.load_raw(data)
    except MnistReproError as exc:
        return str(exc)
    return None


def params_for(preset: str, params: Path, work: Path) -> Path:
    """A copy of ``params`` with ``train.preset`` set to ``preset``."""
    values = yaml.safe_load(params.read_text(encoding="utf-8"))
    values["train"]["preset"] = preset
    path = work / f"params-{preset}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def fit_once(preset: str, params: Path, data: Path, work: Path) -> dict[str, Any]:
    """One run of the train stage in a fresh process: fit seconds, test accuracy, peak RSS."""
    out = work / preset
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MNIST_TRAIN_BACKEND"] = "local"  # never submit to Azure ML from a benchmark
    preset_params = params_for(preset, params, work)
    cmd = [sys.executable, "-m", "mnist_repro", "train", "--params", str(preset_params),
           "--data", str(data), "--out", str(out)]  # fmt: skip
    # stdout and stderr pass through: the stage's progress lines. wait4 gives this child's RSS.
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench-train: the {preset} fit failed (exit {proc.returncode})")
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    timings = json.loads((out / TIMINGS_FILE).read_text(encoding="utf-8"))
    return {
        "fit_s": timings["seconds"]["fit"],
        "accuracy": meta["test_accuracy"],
        "n_iter": meta["n_iter"],
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def fit_order(default: str, repeats: int, tutorial_repeats: int) -> list[str]:
    """The two presets alternated, so that load from elsewhere hits both alike."""
    counts = {"tutorial": tutorial_repeats, default: repeats}
    return [p for i in range(max(counts.values())) for p in counts if i < counts[p]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=PARAMS)
    parser.add_argument("--data", type=Path, default=RAW, help="the four MNIST idx .gz files")
    parser.add_argument("--work", type=Path, default=BUILD / "bench", help="scratch folder")
    parser.add_argument("--repeats", type=int, default=5, help="default-preset fits (median)")
    parser.add_argument("--tutorial-repeats", type=int, default=1, help="tutorial-preset fits")
    args = parser.parse_args(argv)

    if problem := check_data(args.data):
        print(f"bench-train: {problem}: run `make repro` first", file=sys.stderr)
        return 1
    default = yaml.safe_load(args.params.read_text(encoding="utf-8"))["train"]["preset"]
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"train benchmark on {platform.node()}: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start; data {args.data} (decoded and checked)"
    )
    print(
        f"default preset '{default}' x{args.repeats}, 'tutorial' x{args.tutorial_repeats}, "
        "each fit a fresh run of the train stage"
    )
    runs: dict[str, list[dict[str, Any]]] = {"tutorial": [], default: []}
    for preset in fit_order(default, args.repeats, args.tutorial_repeats):
        result = fit_once(preset, args.params, args.data, args.work)
        runs[preset].append(result)
        print(
            f"  {preset:<9} fit {result['fit_s']:7.2f} s  accuracy {result['accuracy']:.4f}  "
            f"iterations {max(result['n_iter'])}  peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    summary = {}
    for preset, results in runs.items():
        summary[preset] = {
            "fit_s": statistics.median(r["fit_s"] for r in results),
            "accuracy": results[0]["accuracy"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        }
        accuracies = {r["accuracy"] for r in results}
        if len(accuracies) > 1:
            print(f"  note: {preset} accuracies differ between fits: {sorted(accuracies)}")
    print(f"{'preset':<10}{'median fit s':>14}{'accuracy':>10}{'peak RSS MB':>13}")
    for preset, row in summary.items():
        print(
            f"{preset:<10}{row['fit_s']:>14.2f}{row['accuracy']:>10.4f}{row['peak_rss_mb']:>13.0f}"
        )
    speedup = summary["tutorial"]["fit_s"] / summary[default]["fit_s"]
    print(
        f"speedup={speedup:.2f} default_accuracy={summary[default]['accuracy']:.4f} "
        f"tutorial_accuracy={summary['tutorial']['accuracy']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
