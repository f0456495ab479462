"""The shared test helpers: the repo copy, the params writer, the fake dataset."""

import subprocess
from pathlib import Path

import yaml

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import REPO_ROOT, copy_repo, repo_files, run
from mnist_repro import params
from mnist_repro.decode import FILES, load_raw


def test_copy_repo_is_a_committed_git_repo_without_venv(tmp_path):
    repo = copy_repo(tmp_path / "copy")
    assert (repo / "dvc.yaml").is_file()
    assert (repo / ".dvc" / "config").is_file()
    assert not (repo / ".venv").exists()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert status == ""
    assert all(".venv" not in p.parts for p in repo_files())


def test_write_params_sets_dotted_keys_and_keeps_the_rest(tmp_path):
    repo = copy_repo(tmp_path / "copy")
    before = yaml.safe_load((repo / "params.yaml").read_text())
    write_params(repo / "params.yaml", {"download.retries": 7, "new.section.key": "x"})
    after = yaml.safe_load((repo / "params.yaml").read_text())
    assert after["download"]["retries"] == 7
    assert after["new"]["section"]["key"] == "x"
    assert after["download"]["files"] == before["download"]["files"]


def test_write_params_starts_from_the_repo_params(tmp_path):
    path = write_params(tmp_path / "sub" / "params.yaml", {"train.seed": 3})
    ours, repo = params.load_file(path), params.load_file(REPO_ROOT / "params.yaml")
    assert ours["train"] == repo["train"] | {"seed": 3}
    assert {k: v for k, v in ours.items() if k != "train"} == {
        k: v for k, v in repo.items() if k != "train"
    }


def test_run_reports_output_of_a_failing_command(tmp_path):
    try:
        run(["python", "-c", "import sys; print('boom'); sys.exit(3)"], cwd=tmp_path)
    except AssertionError as exc:
        assert "exited 3" in str(exc) and "boom" in str(exc)
    else:
        raise AssertionError("run() did not raise on a failing command")


# --- the fake dataset ---------------------------------------------------------------------------


def test_fake_files_are_reproducible(tmp_path: Path) -> None:
    a = write_fake_mnist(tmp_path / "a", n_train=50, n_test=20, seed=3)
    b = write_fake_mnist(tmp_path / "b", n_train=50, n_test=20, seed=3)
    c = write_fake_mnist(tmp_path / "c", n_train=50, n_test=20, seed=4)
    assert a == b and sorted(a) == sorted(FILES.values())
    assert a[FILES["train_images"]]["sha256"] != c[FILES["train_images"]]["sha256"]
    for name, meta in a.items():
        assert (tmp_path / "a" / name).stat().st_size == meta["size"]


def test_fake_data_is_learnable_but_not_trivial(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    write_fake_mnist(tmp_path)  # the default sizes other tests use: 600 train, 200 test
    arrays = load_raw(tmp_path)
    x_train = arrays["train_images"].reshape(600, -1) / 255.0
    x_test = arrays["test_images"].reshape(200, -1) / 255.0
    model = LogisticRegression(C=0.01, max_iter=300).fit(x_train, arrays["train_labels"])
    accuracy = model.score(x_test, arrays["test_labels"])
    assert 0.6 < accuracy < 0.99  # chance is 0.1; a perfect score would test nothing
