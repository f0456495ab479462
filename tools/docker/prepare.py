"""Set up a throwaway repo copy and a synthetic MNIST mirror for `make test-docker`.

Usage: python tools/docker/prepare.py REPO_COPY MIRROR

Writes the four synthetic idx .gz files into MIRROR, copies this repository into REPO_COPY (a
git repo with one commit, see tests/helpers/repo.py) and points its params.yaml at the synthetic
files' hashes, so that `dvc repro` in the copy downloads them from MIRROR and verifies them.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The tests' helpers: the synthetic MNIST files and the throwaway repo copy.
TESTS = Path(__file__).resolve().parents[2] / "tests"
sys.path.insert(0, str(TESTS))

from helpers.dataset import write_fake_mnist  # noqa: E402
from helpers.params import write_params  # noqa: E402
from helpers.repo import copy_repo, run  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    repo, mirror = (Path(arg) for arg in argv)
    mirror.mkdir(parents=True, exist_ok=True)
    files = write_fake_mnist(mirror)
    copy_repo(repo)
    write_params(repo / "params.yaml", {"download.files": files})
    run(["git", "commit", "-q", "-am", "synthetic MNIST hashes"], cwd=repo)
    print(f"repo copy {repo}, synthetic mirror {mirror} ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
