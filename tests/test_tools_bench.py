"""tools/bench/: the benchmarks read data/raw (the pipeline's files) and say what to do without it.

`make bench`'s last line is the summary CI and people read:
``speedup=<s> default_accuracy=<a> tutorial_accuracy=<b>``. Here on synthetic MNIST, one fit each.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from helpers.dataset import write_fake_mnist
from helpers.repo import REPO_ROOT, run

BENCH = REPO_ROOT / "tools" / "bench"


def bench(script: str, *args: str | Path):
    return run([sys.executable, BENCH / script, *args], cwd=REPO_ROOT, check=False)


def test_bench_train_ends_with_the_summary_line(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path / "raw")
    proc = bench("bench_train.py", "--data", tmp_path / "raw", "--work", tmp_path / "work",
                 "--repeats", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert re.fullmatch(
        r"speedup=\d+\.\d\d default_accuracy=0\.\d{4} tutorial_accuracy=0\.\d{4}", last
    ), proc.stdout
    assert float(last.split("default_accuracy=")[1].split()[0]) > 0.5  # learnable data


def test_bench_train_without_data_says_to_run_the_pipeline_first(tmp_path: Path) -> None:
    proc = bench("bench_train.py", "--data", tmp_path / "raw", "--work", tmp_path / "work")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"bench-train: {tmp_path / 'raw'}: no such folder: run `make repro` first"
    ]
    assert not (tmp_path / "work").exists()


def test_bench_decode_without_data_says_to_run_the_pipeline_first(tmp_path: Path) -> None:
    proc = bench("bench_decode.py", tmp_path)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"bench-decode: missing {tmp_path}/") and line.endswith(
        ": run `make repro` first"
    )


def test_the_benchmarks_default_to_data_raw(tmp_path: Path) -> None:
    """Run from a folder without data/raw: each names the folder it wanted."""
    wanted = {
        "bench_train.py": "bench-train: data/raw: no such folder: run `make repro` first",
        "bench_decode.py": "bench-decode: missing data/raw/",
        "bench_storage.py": "bench-storage: no MNIST files in data/raw: run `make repro` first",
    }
    for script, start in wanted.items():
        proc = run([sys.executable, BENCH / script], cwd=tmp_path, check=False)
        assert proc.returncode == 1, (script, proc.stdout, proc.stderr)
        [line] = proc.stderr.splitlines()
        assert line.startswith(start), (script, line)
