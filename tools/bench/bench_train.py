"""Benchmark: the `tutorial` preset against the default preset on real MNIST, side by side, and
the default preset under the pinned BLAS kernel (params.yaml blas.kernel) against OpenBLAS's
native choice for this CPU, also side by side in the same run.

    make bench     # after `make repro`; or: python tools/bench/bench_train.py [--data data/raw]

Reads the pipeline's own verified files (data/raw, which `make repro` writes): they are decoded
and checked once up front, and each fit is the train stage's own command
(``python -m mnist_repro train``) in a fresh process, with a copy of params.yaml whose
``train.preset`` and ``blas.kernel`` are the ones measured, writing into build/bench/. Fit
time and accuracy are what the stage records (train.timings.json, model.json); peak memory is
the process's max RSS. The default preset is fitted ``--repeats`` times and its median
reported, the tutorial preset ``--tutorial-repeats`` times (it takes minutes), both pinned;
the default preset is also fitted ``--repeats`` times with ``blas.kernel: native``. The last
two lines read exactly::

    pinned_fit_s=<s> native_fit_s=<s> pin_cost=<pinned / native> pinned=<kernel> native=<kernel>
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


def params_for(preset: str, kernel: str, params: Path, work: Path) -> Path:
    """A copy of ``params`` with ``train.preset`` and ``blas.kernel`` set."""
    values = yaml.safe_load(params.read_text(encoding="utf-8"))
    values["train"]["preset"] = preset
    values["blas"]["kernel"] = kernel
    path = work / f"params-{preset}-{kernel}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def fit_once(preset: str, kernel: str, params: Path, data: Path, work: Path) -> dict[str, Any]:
    """One run of the train stage in a fresh process: fit seconds, test accuracy, peak RSS."""
    out = work / f"{preset}-{kernel}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MNIST_TRAIN_BACKEND"] = "local"  # never submit to Azure ML from a benchmark
    preset_params = params_for(preset, kernel, params, work)
    cmd = [sys.executable, "-m", "mnist_repro", "train", "--params", str(preset_params),
           "--data", str(data), "--out", str(out)]  # fmt: skip
    # stdout and stderr pass through: the stage's progress lines. wait4 gives this child's RSS.
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench-train: the {preset} fit ({kernel}) failed")
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    timings = json.loads((out / TIMINGS_FILE).read_text(encoding="utf-8"))
    return {
        "fit_s": timings["seconds"]["fit"],
        "accuracy": meta["test_accuracy"],
        "n_iter": meta["n_iter"],
        "openblas": "/".join(sorted(set(meta["blas"]["openblas"].values()))),
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def fit_order(
    default: str, pinned: str, repeats: int, tutorial_repeats: int
) -> list[tuple[str, str]]:
    """The (preset, kernel) runs alternated, so that load from elsewhere hits all alike."""
    counts = {("tutorial", pinned): tutorial_repeats, (default, pinned): repeats}
    counts[default, "native"] = repeats
    return [k for i in range(max(counts.values())) for k in counts if i < counts[k]]


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
    values = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    default, pinned = values["train"]["preset"], values["blas"]["kernel"]
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"train benchmark on {platform.node()}: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start; data {args.data} (decoded and checked)"
    )
    print(
        f"default preset '{default}' x{args.repeats} with the pinned kernel '{pinned}' and "
        f"x{args.repeats} native, 'tutorial' x{args.tutorial_repeats} pinned; "
        "each fit a fresh run of the train stage"
    )
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for preset, kernel in fit_order(default, pinned, args.repeats, args.tutorial_repeats):
        result = fit_once(preset, kernel, args.params, args.data, args.work)
        runs.setdefault((preset, kernel), []).append(result)
        print(
            f"  {preset:<9} {kernel:<9} ({result['openblas']}) fit {result['fit_s']:7.2f} s  "
            f"accuracy {result['accuracy']:.4f}  "
            f"iterations {max(result['n_iter'])}  peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    summary = {}
    for key, results in runs.items():
        summary[key] = {
            "fit_s": statistics.median(r["fit_s"] for r in results),
            "accuracy": results[0]["accuracy"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "openblas": results[0]["openblas"],
        }
        accuracies = {r["accuracy"] for r in results}
        if len(accuracies) > 1:
            print(f"  note: {key} accuracies differ between fits: {sorted(accuracies)}")
    print(
        f"{'preset':<10}{'kernel':<10}{'OpenBLAS':<13}{'median fit s':>13}{'accuracy':>10}"
        f"{'peak RSS MB':>13}"
    )
    for (preset, kernel), row in summary.items():
        print(
            f"{preset:<10}{kernel:<10}{row['openblas']:<13}{row['fit_s']:>13.2f}"
            f"{row['accuracy']:>10.4f}{row['peak_rss_mb']:>13.0f}"
        )
    pin, nat = summary[default, pinned], summary[default, "native"]
    tutorial = summary.get(("tutorial", pinned), {"fit_s": float("nan"), "accuracy": float("nan")})
    print(
        f"pinned_fit_s={pin['fit_s']:.2f} native_fit_s={nat['fit_s']:.2f} "
        f"pin_cost={pin['fit_s'] / nat['fit_s']:.2f} pinned={pin['openblas']} "
        f"native={nat['openblas']}"
    )
    print(
        f"speedup={tutorial['fit_s'] / pin['fit_s']:.2f} default_accuracy={pin['accuracy']:.4f} "
        f"tutorial_accuracy={tutorial['accuracy']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
