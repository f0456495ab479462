"""The whole `dvc repro` (download -> decode -> train -> evaluate -> report) on synthetic data in a
throwaway copy of the repo, then a rerun that changes nothing, then a DVC experiment."""

from __future__ import annotations

import json

import pytest

from helpers.repo import pinned_kernel_runs_here, repo_with_fake_data, run

pytestmark = pytest.mark.slow

OUTPUTS = (
    "models/model.skops",
    "models/model.json",
    "reports/metrics.json",
    "reports/plots/confusion.csv",
    "reports/figures/digits.png",
    "reports/figures/confusion.png",
    "reports/figures/mistakes.png",
    "reports/README.md",
)


def test_dvc_repro_end_to_end_then_nothing_then_an_experiment(tmp_path):
    repo, mirror = repo_with_fake_data(tmp_path, n_train=400, n_test=150, seed=11)
    env = {"MNIST_MIRROR": str(mirror)}

    first = run(["dvc", "repro"], cwd=repo, env=env)
    for stage in ("download", "decode", "train", "train_tutorial", "evaluate", "report"):
        assert f"Running stage '{stage}'" in first.stdout
    for rel in OUTPUTS:
        assert (repo / rel).is_file(), rel
    assert (repo / "models/train.timings.json").is_file()
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # learnable synthetic digits; chance is 0.1
    assert metrics["test_size"] == 150 and metrics["train_size"] == 400
    report = (repo / "reports/README.md").read_text()
    for figure in ("figures/digits.png", "figures/confusion.png", "figures/mistakes.png"):
        assert f"]({figure})" in report

    # Timings are not a DVC output, and git ignores them.
    run(["git", "check-ignore", "-q", "models/train.timings.json"], cwd=repo)
    assert "timings" not in (repo / "dvc.lock").read_text()

    # Same params and data: nothing reruns, dvc.lock and every output keep their bytes.
    lock = (repo / "dvc.lock").read_bytes()
    before = {rel: (repo / rel).read_bytes() for rel in OUTPUTS}
    second = run(["dvc", "repro"], cwd=repo, env=env)
    assert "Running stage" not in second.stdout
    assert (repo / "dvc.lock").read_bytes() == lock

    # Forced rerun of the model stages: the same bytes again, also as another machine whose
    # OpenBLAS picks another kernel (the recipe's pinned kernel wins).
    other = {"OPENBLAS_CORETYPE": "Sandybridge"} if pinned_kernel_runs_here() else {}
    run(["dvc", "repro", "--force", "--single-item", "train"], cwd=repo, env={**env, **other})
    run(["dvc", "repro"], cwd=repo, env={**env, **other})
    for rel in OUTPUTS:
        assert (repo / rel).read_bytes() == before[rel], rel
    assert (repo / "dvc.lock").read_bytes() == lock

    # `dvc metrics show` reads the declared metrics.
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=repo).stdout)
    assert json.dumps(shown).count('"accuracy"') >= 1

    # A DVC experiment with another regularization rate runs train/evaluate/report only.
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "results"], cwd=repo)
    verify = run(["python", "-m", "mnist_repro", "verify"], cwd=repo, env=env)
    assert verify.stdout.startswith("verify: OK, all 14 outputs DVC tracks match")
    assert len(verify.stdout.splitlines()) == 1
    exp = run(["dvc", "exp", "run", "-S", "train.regularization=0.8"], cwd=repo, env=env)
    assert "Running stage 'train'" in exp.stdout
    assert "Running stage 'download'" not in exp.stdout
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["regularization rate"] == 0.8
    assert json.loads((repo / "models/model.json").read_text())["C"] == pytest.approx(1.25)

    # Now the outputs are not the committed ones: make verify lists them, the metric deltas and
    # the host fingerprints, and fails.
    verify = run(["python", "-m", "mnist_repro", "verify"], cwd=repo, env=env, check=False)
    assert verify.returncode == 1
    out = verify.stdout
    assert out.startswith("verify: MISMATCH")
    assert "\n  models/model.skops: committed " in out
    assert "\n  data/raw: " not in out  # unchanged outputs are not listed
    assert "\n  regularization rate: 0.5 -> 0.8 (+0.3)\n" in out
    assert "\n  blas.kernel " in out and "\n  packages.numpy " in out
