"""tools/docker/base_digest.py (`make docker-base-digest`), with a stand-in `crane` on PATH."""

from __future__ import annotations

import os
from pathlib import Path

from helpers.repo import REPO_ROOT, run

SCRIPT = REPO_ROOT / "tools" / "docker" / "base_digest.py"
DIGEST = "sha256:" + "3c" * 32


def _tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)


def _dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text((REPO_ROOT / "docker" / "Dockerfile").read_text())
    return path


def test_pins_the_tag_to_the_digest_crane_resolves(tmp_path):
    import sys

    dockerfile = _dockerfile(tmp_path)
    _tool(tmp_path / "bin", "crane", f'echo "$@" > "{tmp_path}/args"; echo {DIGEST}')
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin"}
    proc = run([sys.executable, SCRIPT, dockerfile], cwd=tmp_path, env=env)
    tag = "mcr.microsoft.com/mirror/docker/library/python:3.11-slim"
    assert (tmp_path / "args").read_text().split() == ["digest", tag]
    assert proc.stdout.strip() == f"{dockerfile}: ARG BASE={tag}@{DIGEST}"
    assert f"\nARG BASE={tag}@{DIGEST}\nFROM ${{BASE}}\n" in dockerfile.read_text()
    # again: the tag is resolved anew and the pin replaced, not appended
    run([sys.executable, SCRIPT, dockerfile], cwd=tmp_path, env=env)
    assert dockerfile.read_text().count(f"@{DIGEST}") == 1


def test_without_a_tool_or_a_registry_nothing_is_written(tmp_path):
    import sys

    dockerfile = _dockerfile(tmp_path)
    before = dockerfile.read_text()
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}/nonexistent"}
    (tmp_path / "bin").mkdir()
    proc = run([sys.executable, SCRIPT, dockerfile], cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1 and "none of crane, skopeo, docker is installed" in proc.stderr
    _tool(tmp_path / "bin", "skopeo", 'echo "connection refused" >&2; exit 1')
    proc = run([sys.executable, SCRIPT, dockerfile], cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1 and "skopeo: connection refused" in proc.stderr
    assert dockerfile.read_text() == before
