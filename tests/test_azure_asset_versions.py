"""Content hashes name the environment and data versions (and the Docker tag)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers.dataset import write_fake_mnist
from mnist_repro.azure import entities
from mnist_repro.content_hash import listing_hash, tree_hash, tree_listing
from mnist_repro.errors import MnistReproError
from mnist_repro.provenance import sha256_file


def _tree(root):
    (root / "sub dir").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM x\n")
    (root / "requirements.lock").write_text("numpy==2\n")
    (root / "sub dir" / "a b.txt").write_bytes(b"\x00\x01")
    (root / ".dockerignore").write_text("*\n")
    return root


def test_tree_hash_equals_the_shell_pipeline(tmp_path):
    root = _tree(tmp_path / "ctx")
    shell = subprocess.run(
        "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12",
        shell=True,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert tree_hash(root) == shell


def test_unchanged_content_same_hash_changed_content_new_hash(tmp_path):
    root = _tree(tmp_path / "ctx")
    first = tree_hash(root)
    os.utime(root / "Dockerfile", (1, 1))  # times do not count
    assert tree_hash(root) == first
    (root / "Dockerfile").write_text("FROM y\n")
    changed = tree_hash(root)
    assert changed != first
    (root / "Dockerfile").write_text("FROM x\n")
    assert tree_hash(root) == first
    (root / "Dockerfile").rename(root / "Dockerfile2")  # names count
    assert tree_hash(root) not in (first, changed)


def test_environment_version_is_the_docker_folder_hash(tmp_path):
    root = _tree(tmp_path / "docker")
    env = entities.build_environment("mnist-repro", root, tree_hash(root))
    assert env.version == tree_hash(root)
    assert env.build.path == str(root) and env.build.dockerfile_path == "Dockerfile"
    (root / "requirements.lock").write_text("numpy==3\n")
    assert entities.build_environment("mnist-repro", root, tree_hash(root)).version != env.version


def test_data_version_is_the_files_hash_and_matches_the_pinned_hashes(tmp_path):
    raw = tmp_path / "raw"
    files = write_fake_mnist(raw, n_train=30, n_test=10)
    listing = entities.data_listing(raw, files, need_files=True)
    assert listing == tree_listing(raw)
    # a dry run on a fresh clone (no data yet) gives the same version from params' hashes
    assert entities.data_version(entities.data_listing(tmp_path / "none", files, False)) == (
        entities.data_version(listing)
    )
    assert listing_hash({n: sha256_file(raw / n) for n in files}) == entities.data_version(listing)


def test_data_must_be_the_verified_files(tmp_path):
    raw = tmp_path / "raw"
    files = write_fake_mnist(raw, n_train=30, n_test=10)
    name = next(iter(files))
    with pytest.raises(MnistReproError, match="run `dvc repro download` first"):
        entities.data_listing(tmp_path / "none", files, need_files=True)
    (raw / "notes.txt").write_text("x")
    with pytest.raises(MnistReproError, match=r"notes\.txt: not one of"):
        entities.data_listing(raw, files, need_files=True)
    (raw / "notes.txt").unlink()
    (raw / name).write_bytes((raw / name).read_bytes() + b"\x00")
    with pytest.raises(MnistReproError, match=f"{name}: SHA-256 differs"):
        entities.data_listing(raw, files, need_files=True)
    (raw / name).unlink()
    with pytest.raises(MnistReproError, match=f"{name}: missing"):
        entities.data_listing(raw, files, need_files=True)


def test_content_hash_cli(tmp_path, capsys):
    from mnist_repro.content_hash import main

    root = _tree(tmp_path / "ctx")
    assert main([str(root)]) == 0
    assert capsys.readouterr().out.strip() == tree_hash(root)
    assert main([str(tmp_path / "missing")]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_makefile_docker_tag_is_the_environment_version():
    """`make docker-build` tags the image with the same hash that versions the Azure ML env."""
    root = Path(__file__).resolve().parents[1]
    tag = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            "print-docker-tag: ; @echo $(DOCKER_TAG)",
            "print-docker-tag",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert tag == tree_hash(root / "docker")
    assert len(tag) == 12
