"""docker/requirements.lock: what the image installs is the venv's lock minus the packages no
command of the image imports (the Makefile's IMAGE_UNUSED), same versions and hashes."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers.repo import REPO_ROOT

PACKAGE = re.compile(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", re.MULTILINE)


def _lock(name: str) -> dict[str, str]:
    return dict(PACKAGE.findall((REPO_ROOT / name).read_text()))


def _image_unused() -> list[str]:
    text = (REPO_ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(r"^IMAGE_UNUSED := (.*)$", text, re.MULTILINE).group(1).split()


def test_the_image_lock_is_the_venv_lock_minus_what_the_image_never_imports():
    image, venv = _lock("docker/requirements.lock"), _lock("requirements-dev.lock")
    unused = _image_unused()
    assert unused and not set(unused) & set(image)
    assert all(venv.get(name) == version for name, version in image.items())
    for needed in ("dvc", "scikit-learn", "skops", "matplotlib", "mlflow-skinny", "azureml-mlflow"):
        assert needed in image, needed
    assert "azure-ai-ml" not in image and "pytest" not in image  # the workstation's, not the job's


def test_dvc_and_mlflow_work_without_the_left_out_packages(tmp_path):
    """Block the left-out packages' modules; DVC (repo, status, stage loading) and the job's
    MLflow plugin must still import and run. make test-docker runs the whole pipeline."""
    modules = {
        "celery", "kombu", "amqp", "billiard", "vine", "click_didyoumean", "click_plugins",
        "click_repl", "dvc_studio_client", "dvc_task", "grandalf", "gto", "h11", "hydra",
        "iterative_telemetry", "omegaconf", "prompt_toolkit", "pydot", "semver", "uvicorn",
        "wcwidth", "antlr4", "asyncssh",
    }  # fmt: skip
    code = (
        "import sys\n"
        f"BLOCKED = {sorted(modules)!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('left out of the image: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import mlflow, azureml.mlflow\n"
        "from dvc.cli import main\n"
        "sys.exit(main(['status', '--quiet']) not in (0, 1))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "left out of the image" not in proc.stderr
