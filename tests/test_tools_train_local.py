"""tools/docker/train-local.sh (`make train-local`), with a stand-in engine that records its calls.

The script runs `dvc repro` in the image on this repository as the calling user and passes
MNIST_MIRROR on: a URL as is, a local folder (or file:// URL) mounted read-only.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers.repo import REPO_ROOT, run

SCRIPT = REPO_ROOT / "tools" / "docker" / "train-local.sh"
USER = f"{os.getuid()}:{os.getgid()}"


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    """An executable that appends its arguments, as one JSON line, to calls.jsonl beside it."""
    path = tmp_path / "fake-engine"
    path.write_text(
        "#!/usr/bin/env python3\n"
        "import json, pathlib, sys\n"
        "log = pathlib.Path(sys.argv[0]).with_name('calls.jsonl')\n"
        "with log.open('a') as fh:\n"
        "    fh.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    path.chmod(0o755)
    return path


def calls(engine: Path) -> list[list[str]]:
    log = engine.with_name("calls.jsonl")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def train_local(engine: Path, mirror: str | None, *flags: str, cwd: Path = REPO_ROOT):
    env = {"DOCKER": str(engine)}
    if mirror is not None:
        env["MNIST_MIRROR"] = mirror
    return run([SCRIPT, "mnist-repro:test", *flags], cwd=cwd, env=env, check=False)


def expected(*mirror_args: str, flags: tuple[str, ...] = ()) -> list[str]:
    return ["run", "--rm", *flags, "--user", USER, "-v", f"{REPO_ROOT}:/workspace",
            *mirror_args, "mnist-repro:test", "dvc", "repro"]  # fmt: skip


def test_runs_dvc_repro_on_this_repo_as_the_calling_user(engine: Path) -> None:
    proc = train_local(engine, None)
    assert proc.returncode == 0, proc.stderr
    assert calls(engine) == [expected()]


def test_a_url_mirror_is_passed_on_as_is(engine: Path) -> None:
    proc = train_local(engine, "https://example.org/mnist/", "--network=host")
    assert proc.returncode == 0, proc.stderr
    assert calls(engine) == [
        expected("-e", "MNIST_MIRROR=https://example.org/mnist/", flags=("--network=host",))
    ]


@pytest.mark.parametrize("form", ["relative", "file-url"])
def test_a_folder_mirror_is_mounted_read_only(engine: Path, tmp_path: Path, form: str) -> None:
    mirror = tmp_path / "mnist"
    mirror.mkdir()
    value = os.path.relpath(mirror, tmp_path) if form == "relative" else f"file://{mirror}"
    proc = train_local(engine, value, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    mount = ("-v", f"{mirror.resolve()}:/mnist-mirror:ro", "-e", "MNIST_MIRROR=/mnist-mirror")
    assert calls(engine) == [expected(*mount)]


def test_a_missing_folder_is_one_line_and_runs_nothing(engine: Path, tmp_path: Path) -> None:
    proc = train_local(engine, str(tmp_path / "nowhere"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: MNIST_MIRROR={tmp_path / 'nowhere'}: not a URL or an existing folder"
    ]
    assert calls(engine) == []


def test_make_train_local_builds_then_runs_the_script(engine: Path) -> None:
    proc = run(
        ["make", "--no-print-directory", "train-local", f"DOCKER={engine}",
         "DOCKER_IMAGE=mnist-repro:test", "DOCKER_RUN_FLAGS=--network=host"],
        cwd=REPO_ROOT,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    build, run_call = calls(engine)
    assert build == ["build", "-t", "mnist-repro:test", "docker"]
    assert run_call == expected(flags=("--network=host",))


def test_podman_keeps_the_callers_uid_in_its_user_namespace(tmp_path: Path) -> None:
    """Rootless podman maps --user to a subordinate uid unless the namespace keeps the id."""
    podman = tmp_path / "bin" / "podman"
    podman.parent.mkdir()
    podman.write_text(
        "#!/usr/bin/env python3\n"
        "import json, pathlib, sys\n"
        "pathlib.Path(sys.argv[0]).with_name('calls.jsonl').write_text(json.dumps(sys.argv[1:]))\n"
    )
    podman.chmod(0o755)
    proc = train_local(podman, None)
    assert proc.returncode == 0, proc.stderr
    assert calls(podman) == [[*expected()[:4], "--userns=keep-id", *expected()[4:]]]


def test_the_image_runs_as_root_and_train_local_never_does() -> None:
    """No USER in the Dockerfile (Azure ML runs images as root); train-local always passes
    the caller's uid:gid, so no root-owned file lands in the checkout."""
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    assert not [line for line in dockerfile.splitlines() if line.startswith("USER")]
    script = SCRIPT.read_text()
    assert 'user=(--user "$(id -u):$(id -g)")' in script
    assert '"${engine[@]}" run --rm "$@" "${user[@]}"' in script


ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"


@pytest.mark.skipif(os.geteuid() != 0, reason="the entrypoint's switch happens only as root")
@pytest.mark.parametrize(("owner", "stay_root", "expected"), [(54321, "", 54321), (0, "", 0),
                                                              (54321, "1", 0)])  # fmt: skip
def test_the_entrypoint_runs_as_the_owner_of_a_mounted_checkout(tmp_path, owner, stay_root,
                                                                expected):  # fmt: skip
    """A plain `docker run` as root on a checkout owned by a user runs as that user (no root-owned
    files); on Azure ML the folder is root's own and nothing changes."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, owner, owner)
    env = {
        **os.environ,
        "MNIST_REPRO_WORKSPACE": str(workspace),
        "MNIST_REPRO_STAY_ROOT": stay_root,
    }
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), "sh", "-c", "id -u; id -g; touch made"],
        cwd=workspace, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert proc.stdout.split() == [str(expected), str(expected)]
    assert (workspace / "made").stat().st_uid == expected


def test_the_image_runs_every_command_through_the_entrypoint() -> None:
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/mnist-repro-entrypoint"]' in dockerfile
    assert "!entrypoint.sh" in (REPO_ROOT / "docker" / ".dockerignore").read_text()
