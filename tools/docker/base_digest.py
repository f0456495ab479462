"""`make docker-base-digest`: pin docker/Dockerfile's `ARG BASE=` to the digest its tag has now.

Usage: python tools/docker/base_digest.py [DOCKERFILE]   (default: docker/Dockerfile)

Resolves the tag of `ARG BASE=<name>:<tag>[@sha256:...]` to its multi-arch *index* digest (one
pin serves amd64 Azure nodes and arm64 laptops) with the first of these that is installed:
`crane digest`, `skopeo inspect --raw` (sha256 of the index bytes), `docker buildx imagetools
inspect`. Then rewrites the line as `ARG BASE=<name>:<tag>@sha256:<digest>` (the tag stays for
the reader; the digest is what is pulled) and prints it. It needs a registry that answers; the
environment version (content hash of docker/) changes with the pin, so Azure ML rebuilds once.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_ARG = re.compile(r"^ARG BASE=(\S*)\s*$", re.MULTILINE)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _crane(ref: str) -> str:
    cmd = ["crane", "digest", ref]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def _skopeo(ref: str) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"docker://{ref}"], capture_output=True, check=True
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _docker(ref: str) -> str:
    fmt = "{{json .Manifest.Digest}}"
    cmd = ["docker", "buildx", "imagetools", "inspect", ref, "--format", fmt]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


RESOLVERS = {"crane": _crane, "skopeo": _skopeo, "docker": _docker}


def resolve(ref: str) -> str:
    """The index digest of ``ref`` (``sha256:<64 hex>``) from the first tool that answers."""
    tried = []
    for tool, resolver in RESOLVERS.items():
        if not shutil.which(tool):
            continue
        try:
            found = DIGEST.search(resolver(ref))
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            tried.append(f"{tool}: {' '.join(err.split())[:200] or f'exit {exc.returncode}'}")
            continue
        if found:
            return found.group(0)
        tried.append(f"{tool}: no digest in its answer")
    if not tried:
        raise SystemExit("error: none of crane, skopeo, docker is installed: cannot resolve " + ref)
    raise SystemExit(f"error: could not resolve {ref}: " + "; ".join(tried))


def main(argv: list[str]) -> int:
    dockerfile = Path(argv[0]) if argv else REPO / "docker" / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    found = BASE_ARG.search(text)
    if not found or not found.group(1):
        print(f"error: {dockerfile}: no `ARG BASE=<image>` line", file=sys.stderr)
        return 1
    tagged = found.group(1).split("@", 1)[0]
    digest = resolve(tagged)
    line = f"ARG BASE={tagged}@{digest}"
    dockerfile.write_text(text[: found.start()] + line + text[found.end() :], encoding="utf-8")
    print(f"{dockerfile}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
