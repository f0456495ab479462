"""Benchmark: the `tutorial` preset against the default preset on real MNIST, side by side, and
the default preset under the pinned BLAS kernel (params.yaml blas.kernel) against OpenBLAS's
native choice for this CPU, also side by side in the same run.

    MNIST_MIRROR=/path/to/mnist make bench     # or: python tests/bench/bench_train.py

The data are the pipeline's own verified files: ``dvc repro download`` (``MNIST_MIRROR`` first,
SHA-256 verified against params.yaml) into data/raw. Every fit runs in a fresh subprocess, so its
peak memory (max RSS) is its own and it loads OpenBLAS with its own kernel; the default preset is
fitted ``--repeats`` times pinned and as many times native, alternating, and the medians
reported; the tutorial preset ``--tutorial-repeats`` times (it takes minutes). The last two lines
read exactly::

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
import resource
import statistics
import subprocess
import sys
from pathlib import Path

DATA = Path("data/raw")  # the download stage's output (dvc.yaml)


def fetch() -> Path:
    """The real MNIST files, verified: the pipeline's own download stage into data/raw."""
    proc = subprocess.run(["dvc", "repro", "download"], stdout=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SystemExit("bench-train: `dvc repro download` failed (MNIST_MIRROR=<folder>?)")
    return DATA


def child(preset: str, params: str, data: Path, kernel: str) -> dict:
    """One fit in this (fresh) process under ``kernel``: fit seconds, accuracy, peak RSS."""
    from mnist_repro import blas

    blas.apply(kernel)  # before NumPy loads, as the CLI does
    from mnist_repro import decode, train
    from mnist_repro.params import load_section

    section = dict(load_section("train", params))
    section["preset"] = preset
    config = train.validate_params(section, params)
    arrays = decode.load_raw(data)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    estimator, facts = train.fit(config, arrays["train_images"], arrays["train_labels"])
    accuracy = train.accuracy(estimator, config, arrays["test_images"], arrays["test_labels"])
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "preset": preset,
        "kernel": kernel,
        "openblas": blas.loaded_kernels(),
        "fit_s": facts["fit_s"],
        "accuracy": accuracy,
        "n_iter": facts["n_iter"],
        "peak_rss_mb": rss_peak / 1024,
        "rss_before_fit_mb": rss_before / 1024,
        "config": config,
    }


def run_child(preset: str, params: str, data: Path, kernel: str) -> dict:
    cmd = [sys.executable, __file__, "--child", preset, "--params", params, "--data", str(data)]
    proc = subprocess.run(
        [*cmd, "--kernel", kernel],
        stdout=subprocess.PIPE,  # stderr passes through: the fit's progress lines
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"bench-train: the {preset} fit ({kernel}) failed (exit {proc.returncode})"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _kernels(result: dict) -> str:
    names = sorted(set(result["openblas"].values()))
    return "/".join(names) or "no OpenBLAS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=5, help="default-preset fits per kernel")
    parser.add_argument("--tutorial-repeats", type=int, default=1, help="tutorial-preset fits")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=DATA, help=argparse.SUPPRESS)
    parser.add_argument("--kernel", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.params, args.data, args.kernel)))
        return 0

    from mnist_repro import blas
    from mnist_repro.params import load_section
    from mnist_repro.train import validate_params

    default = validate_params(
        {k: v for k, v in load_section("train", args.params).items() if k != "preset"}
    )["preset"]
    pinned = blas.kernel_setting(args.params)
    data = fetch()
    print(
        f"train benchmark on {platform.node()}: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start; data {data} (dvc repro download)"
    )
    print(
        f"default preset '{default}' x{args.repeats} with the pinned kernel '{pinned}' and "
        f"x{args.repeats} native, 'tutorial' x{args.tutorial_repeats} pinned; "
        "each fit in a fresh process"
    )
    runs: dict[tuple[str, str], list[dict]] = {
        ("tutorial", pinned): [],
        (default, pinned): [],
        (default, blas.NATIVE): [],
    }
    # Alternate them so that load from elsewhere hits all alike.
    rounds = max(args.tutorial_repeats, args.repeats)
    order = [
        key
        for i in range(rounds)
        for key in runs
        if i < (args.tutorial_repeats if key[0] == "tutorial" else args.repeats)
    ]
    for preset, kernel in order:
        result = run_child(preset, args.params, data, kernel)
        runs[preset, kernel].append(result)
        print(
            f"  {preset:<9} {kernel:<9} ({_kernels(result):<9}) fit {result['fit_s']:7.2f} s  "
            f"accuracy {result['accuracy']:.4f}  iterations {max(result['n_iter'])}  "
            f"peak RSS {result['peak_rss_mb']:.0f} MB (before fit "
            f"{result['rss_before_fit_mb']:.0f} MB)",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    summary = {}
    for key, results in runs.items():
        if not results:  # --tutorial-repeats 0
            continue
        summary[key] = {
            "fit_s": statistics.median(r["fit_s"] for r in results),
            "accuracy": results[0]["accuracy"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "openblas": _kernels(results[0]),
        }
        accuracies = {r["accuracy"] for r in results}
        if len(accuracies) > 1:
            print(
                f"  note: {key[0]} ({key[1]}) accuracies differ between fits: {sorted(accuracies)}"
            )
    print(
        f"{'preset':<10}{'kernel':<10}{'OpenBLAS':<13}{'median fit s':>13}{'accuracy':>10}"
        f"{'peak RSS MB':>13}"
    )
    for (preset, kernel), row in summary.items():
        print(
            f"{preset:<10}{kernel:<10}{row['openblas']:<13}{row['fit_s']:>13.2f}"
            f"{row['accuracy']:>10.4f}{row['peak_rss_mb']:>13.0f}"
        )
    pin, nat = summary[default, pinned], summary[default, blas.NATIVE]
    tutorial = summary.get(("tutorial", pinned), {"fit_s": float("nan"), "accuracy": float("nan")})
    speedup = tutorial["fit_s"] / pin["fit_s"]
    print(
        f"pinned_fit_s={pin['fit_s']:.2f} native_fit_s={nat['fit_s']:.2f} "
        f"pin_cost={pin['fit_s'] / nat['fit_s']:.2f} pinned={pin['openblas']} "
        f"native={nat['openblas']}"
    )
    print(
        f"speedup={speedup:.2f} default_accuracy={pin['accuracy']:.4f} "
        f"tutorial_accuracy={tutorial['accuracy']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
