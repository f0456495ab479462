"""Check what `dvc repro` left in a repo copy after running inside the image.

Usage: python tools/docker/check_outputs.py REPO_COPY UID [--same-as OTHER_COPY]

- every stage of dvc.yaml is recorded in dvc.lock and every declared output exists;
- every file in the copy belongs to UID (the container ran as the calling user);
- reports/metrics.json, when the pipeline declares it, shows an accuracy above chance (0.1);
- with --same-as: metrics, models/ and data/processed/ outputs are byte-identical to
  OTHER_COPY's (the same pipeline run in the virtual environment); for JSON files that
  differ, the differing keys are printed.
Prints one line per finding; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

CHANCE = 0.1
MUST_MATCH = ("models/", "data/processed/", "reports/metrics.json")


def stage_paths(stage: dict) -> Iterator[str]:
    """Paths a dvc.yaml stage declares as outs, metrics or plots (plot ids that are files)."""
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []) or []:
            yield next(iter(entry)) if isinstance(entry, dict) else str(entry)


def files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def find_accuracy(metrics: object) -> float | None:
    """The first number under a key named 'accuracy' (metrics files may nest it)."""
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            if key == "accuracy" and isinstance(value, int | float):
                return float(value)
            found = find_accuracy(value)
            if found is not None:
                return found
    return None


def json_differences(a: object, b: object, path: tuple = ()) -> list[tuple]:
    """Key paths where two parsed JSON documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            diff
            for key in sorted(a.keys() | b.keys())
            for diff in json_differences(a.get(key), b.get(key), (*path, key))
        ]
    return [] if a == b else [path]


def compare(ours: Path, theirs: Path) -> str | None:
    """None if the files match; else why not."""
    if not theirs.is_file():
        return "missing in the venv run"
    if ours.read_bytes() == theirs.read_bytes():
        return None
    if ours.suffix == ".json":
        a, b = (json.loads(p.read_text()) for p in (ours, theirs))
        diffs = json_differences(a, b)
        return "differs in " + ", ".join(".".join(map(str, d)) for d in diffs)
    return "bytes differ"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("uid", type=int)
    parser.add_argument("--same-as", type=Path, help="a copy where the venv ran the pipeline")
    args = parser.parse_args(argv)
    repo: Path = args.repo
    problems: list[str] = []

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    lock_path = repo / "dvc.lock"
    locked = yaml.safe_load(lock_path.read_text())["stages"] if lock_path.exists() else {}
    declared: list[str] = []
    for name, stage in stages.items():
        if name not in locked:
            problems.append(f"dvc.lock: stage {name!r} did not run")
        declared += stage_paths(stage)
    for rel in declared:
        if not (repo / rel).exists():
            problems.append(f"{rel}: declared in dvc.yaml but missing")
    print(f"stages run: {', '.join(locked)}")

    foreign = [p for p in [repo, *repo.rglob("*")] if p.lstat().st_uid != args.uid]
    for path in foreign[:10]:
        problems.append(f"{path.relative_to(repo)}: owned by uid {path.lstat().st_uid}")
    owned = "all files" if not foreign else f"{len(foreign)} files NOT"
    print(f"ownership: {owned} owned by uid {args.uid}")

    metrics_path = repo / "reports" / "metrics.json"
    if "reports/metrics.json" in declared or metrics_path.exists():
        accuracy = (
            find_accuracy(json.loads(metrics_path.read_text())) if metrics_path.exists() else None
        )
        if accuracy is None or not accuracy > CHANCE:
            problems.append(f"reports/metrics.json: accuracy {accuracy} is not above {CHANCE}")
        print(f"accuracy: {accuracy}")

    if args.same_as:
        compared = 0
        produced = {str(f.relative_to(repo)) for d in declared for f in files_under(repo / d)}
        for rel in sorted(r for r in produced if r.startswith(MUST_MATCH)):
            ours = repo / rel
            difference = compare(ours, args.same_as / rel)
            if difference is None:
                print(f"identical to the venv run: {rel} sha256 {sha256(ours)[:16]}")
            else:
                problems.append(f"{rel}: not the venv run's: {difference}")
            compared += 1
        if not compared:
            problems.append("nothing to compare with the venv run")

    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
