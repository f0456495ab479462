"""``make verify``: did this run reproduce the committed results?

Run after ``make repro``. Every output DVC tracks (the ``outs`` of each stage in dvc.lock) must
have the hash the committed dvc.lock (``git show HEAD:dvc.lock``) records, and the workspace
must match the current dvc.lock (``dvc status``). If so: one line, exit 0. If not: the outputs
that differ, the metric deltas against the committed metrics, and this host's fingerprint (CPU,
BLAS kernels, package versions) next to the one recorded with the committed results
(``reports/fingerprint.json``, written by the report stage); exit 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mnist_repro import blas, log, paths
from mnist_repro.errors import MnistReproError

LOCK = "dvc.lock"
PIPELINE = "dvc.yaml"
FINGERPRINT = (paths.REPORTS / paths.FINGERPRINT_FILE).as_posix()


def git_show(rev: str, path: str) -> str | None:
    """A file as committed at ``rev``, or None if it is not there (or this is no git checkout)."""
    proc = subprocess.run(
        ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def lock_outs(lock: Mapping[str, Any]) -> dict[str, str]:
    """``{output path: hash}`` for every stage's outs in a parsed dvc.lock."""
    outs = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            outs[out["path"]] = str(out.get("md5") or out.get("hash") or "")
    return outs


def differing_outs(committed: Mapping[str, str], here: Mapping[str, str]) -> list[str]:
    """One line per output whose hash is not the committed one (or that one side lacks)."""
    lines = []
    for path in sorted(set(committed) | set(here)):
        old, new = committed.get(path), here.get(path)
        if old == new:
            continue
        lines.append(
            f"  {path}: committed {(old or 'not tracked')[:12]}, here {(new or 'not tracked')[:12]}"
        )
    return lines


def dvc_status() -> dict[str, Any]:
    """``dvc status --json``: stages whose deps or outs do not match the current dvc.lock."""
    try:
        proc = subprocess.run(
            ["dvc", "status", "--json"], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise MnistReproError(f"cannot run dvc ({exc}); run `make verify`") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MnistReproError(f"dvc status failed (exit {proc.returncode}): {last}")
    text = proc.stdout.strip()
    return json.loads(text) if text else {}


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` for every scalar in a parsed JSON document, in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def metric_deltas(committed: Any, here: Any) -> list[str]:
    """One line per metric whose value differs: ``accuracy: 0.927 -> 0.9268 (-0.0002)``."""
    old, new = dict(leaves(committed)), dict(leaves(here))
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        delta = f" ({b - a:+.6g})" if numbers else ""
        lines.append(f"  {key}: {a} -> {b}{delta}")
    return lines


def metrics_files(pipeline: Mapping[str, Any]) -> list[str]:
    """The metrics files dvc.yaml declares."""
    files = []
    for stage in (pipeline.get("stages") or {}).values():
        for item in stage.get("metrics") or []:
            files.append(item if isinstance(item, str) else next(iter(item)))
    return files


def host_fingerprint(params: str) -> dict[str, Any]:
    """This host as the report records a run: CPU, BLAS kernels under the recipe, packages."""
    from mnist_repro.provenance import package_versions

    return {
        **blas.host(),
        "blas": blas.record(blas.kernel_setting(params)),
        "packages": package_versions(),
    }


def fingerprint_lines(committed: Any, here: Any) -> list[str]:
    """Both fingerprints side by side, one line per field, the differing ones marked."""
    old, new = dict(leaves(committed or {})), dict(leaves(here))
    keys = [*new, *(k for k in old if k not in new)]
    rows = [(k, str(old.get(k, "not recorded")), str(new.get(k, "not recorded"))) for k in keys]
    rows.insert(0, ("", "committed results", "this host"))
    kw, aw, bw = (max(len(row[i]) for row in rows) for i in range(3))
    return [
        (f"  {k:<{kw}}  {a:<{aw}}  {b:<{bw}}" + ("  <- differs" if i and a != b else "")).rstrip()
        for i, (k, a, b) in enumerate(rows)
    ]


def status_lines(status: Mapping[str, Any]) -> list[str]:
    """``dvc status --json`` as one line per stage: what changed, by kind."""
    lines = []
    for stage, entries in sorted(status.items()):
        parts = []
        for entry in entries:
            if not isinstance(entry, dict):
                parts.append(str(entry))
                continue
            for kind, changes in entry.items():
                if isinstance(changes, dict):
                    names = ", ".join(f"{path} ({state})" for path, state in changes.items())
                    parts.append(f"{kind}: {names}")
                else:
                    parts.append(f"{kind}: {changes}")
        lines.append(f"  {stage}: " + "; ".join(parts))
    return lines


def _load(text: str | None, parse, what: str) -> Any:
    if text is None:
        return None
    try:
        return parse(text)
    except (ValueError, yaml.YAMLError):
        raise MnistReproError(f"{what}: cannot be parsed") from None


def verify(rev: str = "HEAD", params: str = "params.yaml") -> tuple[bool, list[str]]:
    """Whether this workspace's outputs are the committed ones, and the lines that say so."""
    committed_lock = _load(git_show(rev, LOCK), yaml.safe_load, f"{rev}:{LOCK}")
    if committed_lock is None:
        raise MnistReproError(f"no {LOCK} committed at {rev} (run this in a git checkout)")
    if not Path(LOCK).is_file():
        raise MnistReproError(f"{LOCK}: not found (run `make repro` first)")
    here_lock = _load(Path(LOCK).read_text(encoding="utf-8"), yaml.safe_load, LOCK)
    committed, here = lock_outs(committed_lock), lock_outs(here_lock)
    differ = differing_outs(committed, here)
    status = dvc_status()
    short = subprocess.run(
        ["git", "rev-parse", "--short", rev], capture_output=True, text=True, check=False
    ).stdout.strip()
    against = f"the {LOCK} committed at {rev}" + (f" ({short})" if short else "")
    if not differ and not status:
        return True, [f"verify: OK, all {len(committed)} outputs DVC tracks match {against}"]

    lines = [f"verify: MISMATCH, the outputs DVC tracks do not all match {against}"]
    if differ:
        lines += [f"outputs that differ ({len(differ)} of {len(committed)}):", *differ]
    if status:
        lines.append(f"not what the workspace's {LOCK} records (dvc status; make repro first?):")
        lines += status_lines(status)
    pipeline = yaml.safe_load(Path(PIPELINE).read_text(encoding="utf-8")) or {}
    for path in metrics_files(pipeline):
        old = _load(git_show(rev, path), json.loads, f"{rev}:{path}")
        here_text = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else None
        deltas = metric_deltas(old or {}, _load(here_text, json.loads, path) or {})
        lines.append(f"metric deltas in {path} (committed -> here):")
        lines += deltas or ["  none"]
    recorded = _load(git_show(rev, FINGERPRINT), json.loads, f"{rev}:{FINGERPRINT}")
    lines.append(
        f"host fingerprint ({FINGERPRINT} at {rev} against this host)"
        + ("" if recorded else f": none committed at {rev}")
    )
    lines += fingerprint_lines(recorded, host_fingerprint(params))
    return False, lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rev", default="HEAD", help="commit with the results (default: HEAD)")


def run(args: argparse.Namespace) -> int:
    ok, lines = verify(args.rev, args.params)
    log.result("\n".join(lines))
    return 0 if ok else 1
