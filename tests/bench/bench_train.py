"""Benchmark: the `tutorial` preset against the default preset on real MNIST, side by side.

    MNIST_MIRROR=/path/to/mnist make bench     # or: python tests/bench/bench_train.py

The four files come through the download stage's own code (``MNIST_MIRROR`` first, SHA-256
verified against params.yaml) into build/bench/raw. Every fit runs in a fresh subprocess, so
its peak memory (max RSS) is its own; the default preset is fitted ``--repeats`` times and its
median reported, the tutorial preset ``--tutorial-repeats`` times (it takes minutes). The last
line reads exactly::

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

DATA = Path("build/bench/raw")


def fetch(params: str, out: Path) -> Path:
    """The real MNIST files in ``out``, verified (the download stage's code and pins)."""
    from mnist_repro import download
    from mnist_repro.params import load_section

    settings = download.parse_settings(load_section("download", params), params)
    sources = download.resolve_sources(settings.sources, os.environ.get(download.MIRROR_ENV))
    out.mkdir(parents=True, exist_ok=True)
    download.download_all(settings, out, sources)
    return out


def child(preset: str, params: str, data: Path) -> dict:
    """One fit in this (fresh) process: fit seconds, test accuracy, peak RSS."""
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
        "fit_s": facts["fit_s"],
        "accuracy": accuracy,
        "n_iter": facts["n_iter"],
        "peak_rss_mb": rss_peak / 1024,
        "rss_before_fit_mb": rss_before / 1024,
        "config": config,
    }


def run_child(preset: str, params: str, data: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", preset, "--params", params, "--data", str(data)],
        stdout=subprocess.PIPE,  # stderr passes through: the fit's progress lines
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench-train: the {preset} fit failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, default=DATA, help="where the verified files go")
    parser.add_argument("--repeats", type=int, default=5, help="default-preset fits (median)")
    parser.add_argument("--tutorial-repeats", type=int, default=1, help="tutorial-preset fits")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.params, args.data)))
        return 0

    from mnist_repro.params import load_section
    from mnist_repro.train import validate_params

    default = validate_params(
        {k: v for k, v in load_section("train", args.params).items() if k != "preset"}
    )["preset"]
    fetch(args.params, args.data)
    print(
        f"train benchmark on {platform.node()}: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start; data {args.data} (verified)"
    )
    print(
        f"default preset '{default}' x{args.repeats}, 'tutorial' x{args.tutorial_repeats}, "
        "each fit in a fresh process"
    )
    runs: dict[str, list[dict]] = {"tutorial": [], default: []}
    # Alternate the two so that load from elsewhere hits both alike.
    rounds = max(args.tutorial_repeats, args.repeats)
    order = [
        p
        for i in range(rounds)
        for p in ("tutorial", default)
        if i < (args.tutorial_repeats if p == "tutorial" else args.repeats)
    ]
    for preset in order:
        result = run_child(preset, args.params, args.data)
        runs[preset].append(result)
        print(
            f"  {preset:<9} fit {result['fit_s']:7.2f} s  accuracy {result['accuracy']:.4f}  "
            f"iterations {max(result['n_iter'])}  peak RSS {result['peak_rss_mb']:.0f} MB "
            f"(before fit {result['rss_before_fit_mb']:.0f} MB)",
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
