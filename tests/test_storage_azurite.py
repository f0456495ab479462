"""A DVC remote on Azure Blob Storage, tested against Azurite (Microsoft's storage emulator).

The pipeline runs once, on synthetic MNIST, in a throwaway clone; its outputs are pushed to
Azurite on 127.0.0.1 and pulled into fresh ``git clone``s, through the real dvc-azure
client. Credentials (the emulator's public development account) only ever go to
``.dvc/config.local`` or to ``AZURE_STORAGE_CONNECTION_STRING``, never to git.

Marked ``azurite``: ``make test`` leaves these out (it stays network-free; Azurite comes
from npm); ``make test-storage`` installs Azurite (tools/azurite.py) into a cache folder and
runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from azurite import ACCOUNT_KEY, Azurite, BlobProxy, ensure_installed, missing_tools
from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import copy_repo, run, stage_env

pytestmark = pytest.mark.azurite

CONTAINER = "mnist-repro"


def _report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Show a measurement in the test log even when output is captured."""
    with capsys.disabled():
        print(f"\n[storage] {line}", flush=True)


def _require_azurite() -> None:
    if reason := missing_tools():
        pytest.skip(f"Azurite needs Node.js: {reason}")
    ensure_installed()


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory):
    """One Azurite for the module, with a container for the main remote."""
    _require_azurite()
    server = Azurite(tmp_path_factory.mktemp("azurite") / "data").start()
    try:
        server.create_container(CONTAINER)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("mirror")
    return folder, write_fake_mnist(folder)


@pytest.fixture(scope="module")
def producer(tmp_path_factory: pytest.TempPathFactory, mirror) -> Path:
    """A clone where the whole pipeline ran on synthetic MNIST, its dvc.lock committed."""
    _require_azurite()  # skip before the pipeline run when Azurite cannot run anyway
    folder, specs = mirror
    repo = copy_repo(tmp_path_factory.mktemp("producer") / "repo")
    write_params(repo / "params.yaml", {"download.files": specs})
    run(["dvc", "repro"], cwd=repo, env={"MNIST_MIRROR": str(folder)})
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-q", "-m", "pipeline outputs (dvc.lock)"], cwd=repo)
    return repo


def tracked_files(repo: Path) -> dict[str, bytes]:
    """Every file under every output that dvc.lock records, with its bytes."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    files: dict[str, bytes] = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path = repo / out["path"]
            for file in [path] if path.is_file() else sorted(path.rglob("*")):
                if file.is_file():
                    files[file.relative_to(repo).as_posix()] = file.read_bytes()
    return files


def lock_md5(repo: Path, out_path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == out_path:
                return out["md5"]
    raise KeyError(out_path)


def cached_outputs(repo: Path) -> set[str]:
    """The outputs dvc.yaml keeps in the DVC cache: what a push uploads (not ``cache: false``)."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))
    paths = set()
    for stage in spec["stages"].values():
        for item in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            path, options = (item, {}) if isinstance(item, str) else next(iter(item.items()))
            if (options or {}).get("cache", True):
                paths.add(path)
    return paths


def pushable_objects(repo: Path) -> dict[str, int]:
    """``files/md5/xx/yyyy`` -> size for every object of the cached outputs in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    hashes = set()
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] in cached_outputs(repo):
                hashes.add(out["md5"])
                if out["md5"].endswith(".dir"):
                    listing = json.loads((cache / out["md5"][:2] / out["md5"][2:]).read_text())
                    hashes.update(entry["md5"] for entry in listing)
    return {
        f"files/md5/{md5[:2]}/{md5[2:]}": (cache / md5[:2] / md5[2:]).stat().st_size
        for md5 in hashes
    }


def remote_objects(server: Azurite, container: str, prefix: str) -> set[str]:
    return {name.removeprefix(prefix + "/") for name in server.blob_names(container, prefix)}


def pushed_count(output: str) -> int:
    match = re.search(r"(\d+) files? pushed", output)
    assert match, output
    return int(match.group(1))


def workspace_snapshot(repo: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every workspace file outside .git and .dvc."""
    snapshot = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] in (".git", ".dvc") or not path.is_file():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        snapshot[rel.as_posix()] = (digest, path.stat().st_mtime_ns)
    return snapshot


def add_remote(repo: Path, name: str, url: str, conn: str, *, local: bool = False) -> None:
    """``dvc remote add`` (in .dvc/config, or .dvc/config.local) + the credential in --local."""
    run(["dvc", "remote", "add", *(["--local"] if local else []), "-f", name, url], cwd=repo)
    run(["dvc", "remote", "modify", "--local", name, "connection_string", conn], cwd=repo)


def test_push_then_pull_into_a_fresh_clone_restores_everything(
    azurite: Azurite, producer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"azure://{CONTAINER}/dvcstore"
    # The remote's URL is shared through git; its credential stays in .dvc/config.local.
    run(["dvc", "remote", "add", "-d", "-f", "storage", url], cwd=producer)
    run(["dvc", "remote", "modify", "--local", "storage", "connection_string",
         azurite.connection_string], cwd=producer)  # fmt: skip
    run(["git", "add", ".dvc/config"], cwd=producer)
    run(["git", "commit", "-q", "-m", "DVC remote on Azure Blob Storage"], cwd=producer)
    committed = run(["git", "log", "-p", "--all", "--", ".dvc"], cwd=producer).stdout
    assert url in committed
    assert ACCOUNT_KEY not in committed and "connection_string" not in committed
    assert "AccountKey" in (producer / ".dvc" / "config.local").read_text()

    objects = pushable_objects(producer)
    started = time.monotonic()
    push = run(["dvc", "push"], cwd=producer)
    push_seconds = time.monotonic() - started
    assert pushed_count(push.stdout) == len(objects)
    assert remote_objects(azurite, CONTAINER, "dvcstore") == set(objects)

    # A teammate: git clone, credential through the environment, dvc pull.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(producer), str(clone)], cwd=tmp_path)
    assert not (clone / ".dvc" / "config.local").exists()
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    started = time.monotonic()
    run(["dvc", "pull"], cwd=clone, env=env)
    pull_seconds = time.monotonic() - started

    expected = tracked_files(producer)
    assert tracked_files(clone) == expected
    for output in ("data/raw", "data/processed/mnist.npz", "models/model.skops", "reports"):
        assert any(name.startswith(output) for name in expected), f"{output} not in dvc.lock"
    assert {"models/model.skops", "data/processed/mnist.npz"} <= cached_outputs(producer)
    status = run(["dvc", "status"], cwd=clone, env=env)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    repro = run(["dvc", "repro"], cwd=clone, env=env)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert tracked_files(clone) == expected

    size = sum(objects.values())
    _report(
        capsys,
        f"synthetic pipeline outputs, {len(objects)} objects, {size / 1e6:.2f} MB: "
        f"dvc push {push_seconds:.1f} s, dvc pull {pull_seconds:.1f} s",
    )


def test_push_interrupted_when_azurite_stops_is_completed_by_the_next_push(
    producer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Azurite stops after 3 uploads; the next push, once it is back, uploads only the rest.

    A proxy in front of Azurite counts the uploads and stops Azurite (SIGTERM, by pid) right
    after the third, before DVC hears back, so the cut is at the same place every run. The
    push then retries the dead endpoint (the Azure SDK backs off for about 1.5 minutes
    before giving up); the test interrupts it, as a user would with Ctrl-C.
    """
    objects = pushable_objects(producer)
    assert len(objects) > 4
    server = Azurite(tmp_path / "azurite").start()
    try:
        server.create_container("interrupted")
        with BlobProxy(server.port) as proxy:
            uploads: list[str] = []

            def stop_after_three(method: str, path: str, status: int) -> None:
                if method == "PUT" and "/files/md5/" in path and status == 201:
                    uploads.append(path)
                    if len(uploads) == 3:
                        server.stop()

            proxy.on_response = stop_after_three
            add_remote(producer, "interrupted", "azure://interrupted/dvcstore",
                       proxy.connection_string(), local=True)  # fmt: skip
            push = subprocess.Popen(
                ["dvc", "push", "-r", "interrupted", "--jobs", "1"],
                cwd=producer,
                env=stage_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                assert proxy.failed.wait(60), "the push never reached the stopped Azurite"
                os.kill(push.pid, signal.SIGINT)
                output, _ = push.communicate(timeout=60)
            finally:
                if push.poll() is None:
                    os.killpg(push.pid, signal.SIGKILL)
                    push.wait()
            assert push.returncode != 0, output
            assert server.process is not None and server.process.returncode is not None

            server.start()  # same port, same data folder
            partial = remote_objects(server, "interrupted", "dvcstore")
            assert len(partial) == 3
            assert partial < set(objects)

            proxy.on_response = None
            second = run(["dvc", "push", "-r", "interrupted"], cwd=producer)
            assert pushed_count(second.stdout) == len(objects) - 3
            assert remote_objects(server, "interrupted", "dvcstore") == set(objects)
            status = run(["dvc", "status", "--cloud", "-r", "interrupted"], cwd=producer)
            assert "in sync" in status.stdout, status.stdout
    finally:
        server.stop()
    _report(capsys, f"interrupted push: 3 of {len(objects)} objects, next push sent the rest")


def test_pull_with_an_object_missing_fails_clearly_and_keeps_the_users_files(
    azurite: Azurite, producer: Path, mirror, tmp_path: Path
) -> None:
    """One object deleted from the remote: pull names it, fails, and loses none of the user's files.

    DVC still checks out the outputs it could fetch (new files only); the user's own files,
    here the raw data they already had and a notes file, keep their bytes and mtimes.
    """
    container, prefix = "damaged", "dvcstore"
    azurite.create_container(container)
    add_remote(producer, "damaged", f"azure://{container}/{prefix}", azurite.connection_string,
               local=True)  # fmt: skip
    run(["dvc", "push", "-r", "damaged"], cwd=producer)
    victim_path = "models/model.skops"
    md5 = lock_md5(producer, victim_path)
    azurite.delete_blob(container, f"{prefix}/files/md5/{md5[:2]}/{md5[2:]}")

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(producer), str(clone)], cwd=tmp_path)
    add_remote(clone, "damaged", f"azure://{container}/{prefix}", azurite.connection_string,
               local=True)  # fmt: skip
    folder, specs = mirror
    (clone / "data" / "raw").mkdir(parents=True)
    for name in specs:  # the user had already fetched the raw files themselves
        (clone / "data" / "raw" / name).write_bytes((folder / name).read_bytes())
    (clone / "notes.md").write_text("my notes\n")
    before = workspace_snapshot(clone)

    pull = run(["dvc", "pull", "-r", "damaged"], cwd=clone, check=False)
    assert pull.returncode != 0
    error = pull.stdout + pull.stderr
    assert "Missing cache files" in error and md5 in error, error
    assert "Checkout failed" in error and victim_path in error, error

    after = workspace_snapshot(clone)
    assert {name: after.get(name) for name in before} == before
    assert not (clone / victim_path).exists()
    assert not [p for p in clone.rglob("*.tmp") if ".dvc" not in p.relative_to(clone).parts]

    # Repair: the producer pushes again (only the missing object), and the pull completes.
    again = run(["dvc", "push", "-r", "damaged"], cwd=producer)
    assert pushed_count(again.stdout) == 1
    run(["dvc", "pull", "-r", "damaged"], cwd=clone)
    assert tracked_files(clone) == tracked_files(producer)
