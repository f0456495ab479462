"""`dvc repro` of the download and decode stages in a throwaway copy of the repo."""

import json

import numpy as np
import pytest

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import copy_repo, run
from mnist_repro.decode import FILES, load_npz
from mnist_repro.idx import read_idx

pytestmark = pytest.mark.slow


@pytest.fixture
def synthetic(tmp_path):
    folder = tmp_path / "mirror"
    specs = write_fake_mnist(folder, n_train=120, n_test=40, seed=3)
    return folder, specs


def _repo_with_sources(tmp_path, sources, specs):
    repo = copy_repo(tmp_path / "repo")
    write_params(
        repo / "params.yaml",
        {
            "download.sources": sources,
            "download.files": specs,
            "download.retries": 2,
            "download.backoff": 0.01,
            "download.timeout": 5,
        },
    )
    return repo


def test_repro_downloads_verifies_and_decodes_then_does_nothing(tmp_path, http_mirror, synthetic):
    folder, specs = synthetic
    http_mirror.files = {name: (folder / name).read_bytes() for name in specs}
    # The first source fails (503 on every request); the pipeline falls back to the second.
    repo = _repo_with_sources(tmp_path, [http_mirror.url("503"), http_mirror.url("good")], specs)

    first = run(["dvc", "repro", "decode"], cwd=repo)
    assert "Running stage 'download'" in first.stdout
    assert "Running stage 'decode'" in first.stdout
    for name in specs:
        assert (repo / "data/raw" / name).read_bytes() == (folder / name).read_bytes()
    assert http_mirror.hits("good") == len(specs)

    arrays = load_npz(repo / "data/processed/mnist.npz")
    for key, name in FILES.items():
        np.testing.assert_array_equal(arrays[key], read_idx(folder / name))
    summary = json.loads((repo / "data/processed/summary.json").read_text())
    assert summary  # written, and valid JSON

    requests_before = len(http_mirror.requests)
    second = run(["dvc", "repro", "decode"], cwd=repo)
    assert "Running stage" not in second.stdout
    assert len(http_mirror.requests) == requests_before  # nothing fetched again
    status = run(["dvc", "status", "download", "decode"], cwd=repo)
    assert "up to date" in status.stdout


def test_repro_offline_through_a_local_folder_mirror(tmp_path, http_mirror, synthetic):
    folder, specs = synthetic
    # Every listed source is down; MNIST_MIRROR (a plain folder) is tried first and suffices.
    repo = _repo_with_sources(tmp_path, [http_mirror.url("503")], specs)
    run(["dvc", "repro", "decode"], cwd=repo, env={"MNIST_MIRROR": str(folder)})
    assert http_mirror.hits("503") == 0
    assert (repo / "data/processed/mnist.npz").is_file()


def test_repro_fails_with_one_clear_line_when_every_source_fails(tmp_path, http_mirror, synthetic):
    _, specs = synthetic
    repo = _repo_with_sources(tmp_path, [http_mirror.url("404")], specs)
    proc = run(["dvc", "repro", "decode"], cwd=repo, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "train-images-idx3-ubyte.gz" in errors[0] or "t10k" in errors[0]
    assert not list((repo / "data").rglob("*.gz"))
    assert not (repo / "data/processed/mnist.npz").exists()
