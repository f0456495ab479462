"""`make verify`'s parts: outputs against the committed dvc.lock, metric deltas, fingerprints.

The whole command runs end to end in tests/test_pipeline_model.py (a match, then a mismatch).
"""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from helpers.params import write_params
from helpers.repo import GIT_IDENTITY
from mnist_repro import cli, verify

LOCK = {
    "schema": "2.0",
    "stages": {
        "download": {"outs": [{"path": "data/raw", "md5": "aa.dir"}]},
        "train": {
            "deps": [{"path": "src/x.py", "md5": "00"}],
            "outs": [
                {"path": "models/model.json", "md5": "b1"},
                {"path": "models/model.skops", "md5": "c1"},
            ],
        },
    },
}


def test_outputs_are_read_from_every_stage_of_the_lock():
    assert verify.lock_outs(LOCK) == {
        "data/raw": "aa.dir",
        "models/model.json": "b1",
        "models/model.skops": "c1",
    }


def test_only_differing_or_missing_outputs_are_listed():
    committed = verify.lock_outs(LOCK)
    here = {**committed, "models/model.skops": "c2", "reports/new.json": "d1"}
    del here["models/model.json"]
    assert verify.differing_outs(committed, committed) == []
    assert verify.differing_outs(committed, here) == [
        "  models/model.json: committed b1, here not tracked",
        "  models/model.skops: committed c1, here c2",
        "  reports/new.json: committed not tracked, here d1",
    ]


def test_metric_deltas_name_each_changed_value():
    old = {"accuracy": 0.927, "per_class": {"3": {"f1": 0.91}}, "preset": "fast", "n": 10}
    new = {"accuracy": 0.9268, "per_class": {"3": {"f1": 0.91}}, "preset": "tutorial", "n": 10}
    assert verify.metric_deltas(old, new) == [
        "  accuracy: 0.927 -> 0.9268 (-0.0002)",
        "  preset: fast -> tutorial",
    ]
    assert verify.metric_deltas(old, old) == []


def test_fingerprints_side_by_side_with_the_differences_marked():
    committed = {"cpu": "A", "blas": {"kernel": "haswell", "openblas": {"numpy": "Haswell"}}}
    here = {"cpu": "B", "blas": {"kernel": "haswell", "openblas": {"numpy": "SkylakeX"}}}
    lines = verify.fingerprint_lines(committed, here)
    assert lines[0].split() == ["committed", "results", "this", "host"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["cpu"].split() == ["cpu", "A", "B", "<-", "differs"]
    assert "differs" not in rows["blas.kernel"]
    assert rows["blas.openblas.numpy"].split()[1:3] == ["Haswell", "SkylakeX"]
    assert "not recorded" in verify.fingerprint_lines(None, here)[1]


def test_dvc_status_one_line_per_stage():
    status = {
        "train": [
            {"changed deps": {"params.yaml": {"blas": "new"}, "src/x.py": "modified"}},
            {"changed outs": {"models/model.skops": "not in cache"}},
        ]
    }
    [line] = verify.status_lines(status)
    assert line.startswith("  train: changed deps: params.yaml ({'blas': 'new'}), src/x.py")
    assert line.endswith("; changed outs: models/model.skops (not in cache)")


def test_outside_git_it_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml")  # the repository's, as a checkout has
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    assert cli.main(["verify"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dvc.lock committed at HEAD" in err[0]


def test_committed_files_come_from_git_not_the_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, **GIT_IDENTITY}
    subprocess.run(["git", "init", "-q"], check=True)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/fingerprint.json").write_text(json.dumps({"cpu": "committed"}))
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "results"], check=True, env=env)
    (tmp_path / "reports/fingerprint.json").write_text(json.dumps({"cpu": "workspace"}))
    assert json.loads(verify.git_show("HEAD", verify.FINGERPRINT)) == {"cpu": "committed"}
    assert verify.git_show("HEAD", "dvc.lock") is None
