"""Benchmark: dvc push / dvc pull of the real pipeline's outputs, Azure (Azurite) vs a folder.

    make bench-storage    # or: python tools/bench/bench_storage.py [--repeats 3] [folder]

Runs the whole pipeline on the real MNIST files (the folder, default data/raw: the pipeline's
own verified files, so ``make repro`` first) in a scratch copy of the repo, then, side by side
in one run, times ``dvc push`` of all cached outputs into an empty remote and ``dvc pull`` of
them into a fresh ``git clone`` with an empty cache, through the Azure remote (Azurite on
127.0.0.1, via dvc-azure) and through a plain local-folder remote (the floor: same DVC, no
HTTP). Medians of the repeats; each time includes DVC's own start-up, shown by a push with
nothing to send.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# tools/azurite.py, and the tests' helpers for the throwaway repo copy.
TOOLS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TOOLS), str(TOOLS.parent / "tests")]

from azurite import Azurite, ensure_installed, missing_tools  # noqa: E402
from helpers.repo import copy_repo, run  # noqa: E402
from mnist_repro.paths import RAW  # noqa: E402


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    run(cmd, cwd=cwd, env=env, timeout=1800)
    return time.perf_counter() - start


def cache_size(repo: Path) -> tuple[int, int]:
    files = [p for p in (repo / ".dvc" / "cache" / "files").rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=RAW)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not any(args.folder.glob("*-ubyte.gz")):
        print(
            f"bench-storage: no MNIST files in {args.folder}: run `make repro` first",
            file=sys.stderr,
        )
        return 1
    folder = args.folder.resolve()  # the pipeline runs in a scratch copy elsewhere
    if reason := missing_tools():
        print(f"bench-storage: {reason}; skipped", file=sys.stderr)
        return 1
    ensure_installed(log=sys.stdout)

    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp_name:
        tmp = Path(tmp_name)
        producer = copy_repo(tmp / "producer")
        print(f"dvc repro on the real MNIST files ({args.folder}) ...", flush=True)
        repro = timed(["dvc", "repro"], producer, env={"MNIST_MIRROR": str(folder)})
        run(["git", "add", "-A"], cwd=producer)
        run(["git", "commit", "-q", "-m", "pipeline outputs"], cwd=producer)
        print(f"  {repro:.0f} s", flush=True)

        with Azurite(tmp / "azurite") as server:
            server.create_container("bench")
            times: dict[str, dict[str, list[float]]] = {
                kind: {"push": [], "pull": [], "noop push": []} for kind in ("azure", "folder")
            }
            for i in range(args.repeats):
                urls = {"azure": f"azure://bench/run{i}", "folder": str(tmp / f"folder{i}")}
                for kind, url in urls.items():
                    run(["dvc", "remote", "add", "--local", "-f", kind, url], cwd=producer)
                run(["dvc", "remote", "modify", "--local", "azure", "connection_string",
                     server.connection_string], cwd=producer)  # fmt: skip
                for kind in ("azure", "folder"):
                    times[kind]["push"].append(timed(["dvc", "push", "-r", kind], producer))
                    times[kind]["noop push"].append(timed(["dvc", "push", "-r", kind], producer))
                    clone = tmp / f"clone-{kind}-{i}"
                    run(["git", "clone", "-q", str(producer), str(clone)], cwd=tmp)
                    run(["dvc", "remote", "add", "--local", "-f", kind, urls[kind]], cwd=clone)
                    if kind == "azure":
                        run(["dvc", "remote", "modify", "--local", "azure", "connection_string",
                             server.connection_string], cwd=clone)  # fmt: skip
                    times[kind]["pull"].append(timed(["dvc", "pull", "-r", kind], clone))
                    run(["dvc", "status"], cwd=clone)

        objects, size = cache_size(tmp / "clone-azure-0")
        print(
            f"\nbench-storage: {objects} objects, {size / 1e6:.1f} MB "
            f"(data/raw, mnist.npz, models/); median of {args.repeats} runs:"
        )
        print(f"  {'':<10} {'azure':>9} {'folder':>9} {'azure/folder':>13}")
        for op in ("push", "pull", "noop push"):
            azure = statistics.median(times["azure"][op])
            folder = statistics.median(times["folder"][op])
            print(f"  {op:<10} {azure:>8.1f}s {folder:>8.1f}s {azure / folder:>12.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
