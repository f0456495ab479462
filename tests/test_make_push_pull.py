"""`make push` / `make pull`: a clear message without a remote; plain dvc push/pull with one.

Network-free: the remote here is a local folder (the Azure remote is tested against Azurite
in test_storage_azurite.py, by `make test-storage`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.repo import VENV_BIN, copy_repo, run


def make(target: str, repo: Path, *args: str, check: bool = False):
    # Use this test run's venv as is: -o keeps make from re-installing it into the copy.
    venv = VENV_BIN.parent
    return run(
        ["make", "--no-print-directory", "-o", f"{venv}/.installed", target, f"VENV={venv}",
         *args],
        cwd=repo,
        check=check,
    )  # fmt: skip


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("make-remote") / "repo")


@pytest.mark.parametrize("target", ["push", "pull"])
def test_without_a_remote_says_how_to_add_one(repo: Path, target: str) -> None:
    proc = make(target, repo)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: no DVC remote configured: run 'dvc remote add -d storage "
        "azure://<container>/<prefix>' (docs/storage.md)"
    ], proc.stderr
    assert "dvc push" not in proc.stdout and "dvc pull" not in proc.stdout


def test_push_and_pull_use_the_default_or_the_named_remote(repo: Path, tmp_path: Path) -> None:
    (repo / "dvc.yaml").unlink()  # no pipeline outputs: this is about the make wiring only
    (repo / "data").mkdir(exist_ok=True)
    (repo / "data" / "extra.txt").write_text("shared through the remote\n")
    run(["dvc", "add", "data/extra.txt"], cwd=repo)
    run(["dvc", "remote", "add", "-d", "storage", str(tmp_path / "default")], cwd=repo)
    run(["dvc", "remote", "add", "other", str(tmp_path / "other")], cwd=repo)

    make("push", repo, check=True)
    assert len(list((tmp_path / "default").rglob("*"))) > 0
    assert not (tmp_path / "other").exists()
    make("push", repo, "DVC_REMOTE=other", check=True)
    assert (tmp_path / "other").exists()

    (repo / "data" / "extra.txt").unlink()
    run(["dvc", "cache", "dir", "--local", str(tmp_path / "empty-cache")], cwd=repo)
    make("pull", repo, "DVC_REMOTE=other", check=True)
    assert (repo / "data" / "extra.txt").read_text() == "shared through the remote\n"
