"""Benchmark: decoding the MNIST idx files vs plain gzip decompression of the same files.

    make bench-decode     # or: python tools/bench/bench_decode.py [--repeats 7] [folder]

The folder defaults to data/raw, the pipeline's own verified files (``make repro`` first).
Each measurement reads the files from disk, so both sides pay the same I/O; the
median of the repeats is reported, measured side by side in one run. The goal
(issue 2) is ``read_idx`` within 2x of ``gzip.decompress``.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mnist_repro.decode import FILES, load_raw
from mnist_repro.idx import read_idx
from mnist_repro.paths import RAW

GOAL = 2.0


def seconds(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=RAW)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    paths = [args.folder / name for name in FILES.values()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(
            f"bench-decode: missing {', '.join(missing)}: run `make repro` first", file=sys.stderr
        )
        return 1

    def gunzip_all() -> None:
        for path in paths:
            gzip.decompress(path.read_bytes())

    def read_idx_all() -> None:
        for path in paths:
            read_idx(path)

    # Alternate the contenders in each round so that load on the machine hits both alike.
    rows = {
        "gzip.decompress": gunzip_all,
        "read_idx": read_idx_all,
        "load_raw": lambda: load_raw(args.folder),
    }
    for func in rows.values():  # warm the page cache and imports
        func()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, func in rows.items():
            times[name].append(seconds(func))
    base = statistics.median(times["gzip.decompress"])
    size = sum(p.stat().st_size for p in paths)
    print(f"decode benchmark: 4 files, {size / 1e6:.1f} MB compressed, in {args.folder}")
    print(f"median of {args.repeats} rounds, contenders alternated in each round")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<16} {median * 1000:8.1f} ms   {median / base:5.2f}x gzip")
    ratio = statistics.median(times["load_raw"]) / base
    verdict = "within" if ratio <= GOAL else "NOT within"
    print(f"load_raw (read_idx + checks) / gzip = {ratio:.2f}: {verdict} the {GOAL:g}x goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
