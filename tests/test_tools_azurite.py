"""tools/azurite.py without starting Azurite: pinning, cache folder, the storage tests' skip reason.

These run in `make test` (no network, no Node.js needed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import azurite
from helpers.repo import REPO_ROOT


def test_azurite_is_pinned_exactly_with_an_integrity_hash_for_every_package() -> None:
    package = json.loads((azurite.NPM_DIR / "package.json").read_text())
    lock = json.loads((azurite.NPM_DIR / "package-lock.json").read_text())
    assert package["dependencies"] == {"azurite": azurite.pinned_version()}
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    packages = {name: meta for name, meta in lock["packages"].items() if name}
    assert len(packages) > 100
    unpinned = [n for n, meta in packages.items() if not meta["integrity"].startswith("sha512-")]
    assert unpinned == []


def test_installs_into_a_cache_folder_outside_the_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MNIST_REPRO_AZURITE_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert azurite.cache_dir() == tmp_path / "xdg" / "mnist-repro" / "azurite"
    monkeypatch.setenv("MNIST_REPRO_AZURITE_HOME", str(tmp_path / "mine"))
    target = azurite.install_dir()
    assert target.parent == tmp_path / "mine"
    assert target.name.startswith(f"azurite-{azurite.pinned_version()}-")
    assert REPO_ROOT not in target.parents
    assert not azurite.is_installed()


def test_missing_node_or_npm_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert azurite.missing_tools() == (
        "node and npm not found on PATH: install Node.js 20+ to run Azurite"
    )
    node = tmp_path / "node"
    node.write_text("#!/bin/sh\n")
    node.chmod(0o755)
    assert azurite.missing_tools().startswith("npm not found on PATH")
    with pytest.raises(RuntimeError, match="npm not found"):
        azurite.ensure_installed()


def test_storage_tests_skip_with_the_reason_when_node_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PATH"] = str(tmp_path)  # no node, no npm (nor anything else)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "azurite", "-p", "no:cacheprovider",
         "tests/test_storage_azurite.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 skipped" in proc.stdout, proc.stdout
    assert proc.stdout.count("Azurite needs Node.js: node and npm not found on PATH") == 3
