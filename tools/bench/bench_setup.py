"""Benchmark: `make setup` (uv installs the lock) against the plain pip install of the same lock,
each into a fresh venv, side by side in one run.

    make bench-setup     # or: python tools/bench/bench_setup.py [--rounds 1] [--warmup 1]

The two contenders, each timed from nothing to a working venv:

- ``make setup``: ``make setup VENV=<work>/venv-make`` in this checkout (the venv, uv installed
  hash-pinned from requirements-uv.lock, requirements-dev.lock installed by uv with
  ``--require-hashes``, this package editable);
- plain pip: ``python -m venv``, ``pip install --require-hashes --no-deps -r
  requirements-dev.lock``, ``pip install --no-deps --no-build-isolation -e .`` (what `make
  setup` ran before uv, and what it falls back to).

Both use the same Python (``--python``, default the interpreter behind this one). Caches: each
contender first runs ``--warmup`` times untimed (default 1), so pip's and uv's own download
caches hold every wheel; the timed rounds then alternate. Each venv is deleted after its run.
The last line reads exactly::

    make_setup_s=<median s> pip_s=<median s> speedup=<pip_s / make_setup_s>

A benchmark, not a test: it asserts nothing. It needs the network the first time (or warm
caches) and about 1.5 GB free under ``--work``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK = "requirements-dev.lock"


def base_python() -> str:
    """The interpreter this one runs on (outside any venv): what `make setup` would use."""
    return getattr(sys, "_base_executable", None) or sys.executable


def make_setup(python: str, venv: Path) -> list[list[str]]:
    return [["make", "--no-print-directory", "setup", f"VENV={venv}", f"PYTHON={python}"]]


def pip_setup(python: str, venv: Path) -> list[list[str]]:
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    return [
        [python, "-m", "venv", str(venv)],
        [*pip, "--require-hashes", "--no-deps", "-r", LOCK],
        [*pip, "--no-deps", "--no-build-isolation", "-e", "."],
    ]


def timed(commands: list[list[str]], venv: Path) -> float:
    """Seconds to run ``commands`` in the checkout (output kept quiet); the venv removed after."""
    shutil.rmtree(venv, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS")}
    # The checkout's own venv must not shadow the interpreter under test.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO / ".venv"))
    )
    start = time.perf_counter()
    for cmd in commands:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench-setup: {' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    seconds = time.perf_counter() - start
    if not (venv / "bin" / "python").exists():
        raise SystemExit(f"bench-setup: {venv} has no python after setup")
    shutil.rmtree(venv, ignore_errors=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=base_python(), help="interpreter for both venvs")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "bench-setup")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs of each (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    contenders = {
        "make setup": (make_setup(args.python, work / "venv-make"), work / "venv-make"),
        "plain pip": (pip_setup(args.python, work / "venv-pip"), work / "venv-pip"),
    }
    print(
        f"setup benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at "
        f"start; {args.python}; {args.warmup} warm-up + {args.rounds} timed run(s) of each"
    )
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(args.warmup + args.rounds):
        for name, (commands, venv) in contenders.items():
            seconds = timed(commands, venv)
            warm = i < args.warmup
            if not warm:
                times[name].append(seconds)
            print(f"  {name:<11} {seconds:7.2f} s{'  (warm-up)' if warm else ''}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    fast, slow = (statistics.median(times[name]) for name in contenders)
    print(f"make_setup_s={fast:.2f} pip_s={slow:.2f} speedup={slow / fast:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
