"""The report stage: every figure inline, the metrics table, what ran, stable bytes."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import run
from mnist_repro import cli, paths


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
    tutorial = ["--section", "train_tutorial", "--data", str(raw), "--out", str(root / "tut")]
    assert cli.main(["train", *p, *tutorial]) == 0
    npz = str(root / "processed/mnist.npz")
    out = ["--model", str(root / "models"), "--out", str(root / "reports")]
    assert cli.main(["evaluate", *p, "--data", npz, *out, "--baseline", str(root / "tut")]) == 0
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

    assert "| metric | value | 95% interval |" in text
    ci = metrics["accuracy_ci"]
    assert (
        f"| accuracy (test) | {metrics['accuracy']:.4f} | {ci['low']:.4f} to {ci['high']:.4f} |"
        in text
    )
    assert f"| macro F1 | {metrics['macro_f1']:.4f} | " in text
    assert "| tutorial's published accuracy | 0.9204 | |" in text
    for digit in range(10):
        assert re.search(
            rf"^\| {digit} \| \d\.\d{{4}} \| \d\.\d{{4}} \(\d\.\d{{3}} to \d\.\d{{3}}\) "
            rf"\| \d\.\d{{4}} \| \d+ \|$",
            text,
            re.M,
        )
    # One plain sentence per interval.
    for what in ("**Accuracy** (Wilson", "**Macro F1** (bootstrap)", "**Log loss** (t interval)"):
        assert what in text
    assert "`fast`" in text
    for name, digest in meta["data"].items():
        assert f"| {name} | `{digest}` |" in text
    assert f"| code | mnist-repro {meta['packages']['mnist-repro']};" in text
    assert f"| scikit-learn | {meta['packages']['scikit-learn']} |" in text


def test_paired_comparison_with_the_tutorial_preset(pipeline, tmp_path):
    root, params = pipeline
    assert _report(root, params) == 0
    text = (root / "reports/README.md").read_text()
    base = json.loads((root / "reports/metrics.json").read_text())["tutorial_preset"]
    paired = base["paired"]
    assert "## Comparison with the tutorial preset (paired, same test images)" in text
    assert f"scores **{base['accuracy']:.4f}**" in text
    b, c = paired["only_this_right"], paired["only_tutorial_right"]
    assert f"| **{b}** (b) |" in text and f"| **{c}** (c) |" in text
    assert f"b = {b} out of b + c = {b + c}" in text
    assert "Exact McNemar test: p = " in text
    test_size = json.loads((root / "reports/metrics.json").read_text())["test_size"]
    assert paired["both_right"] + paired["both_wrong"] + b + c == test_size
    # Whether the published accuracy lies in the tutorial preset's interval.
    ci = base["accuracy_ci"]
    for published, word in (
        ((ci["low"] + ci["high"]) / 2, "inside"),
        (ci["high"] + 0.01, "outside"),
    ):
        p = write_params(tmp_path / word / "p.yaml", {"report.tutorial_accuracy": published})
        reports = tmp_path / word / "reports"
        shutil.copytree(root / "reports", reports)
        assert _report(root, p, reports) == 0
        assert (
            f"lies {word} the `tutorial` preset's interval" in (reports / "README.md").read_text()
        )


def test_without_the_tutorial_preset_it_compares_with_the_published_number(pipeline, tmp_path):
    root, _ = pipeline
    metrics = json.loads((root / "reports/metrics.json").read_text())
    del metrics["tutorial_preset"]
    accuracy = metrics["accuracy"]
    for published, word in ((accuracy - 0.01, "above"), (accuracy + 0.01, "below")):
        params = write_params(tmp_path / word / "p.yaml", {"report.tutorial_accuracy": published})
        reports = tmp_path / word / "reports"
        shutil.copytree(root / "reports", reports)
        (reports / "metrics.json").write_text(json.dumps(metrics))
        assert _report(root, params, reports) == 0
        assert f"1.00 percentage points {word}" in (reports / "README.md").read_text()


def test_report_is_byte_stable(pipeline):
    root, params = pipeline
    assert _report(root, params) == 0
    first = (root / "reports/README.md").read_bytes()
    assert _report(root, params) == 0
    assert (root / "reports/README.md").read_bytes() == first


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


def test_report_depends_on_no_git_state(pipeline, tmp_path, monkeypatch):
    """DVC does not track git state, so the report must not show it: a rerun that DVC skips
    would leave a stale "+ uncommitted changes" behind (issue 9)."""
    root, params = pipeline
    monkeypatch.delenv("MNIST_REPRO_GIT_COMMIT", raising=False)
    monkeypatch.chdir(tmp_path)
    run(["git", "init", "-q", "-b", "main"], cwd=tmp_path)
    (tmp_path / "params.yaml").write_text("train: {}\n")
    run(["git", "add", "-A"], cwd=tmp_path)
    run(["git", "commit", "-qm", "code"], cwd=tmp_path)
    assert _report(root, params) == 0
    clean = (root / "reports/README.md").read_bytes()
    (tmp_path / "params.yaml").write_text("train: {regularization: 0.8}\n")  # now dirty
    assert _report(root, params) == 0
    assert (root / "reports/README.md").read_bytes() == clean
    assert b"uncommitted" not in clean
    head = run(["git", "rev-parse", "HEAD"], cwd=tmp_path).stdout.strip()
    assert head.encode() not in clean


def test_report_shows_the_kernel_and_the_host_and_writes_the_fingerprint(pipeline, tmp_path):
    root, params = pipeline
    models = tmp_path / "models"
    shutil.copytree(root / "models", models)
    timings = json.loads((models / "train.timings.json").read_text())
    timings.update(cpu="Test CPU 3000", machine="x86_64", isa="x86-64-v3", zlib="1.2.3")
    (models / "train.timings.json").write_text(json.dumps(timings))
    reports = tmp_path / "reports"
    shutil.copytree(root / "reports", reports)
    args = ["report", "--params", str(params), "--model", str(models), "--reports", str(reports)]
    assert cli.main(args) == 0
    meta = json.loads((models / "model.json").read_text())
    text = (reports / "README.md").read_text()
    kernels = ", ".join(f"{lib} {arch}" for lib, arch in sorted(meta["blas"]["openblas"].items()))
    assert f"| BLAS kernel | {meta['blas']['kernel']} (OpenBLAS: {kernels}) |" in text
    assert (
        "| host CPU | Test CPU 3000 (x86_64, x86-64-v3), the train run these results come from"
        in text
    )
    assert "| zlib (PNG compression) | 1.2.3 (the system's, Pillow links it) |" in text
    fingerprint = json.loads((reports / "fingerprint.json").read_text())
    assert fingerprint == {
        "cpu": "Test CPU 3000",
        "machine": "x86_64",
        "isa": "x86-64-v3",
        "zlib": "1.2.3",
        "blas": meta["blas"],
        "packages": meta["packages"],
    }

    # Without a run record the report says so instead of guessing.
    (models / "train.timings.json").unlink()
    assert cli.main(args) == 0
    assert "| host CPU | unknown (unknown, unknown)" in (reports / "README.md").read_text()
    assert json.loads((reports / "fingerprint.json").read_text())["cpu"] == "unknown"
