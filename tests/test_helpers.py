"""The repo-copy helpers the end-to-end tests rely on."""

import subprocess

import yaml

from support import copy_repo, repo_files, run, update_params


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


def test_update_params_sets_dotted_keys_and_keeps_the_rest(tmp_path):
    repo = copy_repo(tmp_path / "copy")
    before = yaml.safe_load((repo / "params.yaml").read_text())
    update_params(repo, {"download.retries": 7, "new.section.key": "x"})
    after = yaml.safe_load((repo / "params.yaml").read_text())
    assert after["download"]["retries"] == 7
    assert after["new"]["section"]["key"] == "x"
    assert after["download"]["files"] == before["download"]["files"]


def test_run_reports_output_of_a_failing_command(tmp_path):
    try:
        run(["python", "-c", "import sys; print('boom'); sys.exit(3)"], cwd=tmp_path)
    except AssertionError as exc:
        assert "exited 3" in str(exc) and "boom" in str(exc)
    else:
        raise AssertionError("run() did not raise on a failing command")
