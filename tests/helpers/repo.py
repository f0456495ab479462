"""Run the real pipeline in a throwaway copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "mnist-repro tests",
    "GIT_AUTHOR_EMAIL": "tests@mnist-repro.invalid",
    "GIT_COMMITTER_NAME": "mnist-repro tests",
    "GIT_COMMITTER_EMAIL": "tests@mnist-repro.invalid",
}


def stage_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a stage sees: this interpreter's bin first, no analytics, no display."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(GIT_IDENTITY)
    env.update({"DVC_NO_ANALYTICS": "1", "MPLBACKEND": "Agg", "CI": "true"})
    env.pop("MNIST_MIRROR", None)
    env.update(extra or {})
    return env


def run(
    cmd: Sequence[str | os.PathLike[str]],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in ``cwd`` with :func:`stage_env` plus ``env``; on failure show its output."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=stage_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def repo_files(root: Path = REPO_ROOT) -> list[Path]:
    """Files git tracks plus untracked files it does not ignore (what a commit would hold)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    names = sorted({name for name in out.decode().split("\0") if name})
    return [Path(name) for name in names if (root / name).is_file()]


def copy_repo(dest: str | os.PathLike[str], root: Path = REPO_ROOT) -> Path:
    """Copy the working tree's files into ``dest`` and make it a git repo with one commit.

    The copy has the repo's ``.dvc/config`` but an empty DVC cache, no ``.venv``, no data.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in repo_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    run(["git", "init", "-q", "-b", "main"], cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    run(["git", "commit", "-q", "-m", "copy of mnist-repro for a test"], cwd=dest)
    return dest


def pinned_kernel_runs_here() -> bool:
    """Whether this CPU runs the BLAS kernel the repository's params.yaml pins."""
    import platform

    from mnist_repro import blas

    kernel = blas.kernel_setting(REPO_ROOT / "params.yaml")
    return (
        kernel == blas.NATIVE
        or blas.unsupported(kernel, blas.cpu_flags(), platform.machine()) is None
    )


def repo_with_fake_data(tmp_path: Path, n_train: int, n_test: int, seed: int) -> tuple[Path, Path]:
    """A committed copy of the repository whose params pin fake MNIST served from a mirror folder.

    Returns ``(repo, mirror)``; run the pipeline with ``MNIST_MIRROR=<mirror>``. One download
    attempt and at most 50 solver iterations keep it quick.
    """
    from helpers.dataset import write_fake_mnist
    from helpers.params import write_params

    mirror = tmp_path / "mirror"
    specs = write_fake_mnist(mirror, n_train=n_train, n_test=n_test, seed=seed)
    repo = copy_repo(tmp_path / "repo")
    updates = {"download.files": specs, "download.retries": 1, "train.max_iter": 50}
    write_params(repo / "params.yaml", updates)
    run(["git", "commit", "-qam", "fake data"], cwd=repo)
    return repo, mirror
