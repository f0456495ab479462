"""What a run records about itself: data hashes, git commit, package versions."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from mnist_repro import __version__

PACKAGES = ("mnist-repro", "numpy", "scipy", "scikit-learn", "skops", "matplotlib", "dvc")


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _git(args: list[str], cwd: str | os.PathLike[str]) -> str | None:
    """Output of a git command, or None outside a checkout (or without git)."""
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit(cwd: str | os.PathLike[str] = ".", paths: Sequence[str] = ()) -> str:
    """The checked-out commit (the last one touching ``paths``, if given); ``unknown`` outside git.

    ``MNIST_REPRO_GIT_COMMIT`` overrides it, for places without a ``.git`` folder
    (a container or an Azure ML job that received only the source).
    """
    if env := os.environ.get("MNIST_REPRO_GIT_COMMIT"):
        return env
    args = ["log", "-1", "--format=%H", "--", *paths] if paths else ["rev-parse", "HEAD"]
    return _git(args, cwd) or "unknown"


def git_dirty(cwd: str | os.PathLike[str] = ".", paths: Sequence[str] = ()) -> bool | None:
    """Whether tracked files (under ``paths``, if given) differ from HEAD; None outside git."""
    out = _git(["status", "--porcelain", "--untracked-files=no", "--", *paths], cwd)
    return None if out is None else bool(out)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide the results, plus Python's.

    Python is recorded as ``major.minor``: a patch release does not change the numbers, and
    the venv, the image and the Azure ML job may run different ones (3.11.7 here, Debian's
    3.11.2, python:3.11-slim's latest), which would otherwise make model.json differ.
    The full version goes into the run record (:func:`python_version`).

    This project's own version comes from the source that runs (``mnist_repro.__version__``):
    the Docker image and the Azure ML job run it from ``src/`` without installing it.
    """
    versions = {"python": ".".join(platform.python_version_tuple()[:2])}
    for name in names:
        if name == "mnist-repro":
            versions[name] = __version__
            continue
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def python_version() -> str:
    """The interpreter's full version and build, for run records."""
    return f"{platform.python_version()} ({platform.python_implementation()})"


def file_hashes(paths: list[Path]) -> dict[str, str]:
    """``{file name: sha256}`` for the given files, sorted by name."""
    return {p.name: sha256_file(p) for p in sorted(paths, key=lambda p: p.name)}
