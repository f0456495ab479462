"""Content hashes that name versions: same bytes, same name; any change, a new one.

One definition, two users: the Docker image tag (``make docker-build``) and the Azure ML
environment and data-asset versions. :func:`tree_hash` equals the shell pipeline

    cd FOLDER && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \\
        | sha256sum | cut -c1-12

so the Makefile may use either. ``python -m mnist_repro.content_hash FOLDER`` prints it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mnist_repro import log
from mnist_repro.errors import MnistReproError
from mnist_repro.provenance import sha256_file

LENGTH = 12  # hex digits kept: a valid Docker tag and Azure ML asset version


def listing_hash(listing: Mapping[str, str], length: int = LENGTH) -> str:
    """Hash of ``{relative posix path: sha256 of the file}``, as ``sha256sum`` lists them."""
    lines = sorted((f"./{rel}".encode(), digest) for rel, digest in listing.items())
    text = b"".join(f"{digest}  ".encode() + path + b"\n" for path, digest in lines)
    return hashlib.sha256(text).hexdigest()[:length]


def tree_listing(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every regular file under ``folder`` (no symlinks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MnistReproError(f"{folder}: not a folder")
    listing = {}
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                listing[path.relative_to(folder).as_posix()] = sha256_file(path)
    return listing


def tree_hash(folder: str | os.PathLike[str], length: int = LENGTH) -> str:
    """Content hash of a folder: names and bytes of its files, nothing else (no times, modes)."""
    return listing_hash(tree_listing(folder), length)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        log.error("usage: python -m mnist_repro.content_hash FOLDER")
        return 2
    try:
        log.result(tree_hash(args[0]))
    except MnistReproError as exc:
        log.error(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
