"""The download stage's policy: sources and their order, what is retried, the pins, atomic
writes; end to end against a local HTTP server (helpers.http_server), file:// URLs and folders."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.params import write_params
from helpers.repo import REPO_ROOT
from mnist_repro import cli, download
from mnist_repro.download import FileSpec, Settings
from mnist_repro.errors import MnistReproError

BIG = "train-images-idx3-ubyte.gz"
SMALL = "t10k-labels-idx1-ubyte.gz"


@pytest.fixture(autouse=True)
def _no_user_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)


@pytest.fixture
def payloads(http_mirror) -> dict[str, bytes]:
    """Arbitrary bytes under MNIST-like names (download does not parse them), served as good."""
    rng = random.Random(0)
    files = {BIG: rng.randbytes(300_000), "train-labels-idx1-ubyte.gz": rng.randbytes(3_000)}
    files[SMALL] = rng.randbytes(37)
    http_mirror.files.update(files)
    return files


def settings_for(payloads, sources=(), **knobs) -> Settings:
    specs = tuple(FileSpec(n, hashlib.sha256(b).hexdigest(), len(b)) for n, b in payloads.items())
    knobs = {"timeout": 0.3, "deadline": 30.0, "retries": 1, "backoff": 0.0} | knobs
    return Settings(tuple(sources), specs, **knobs)


def params_for(path: Path, payloads, sources, **knobs) -> Path:
    s = settings_for(payloads, sources, **knobs)
    files = {f.name: {"sha256": f.sha256, "size": f.size} for f in s.files}
    updates = {"download.sources": list(sources), "download.files": files}
    return write_params(path, updates | {f"download.{k}": v for k, v in knobs.items()})


def fetch_all(payloads, sources, out: Path, **knobs) -> dict[str, str]:
    settings = settings_for(payloads, sources, **knobs)
    return download.download_all(settings, out, download.resolve_sources(sources, None))


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("download: warning: ")]


def assert_exact_files(folder: Path, payloads: dict[str, bytes]) -> None:
    """``folder`` holds exactly the payloads: nothing partial, no temp files."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(payloads)
    for name, body in payloads.items():
        assert (folder / name).read_bytes() == body


# --------------------------------------------------------------------------- params and sources


def test_repo_params_are_valid_and_secure():
    settings = download.load_settings(REPO_ROOT / "params.yaml")
    assert {f.name for f in settings.files} == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert settings.sources[0].startswith("https://azureopendatastorage.blob.core.windows.net/")
    assert all(s.startswith("https://") for s in settings.sources)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"sources": ["http://mirror.example/mnist/"]}, "download.sources"),
        ({"sources": "https://a.example/"}, "download.sources"),
        ({"files": {"a.gz": {"sha256": "abc", "size": 1}}}, "download.files.a.gz.sha256"),
        ({"files": {"a.gz": {"sha256": "0" * 64, "size": -1}}}, "download.files.a.gz.size"),
        ({"files": {"../a.gz": {"sha256": "0" * 64, "size": 1}}}, "a plain file name"),
        ({"retries": 0}, "download.retries"),
        ({"retries": 1.5}, "download.retries"),
        ({"timeout": 0}, "download.timeout"),
        ({"timeout": 10**400}, "download.timeout"),
        ({"deadline": -1}, "download.deadline"),
        ({"backoff": "fast"}, "download.backoff"),
        ({"retires": 3}, "download.retires: unknown key"),
    ],
)
def test_bad_params_name_the_key(tmp_path, change, key):
    params = write_params(tmp_path / "params.yaml", {f"download.{k}": v for k, v in change.items()})
    with pytest.raises(MnistReproError) as info:
        download.load_settings(params)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_mirror_goes_first_then_params_order(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    monkeypatch.chdir(tmp_path)
    params = ["https://a.example/mnist", "https://b.example/mnist/"]
    a, b = "https://a.example/mnist/", "https://b.example/mnist/"
    assert download.resolve_sources(params, None) == [a, b]
    assert download.resolve_sources(params, "mirror") == [
        (tmp_path / "mirror").as_uri() + "/",
        a,
        b,
    ]
    # a mirror equal to a params source is tried once, first
    assert download.resolve_sources(params, b) == [b, a]


@pytest.mark.parametrize(
    "value",
    [
        "https://m.example/mnist",
        "file:///srv/mnist/",
        "http://127.0.0.1:8000/x",
        "http://localhost/",
    ],
)
def test_mirror_urls_that_are_allowed(value):
    assert download.mirror_source(value).startswith(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://mirror.example/mnist/", "plain http is refused"),
        ("http://10.0.0.5/mnist/", "plain http is refused"),
        ("ftp://mirror.example/mnist/", "unsupported URL scheme 'ftp'"),
        ("file://otherhost/mnist/", "must name a local path"),
        ("no/such/folder", "no such folder"),
    ],
)
def test_mirror_values_that_are_refused(value, message, tmp_path):
    with pytest.raises(MnistReproError, match=message) as info:
        download.mirror_source(value, cwd=tmp_path)
    assert str(info.value).startswith(f"MNIST_MIRROR={value}: ")
    assert "\n" not in str(info.value)


def test_file_url_joins_and_quotes():
    assert download.file_url("https://h/a", "x.gz") == "https://h/a/x.gz"
    assert download.file_url("https://h/a/", "x y.gz") == "https://h/a/x%20y.gz"


def test_retry_policy_counts_attempts_and_backs_off():
    """urllib3's schedule: the first retry at once, then backoff * 2**(n-1) s."""
    policy = settings_for({}, retries=4, backoff=0.5).retry_policy()
    delays = []
    for _ in range(3):
        policy = policy.increment("GET", "https://h/", error=download.AttemptFailed("x"))
        delays.append(policy.get_backoff_time())
    assert delays == [0, 1.0, 2.0]
    with pytest.raises(Exception, match="Max retries"):
        policy.increment("GET", "https://h/", error=download.AttemptFailed("x"))


@pytest.mark.parametrize(
    ("size", "body", "problem"),
    [
        (4, b"abcd", None),
        (4, b"abce", "SHA-256 mismatch"),
        (4, b"abc", "truncated: 3 of 4 bytes"),
        (4, b"abcde", "body longer than the expected 4 bytes"),
        (4, b"  <!DOCTYPE html><html>", "got an HTML page"),
    ],
)
def test_body_problem(size, body, problem):
    spec = FileSpec("f", hashlib.sha256(b"abcd").hexdigest(), size)
    got = download.body_problem(spec, len(body), hashlib.sha256(body).hexdigest(), body)
    assert got == problem if problem is None else problem in got


# --------------------------------------------------------------------------- fetching


def test_good_source_fetches_verified_files(http_mirror, payloads, tmp_path, capsys):
    result = fetch_all(payloads, [http_mirror.url("good")], tmp_path / "raw")
    assert result == dict.fromkeys(payloads, http_mirror.url("good"))
    assert_exact_files(tmp_path / "raw", payloads)
    assert http_mirror.requests == [f"/good/{name}" for name in payloads]
    err = capsys.readouterr().err
    assert err.count("verified") == len(payloads) and not warnings(err)
    mode = (tmp_path / "raw" / SMALL).stat().st_mode & 0o777
    umask = os.umask(0o022)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # readable like any file the user writes, not mkstemp's 0600


# mode -> words the warning and the final error must contain
MISBEHAVIOURS = {
    "503": "HTTP 503",
    "404": "HTTP 404",
    "short": "wrong size: 18 bytes announced, expected 37",
    "truncated": "truncated: ",
    "close": "connection dropped after",
    "wrong": "SHA-256 mismatch",
    "html": "HTML page",
    "stall": "timed out: no data for 0.3 s",
    "redirect-http": "refused redirect to http://mirror.example/",
}


@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_misbehaving_source_warns_then_next_source_is_used(
    mode, http_mirror, payloads, tmp_path, capsys
):
    name = BIG if mode in ("close", "stall") else SMALL  # a body big enough to arrive in parts
    one = {name: payloads[name]}
    result = fetch_all(one, [http_mirror.url(mode), http_mirror.url("good")], tmp_path)
    assert result == {name: http_mirror.url("good")}
    assert_exact_files(tmp_path, one)
    (warning,) = warnings(capsys.readouterr().err)
    assert name in warning and http_mirror.url(mode) in warning
    assert MISBEHAVIOURS[mode] in warning


def test_every_source_failing_gives_one_line_naming_file_and_each_reason(
    http_mirror, payloads, tmp_path
):
    modes = ["503", "404", "wrong", "html", "truncated", "redirect-http"]
    with pytest.raises(MnistReproError) as info:
        fetch_all({SMALL: payloads[SMALL]}, [http_mirror.url(m) for m in modes], tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / SMALL}: ")
    tried = message.split(": ", 2)[2].split("; ")  # "<source> (<reason>)" in the order tried
    assert len(tried) == len(modes)
    for entry, mode in zip(tried, modes, strict=True):
        assert entry.startswith(f"{http_mirror.url(mode)} (") and MISBEHAVIOURS[mode] in entry
    assert "MNIST_MIRROR" in message
    assert list(tmp_path.iterdir()) == []  # no partial file and no temp file left behind


def test_retries_then_success_on_the_same_source(http_mirror, payloads, tmp_path, capsys):
    http_mirror.fail_first = 2
    one = {SMALL: payloads[SMALL]}
    assert fetch_all(one, [http_mirror.url("flaky")], tmp_path, retries=3) == {
        SMALL: http_mirror.url("flaky")
    }
    assert http_mirror.hits("flaky") == 3
    assert [w.split("; ")[-1] for w in warnings(capsys.readouterr().err)] == [
        "retry 1/2 in 0 s",
        "retry 2/2 in 0 s",
    ]
    assert_exact_files(tmp_path, one)


@pytest.mark.parametrize(
    ("mode", "hits"),
    [
        *[(mode, 3) for mode in ("503", "429", "408", "wrong", "close", "html")],
        *[(mode, 1) for mode in ("404", "403", "410", "redirect-http")],
    ],
)
def test_which_failures_are_retried(mode, hits, http_mirror, payloads, tmp_path, capsys):
    """Transient failures use every attempt; a permanent one moves on at once."""
    one = {BIG: payloads[BIG]}
    fetch_all(one, [http_mirror.url(mode), http_mirror.url("good")], tmp_path, retries=3)
    assert [http_mirror.hits(mode), http_mirror.hits("good")] == [hits, 1]
    assert "giving up on this source" in warnings(capsys.readouterr().err)[-1]


def test_slow_but_steady_body_is_not_a_timeout(http_mirror, payloads, tmp_path, capsys):
    """The timeout bounds silence, not the transfer: 10 pieces 0.05 s apart, timeout 0.3 s."""
    one = {BIG: payloads[BIG]}
    assert fetch_all(one, [http_mirror.url("slow")], tmp_path) == {BIG: http_mirror.url("slow")}
    assert not warnings(capsys.readouterr().err)


def test_a_trickle_past_the_deadline_gives_up_without_retry(http_mirror, payloads, tmp_path):
    """Every piece arrives within the timeout, but the whole takes longer than the deadline."""
    http_mirror.slow_pause = 0.1
    with pytest.raises(MnistReproError, match=r"too slow: \d+ of 300000 bytes after 0.35 s"):
        fetch_all(
            {BIG: payloads[BIG]}, [http_mirror.url("slow")], tmp_path, deadline=0.35, retries=3
        )
    assert http_mirror.hits("slow") == 1
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_a_loopback_url_is_followed(http_mirror, payloads, tmp_path):
    result = fetch_all(payloads, [http_mirror.url("redirect-good")], tmp_path)
    assert set(result.values()) == {http_mirror.url("redirect-good")}
    assert_exact_files(tmp_path, payloads)


def test_progress_lines_are_sparse(http_mirror, payloads, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "PROGRESS_EVERY", 0.12)
    fetch_all({BIG: payloads[BIG]}, [http_mirror.url("slow")], tmp_path)  # ~0.5 s
    lines = [line for line in capsys.readouterr().err.splitlines() if "MiB" in line]
    assert 1 <= len(lines) - 1 <= 5  # the last one is the "verified" line
    assert lines[0].startswith(f"download: {BIG}: 0.") and " of 0.3 MiB" in lines[0]
    fetch_all({SMALL: payloads[SMALL]}, [http_mirror.url("good")], tmp_path)
    assert "of 0.0 MiB" not in capsys.readouterr().err  # a fast transfer: no progress line


# --------------------------------------------------------------------------- present files


def test_present_and_correct_files_are_not_fetched(http_mirror, payloads, tmp_path, capsys):
    for name, body in payloads.items():
        (tmp_path / name).write_bytes(body)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    # the only source would fail if it were asked
    assert fetch_all(payloads, [http_mirror.url("503")], tmp_path) == dict.fromkeys(
        payloads, "present"
    )
    assert http_mirror.requests == []
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert capsys.readouterr().err == ""


def test_only_missing_or_wrong_files_are_fetched(http_mirror, payloads, tmp_path, capsys):
    names = list(payloads)
    (tmp_path / names[0]).write_bytes(payloads[names[0]])  # correct
    (tmp_path / names[1]).write_bytes(payloads[names[1]][:-1] + b"!")  # right size, wrong bytes
    result = fetch_all(payloads, [http_mirror.url("good")], tmp_path)
    assert result[names[0]] == "present"
    assert http_mirror.requests == [f"/good/{names[1]}", f"/good/{names[2]}"]
    assert f"warning: {tmp_path / names[1]}: SHA-256" in capsys.readouterr().err
    assert_exact_files(tmp_path, payloads)


def test_wrong_file_is_kept_when_no_verified_copy_arrives(http_mirror, payloads, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    (tmp_path / name).write_bytes(b"the user's old bytes")
    with pytest.raises(MnistReproError, match=name):
        fetch_all({name: payloads[name]}, [http_mirror.url("wrong")], tmp_path)
    assert (tmp_path / name).read_bytes() == b"the user's old bytes"
    assert [p.name for p in tmp_path.iterdir()] == [name]


# --------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize("existing", [None, b"older bytes"])
def test_ctrl_c_mid_download_leaves_no_partial_or_temp_file(
    existing, http_mirror, payloads, tmp_path, monkeypatch
):
    real_chunks = download.http_chunks

    def interrupted(*args, **kwargs):
        yield next(real_chunks(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "http_chunks", interrupted)
    if existing is not None:
        (tmp_path / BIG).write_bytes(existing)
    with pytest.raises(KeyboardInterrupt):
        fetch_all({BIG: payloads[BIG]}, [http_mirror.url("good")], tmp_path)
    assert http_mirror.hits("good") == 1  # the interrupt came mid-download
    assert [p.read_bytes() for p in tmp_path.iterdir()] == ([] if existing is None else [existing])


def test_disk_full_is_one_clear_error_not_a_retry(http_mirror, payloads, tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(download.os, "fsync", disk_full)
    with pytest.raises(MnistReproError, match=rf"{BIG}: cannot write \(No space left on device\)"):
        fetch_all(payloads, [http_mirror.url("good"), http_mirror.url("good")], tmp_path, retries=3)
    assert http_mirror.hits("good") == 1
    assert list(tmp_path.iterdir()) == []


def test_partial_download_left_by_a_killed_run_is_removed(tmp_path, http_mirror, capsys):
    payloads = {"a.gz": b"A" * 1000}
    http_mirror.files = payloads
    (tmp_path / ".a.gz.k1ll3d.tmp").write_bytes(b"A" * 400)  # SIGKILL cannot clean up
    fetch_all(payloads, [http_mirror.url("good")], tmp_path)
    assert_exact_files(tmp_path, payloads)
    assert ".a.gz.k1ll3d.tmp: removed a partial download" in capsys.readouterr().err


# --------------------------------------------------------------------------- local mirrors


@pytest.fixture
def local_mirror(tmp_path, payloads) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name, body in payloads.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.mark.parametrize("form", ["relative folder", "absolute folder", "file URL"])
def test_local_mirrors_need_no_server(
    form, local_mirror, http_mirror, payloads, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    value = {"relative folder": "mirror", "absolute folder": str(local_mirror)}.get(
        form, local_mirror.as_uri()
    )
    monkeypatch.setenv("MNIST_MIRROR", value)
    params = params_for(tmp_path / "params.yaml", payloads, [http_mirror.url("503")])
    assert cli.main(["download", "--params", str(params), "--out", "data/raw"]) == 0
    assert_exact_files(tmp_path / "data/raw", payloads)
    assert http_mirror.requests == []


@pytest.mark.parametrize("damage", ["missing", "wrong"])
def test_a_bad_local_mirror_file_is_not_retried(
    damage, local_mirror, http_mirror, payloads, tmp_path, capsys
):
    name = "train-labels-idx1-ubyte.gz"
    if damage == "missing":
        (local_mirror / name).unlink()
    else:
        (local_mirror / name).write_bytes(b"x" * len(payloads[name]))
    settings = settings_for(payloads, retries=3)
    sources = download.resolve_sources([http_mirror.url("good")], str(local_mirror))
    download.download_all(settings, tmp_path / "raw", sources)
    assert http_mirror.requests == [f"/good/{name}"]
    (warning,) = warnings(capsys.readouterr().err)
    assert f"{name} from file://" in warning and warning.endswith("; giving up on this source")
    assert_exact_files(tmp_path / "raw", payloads)


# --------------------------------------------------------------------------- CLI


def test_cli_mirror_first_then_params_order(http_mirror, payloads, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", http_mirror.url("500"))
    sources = [http_mirror.url("404"), http_mirror.url("good")]
    params = params_for(tmp_path / "params.yaml", payloads, sources, retries=1)
    assert cli.main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 0
    order = [path.split("/")[1] for path in http_mirror.requests]
    assert order == ["500", "404", "good"] * len(payloads)


def test_cli_failure_exits_non_zero_with_one_line(http_mirror, payloads, tmp_path):
    params = params_for(tmp_path / "params.yaml", payloads, [http_mirror.url("503")], retries=1)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    env.pop("MNIST_MIRROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_repro", "download", "--params", str(params), "--out", "raw"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [proc.stderr.splitlines()[-1]]
    assert f"raw/{BIG}" in errors[0]
    assert f"{http_mirror.url('503')} (HTTP 503 Service Unavailable)" in errors[0]
    assert list((tmp_path / "raw").iterdir()) == []


def test_cli_refuses_insecure_mirror_before_any_request(
    http_mirror, payloads, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MNIST_MIRROR", "http://mirror.example/mnist/")
    params = params_for(tmp_path / "params.yaml", payloads, [http_mirror.url("good")])
    assert cli.main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 1
    assert capsys.readouterr().err == (
        "error: MNIST_MIRROR=http://mirror.example/mnist/: plain http is refused, use https, "
        "a file:// URL or a local folder (http is allowed only for loopback hosts)\n"
    )
    assert http_mirror.requests == []


def test_cli_out_must_be_a_folder(http_mirror, payloads, tmp_path, capsys):
    params = params_for(tmp_path / "params.yaml", payloads, [http_mirror.url("good")])
    (tmp_path / "raw").write_text("not a folder")
    assert cli.main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'raw'}: exists and is not a folder\n"
    assert http_mirror.requests == []
