"""No tracked file names an absolute path of the machine it was written on.

The folder that holds this checkout (and the user's home) are machine-specific: a README,
Makefile, test or doc that names them works only there. Lock files are left out: they are
generated, not written.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from helpers.repo import REPO_ROOT, repo_files

LOCK_FILES = ("*.lock", "package-lock.json")
# Folders of every machine (an image's Dockerfile may name them): never machine-specific.
SYSTEM_FOLDERS = {"/", "/home", "/mnt", "/opt", "/srv", "/tmp", "/usr", "/var", "/var/tmp"}
SYSTEM_FOLDERS.add(tempfile.gettempdir())


def machine_paths(root: Path, home: Path) -> list[str]:
    """The absolute folders no tracked file may name, each ending in "/".

    The checkout's parent, or the checkout itself when its parent is a system folder ("/",
    "/tmp", "/home", ...: an image's Dockerfile may name those), and the home folder.
    """
    parent = root if str(root.parent) in SYSTEM_FOLDERS else root.parent
    return sorted({f"{folder}/" for folder in (parent, home) if str(folder) not in SYSTEM_FOLDERS})


def files_naming(root: Path, needles: list[str]) -> list[str]:
    found = []
    for rel in repo_files(root):
        if any(rel.match(glob) for glob in LOCK_FILES):
            continue
        data = (root / rel).read_bytes()
        found += [f"{rel}: {needle}" for needle in needles if needle.encode() in data]
    return found


def test_no_tracked_file_names_the_folder_this_checkout_is_in() -> None:
    needles = machine_paths(REPO_ROOT, Path.home())
    assert needles, "no machine-specific folder to look for"
    assert files_naming(REPO_ROOT, needles) == []


def test_the_check_finds_a_file_that_names_the_checkout_s_parent(tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "README.md").write_text(f"MNIST_MIRROR={tmp_path}/mnist make bench\n")
    (repo / "notes.md").write_text("MNIST_MIRROR=data/raw make bench\n")
    (repo / "requirements.lock").write_text(f"# compiled in {tmp_path}/checkout\n")
    needles = machine_paths(repo, Path("/"))
    assert needles == [f"{tmp_path}/"]
    assert files_naming(repo, needles) == [f"README.md: {tmp_path}/"]


def test_system_folders_are_never_needles_the_checkout_is_then() -> None:
    assert machine_paths(Path("/repo"), Path("/")) == ["/repo/"]
    assert machine_paths(Path("/tmp/repo"), Path("/home")) == ["/tmp/repo/"]
    assert machine_paths(Path("/a/b/repo"), Path("/home/me")) == ["/a/b/", "/home/me/"]
