"""The report stage: every figure inline, the metrics table, what ran, stable bytes."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import run
from mnist_repro import cli, paths, report


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """decode, train and evaluate on the 28x28 digits; returns (root, params)."""
    root = tmp_path_factory.mktemp("report")
    raw = root / "raw"
    write_fake_mnist(raw)
    params = write_params(root / "params.yaml", {"report.tutorial_accuracy": 0.9204})
    p = ["--params", str(params)]
    assert cli.main(["decode", "--raw", str(raw), "--out", str(root / "processed")]) == 0
    assert cli.main(["train", *p, "--data", str(raw), "--out", str(root / "models")]) == 0
    npz = str(root / "processed/mnist.npz")
    out = ["--model", str(root / "models"), "--out", str(root / "reports")]
    assert cli.main(["evaluate", *p, "--data", npz, *out]) == 0
    return root, params


def _report(root, params, reports=None):
    reports = reports or root / "reports"
    return cli.main(
        [
            "report",
            "--params",
            str(params),
            "--model",
            str(root / "models"),
            "--reports",
            str(reports),
        ]
    )


def test_report_has_every_figure_the_metrics_and_what_ran(pipeline):
    root, params = pipeline
    assert _report(root, params) == 0
    text = (root / "reports/README.md").read_text()
    metrics = json.loads((root / "reports/metrics.json").read_text())
    meta = json.loads((root / "models/model.json").read_text())

    # Every figure the evaluate stage draws, linked relative to the report, and present.
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(linked) == sorted(paths.FIGURE_FILES.values())
    for rel in linked:
        assert (root / "reports" / rel).is_file()

    assert "| metric | value |" in text
    assert f"| accuracy (test) | {metrics['accuracy']:.4f} |" in text
    assert f"| macro F1 | {metrics['macro_f1']:.4f} |" in text
    assert "| tutorial's published accuracy | 0.9204 |" in text
    for digit in range(10):
        assert re.search(
            rf"^\| {digit} \| \d\.\d{{4}} \| \d\.\d{{4}} \| \d\.\d{{4}} \| \d+ \|$", text, re.M
        )
    assert "`fast`" in text
    for name, digest in meta["data"].items():
        assert f"| {name} | `{digest}` |" in text
    assert re.search(r"\| code \| `([0-9a-f]{40}|unknown)", text)
    assert f"| scikit-learn | {meta['packages']['scikit-learn']} |" in text


def test_comparison_with_the_tutorial_says_above_or_below(pipeline, tmp_path):
    root, _ = pipeline
    accuracy = json.loads((root / "reports/metrics.json").read_text())["accuracy"]
    for published, word in ((accuracy - 0.01, "above"), (accuracy + 0.01, "below")):
        params = write_params(tmp_path / word / "p.yaml", {"report.tutorial_accuracy": published})
        reports = tmp_path / word / "reports"
        shutil.copytree(root / "reports", reports)
        assert _report(root, params, reports) == 0
        assert f"1.00 percentage points {word}" in (reports / "README.md").read_text()


def test_report_is_byte_stable(pipeline, monkeypatch):
    root, params = pipeline
    monkeypatch.setenv("MNIST_REPRO_GIT_COMMIT", "0" * 40)
    assert _report(root, params) == 0
    first = (root / "reports/README.md").read_bytes()
    assert _report(root, params) == 0
    assert (root / "reports/README.md").read_bytes() == first
    assert b"0" * 40 in first


def test_missing_figure_is_one_line(pipeline, tmp_path, capsys):
    root, params = pipeline
    reports = tmp_path / "reports"
    shutil.copytree(root / "reports", reports)
    (reports / paths.FIGURE_FILES["mistakes"]).unlink()
    (reports / "README.md").unlink(missing_ok=True)
    assert _report(root, params, reports) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mistakes.png: not found" in err[0]
    assert not (reports / "README.md").exists()


def test_bad_report_params(tmp_path, capsys):
    params = write_params(tmp_path / "p.yaml", {"report.tutorial_accuracy": 92.04})
    assert _report(tmp_path, params) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "report.tutorial_accuracy" in err[0]


def test_code_commit_names_the_last_code_change_not_head(tmp_path, monkeypatch):
    """Committing results after a run must not change the report (dvc.lock stays the same)."""
    monkeypatch.delenv("MNIST_REPRO_GIT_COMMIT", raising=False)
    run(["git", "init", "-q", "-b", "main"], cwd=tmp_path)
    (tmp_path / "params.yaml").write_text("train: {}\n")
    run(["git", "add", "-A"], cwd=tmp_path)
    run(["git", "commit", "-qm", "code"], cwd=tmp_path)
    code = run(["git", "rev-parse", "HEAD"], cwd=tmp_path).stdout.strip()
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/README.md").write_text("results\n")
    run(["git", "add", "-A"], cwd=tmp_path)
    run(["git", "commit", "-qm", "results"], cwd=tmp_path)
    assert report.code_commit(tmp_path) == code
    (tmp_path / "params.yaml").write_text("train: {regularization: 0.8}\n")
    assert report.code_commit(tmp_path) == f"{code} + uncommitted changes"
