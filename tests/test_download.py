"""The download stage against a local HTTP server (tests/conftest.py), file:// URLs and folders."""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_repro import cli, download
from mnist_repro.download import FileSpec, Settings
from mnist_repro.errors import MnistReproError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_user_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)


@pytest.fixture
def payloads(http_mirror) -> dict[str, bytes]:
    """Arbitrary bytes under MNIST-like names (download does not parse them), served as good."""
    rng = random.Random(0)
    files = {
        "train-images-idx3-ubyte.gz": rng.randbytes(300_000),
        "train-labels-idx1-ubyte.gz": rng.randbytes(3_000),
        "t10k-labels-idx1-ubyte.gz": rng.randbytes(37),
    }
    http_mirror.files.update(files)
    return files


def settings_for(payloads, sources, *, timeout=0.3, retries=1, backoff=0.0) -> Settings:
    specs = tuple(
        FileSpec(name, hashlib.sha256(body).hexdigest(), len(body))
        for name, body in payloads.items()
    )
    return Settings(tuple(sources), specs, timeout, retries, backoff)


def params_yaml(path: Path, payloads, sources, **knobs) -> Path:
    s = settings_for(payloads, sources, **knobs)
    section = {
        "sources": list(s.sources),
        "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in s.files},
        "timeout": s.timeout,
        "retries": s.retries,
        "backoff": s.backoff,
    }
    path.write_text(yaml.safe_dump({"download": section}, sort_keys=False), encoding="utf-8")
    return path


def fetch_all(payloads, sources, out: Path, **knobs) -> tuple[dict[str, str], str]:
    log = io.StringIO()
    settings = settings_for(payloads, sources, **knobs)
    result = download.download_all(settings, out, download.resolve_sources(sources, None), log=log)
    return result, log.getvalue()


def assert_exact_files(folder: Path, payloads: dict[str, bytes]) -> None:
    """``folder`` holds exactly the payloads: nothing partial, no temp files."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(payloads)
    for name, body in payloads.items():
        assert (folder / name).read_bytes() == body


# --------------------------------------------------------------------------- params and sources


def test_repo_params_are_valid_and_secure():
    section = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["download"]
    settings = download.parse_settings(section)
    assert {f.name for f in settings.files} == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert settings.sources[0].startswith("https://azureopendatastorage.blob.core.windows.net/")
    assert all(s.startswith("https://") for s in settings.sources)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sources": ["http://mirror.example/mnist/"]}, "download.sources[0]"),
        ({"sources": "https://a.example/"}, "download.sources must be a list"),
        ({"files": {"a.gz": {"sha256": "abc", "size": 1}}}, "download.files.a.gz.sha256"),
        ({"files": {"a.gz": {"sha256": "0" * 64, "size": -1}}}, "download.files.a.gz.size"),
        ({"files": {"../a.gz": {"sha256": "0" * 64, "size": 1}}}, "plain file name"),
        ({"retries": 0}, "download.retries"),
        ({"retries": 1.5}, "download.retries"),
        ({"timeout": 0}, "download.timeout"),
        ({"backoff": "fast"}, "download.backoff"),
    ],
)
def test_bad_params_name_the_key(change, message):
    section = {
        "sources": ["https://a.example/"],
        "files": {"a.gz": {"sha256": "0" * 64, "size": 1}},
        "timeout": 1,
        "retries": 2,
        "backoff": 0.5,
    } | change
    with pytest.raises(MnistReproError, match=message.replace("[", r"\[").replace("]", r"\]")):
        download.parse_settings(section)


def test_mirror_goes_first_then_params_order(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    monkeypatch.chdir(tmp_path)
    params = ["https://a.example/mnist", "https://b.example/mnist/"]
    assert download.resolve_sources(params, None) == [
        "https://a.example/mnist/",
        "https://b.example/mnist/",
    ]
    assert download.resolve_sources(params, "mirror") == [
        (tmp_path / "mirror").as_uri() + "/",
        "https://a.example/mnist/",
        "https://b.example/mnist/",
    ]
    # a mirror equal to a params source is tried once, first
    assert download.resolve_sources(params, "https://b.example/mnist/") == [
        "https://b.example/mnist/",
        "https://a.example/mnist/",
    ]


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


def test_backoff_doubles():
    assert download.backoff_delays(4, 0.5) == [0.5, 1.0, 2.0]
    assert download.backoff_delays(1, 0.5) == []


# --------------------------------------------------------------------------- fetching


def test_good_source_fetches_verified_files(http_mirror, payloads, tmp_path):
    result, log = fetch_all(payloads, [http_mirror.url("good")], tmp_path / "raw")
    assert result == dict.fromkeys(payloads, http_mirror.url("good"))
    assert_exact_files(tmp_path / "raw", payloads)
    assert http_mirror.requests == [f"/good/{name}" for name in payloads]
    assert log.count("verified") == len(payloads)
    assert "warning" not in log
    mode = (tmp_path / "raw" / "t10k-labels-idx1-ubyte.gz").stat().st_mode & 0o777
    umask = os.umask(0o022)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # readable like any file the user writes, not mkstemp's 0600


# mode -> words the warning and the final error must contain
MISBEHAVIOURS = {
    "503": "HTTP 503",
    "500": "HTTP 500",
    "404": "HTTP 404",
    "403": "HTTP 403",
    "short": "wrong size: 18 bytes announced, expected 37",
    "truncated": "truncated: ",
    "wrong": "SHA-256 mismatch",
    "html": "HTML page",
    "html-as-binary": "HTML page",
    "stall": "timed out: no data for 0.3 s",
    "stall-headers": "timed out: no data for 0.3 s",
    "drop": "connection dropped",
    "close": "connection dropped after",
    "long": "body longer than the expected",
    "redirect-http": "refused redirect to http://mirror.example/",
}


@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_misbehaving_source_warns_then_next_source_is_used(mode, http_mirror, payloads, tmp_path):
    one = {"t10k-labels-idx1-ubyte.gz": payloads["t10k-labels-idx1-ubyte.gz"]}
    if mode in ("drop", "close", "stall"):  # big enough that half the body is a real chunk
        one = {"train-images-idx3-ubyte.gz": payloads["train-images-idx3-ubyte.gz"]}
    (name,) = one
    result, log = fetch_all(one, [http_mirror.url(mode), http_mirror.url("good")], tmp_path)
    assert result == {name: http_mirror.url("good")}
    assert_exact_files(tmp_path, one)
    warnings = [line for line in log.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert name in warnings[0] and http_mirror.url(mode) in warnings[0]
    assert MISBEHAVIOURS[mode] in warnings[0]


def test_every_source_failing_gives_one_line_naming_file_and_each_reason(
    http_mirror, payloads, tmp_path
):
    name = "t10k-labels-idx1-ubyte.gz"
    modes = ["503", "404", "wrong", "html", "stall", "truncated", "redirect-http"]
    with pytest.raises(MnistReproError) as info:
        fetch_all({name: payloads[name]}, [http_mirror.url(m) for m in modes], tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / name}: ")
    tried = message.split(": ", 2)[2].split("; ")  # "<source> (<reason>)" in the order tried
    assert len(tried) == len(modes)
    for entry, mode in zip(tried, modes, strict=True):
        assert entry.startswith(f"{http_mirror.url(mode)} (")
        assert MISBEHAVIOURS[mode] in entry
    assert "MNIST_MIRROR" in message
    assert list(tmp_path.iterdir()) == []  # no partial file and no temp file left behind


def test_retry_with_backoff_then_success_on_the_same_source(http_mirror, payloads, tmp_path):
    http_mirror.fail_first = 2
    name = "train-labels-idx1-ubyte.gz"
    sleeps: list[float] = []
    log = io.StringIO()
    settings = settings_for({name: payloads[name]}, [], retries=3, backoff=0.25)
    source = download.fetch_file(
        settings.files[0],
        tmp_path,
        [http_mirror.url("flaky")],
        settings,
        log=log,
        sleep=sleeps.append,
    )
    assert source == http_mirror.url("flaky")
    assert http_mirror.hits("flaky") == 3
    assert sleeps == [0.25, 0.5]
    warnings = [line for line in log.getvalue().splitlines() if line.startswith("warning:")]
    assert [w.split(": ")[-1] for w in warnings] == [
        "HTTP 503 Service Unavailable; retry 1/2 in 0.25 s",
        "HTTP 503 Service Unavailable; retry 2/2 in 0.5 s",
    ]
    assert_exact_files(tmp_path, {name: payloads[name]})


@pytest.mark.parametrize("mode", ["503", "429", "408", "wrong", "truncated", "html", "drop"])
def test_transient_failures_use_all_retries_before_the_next_source(
    mode, http_mirror, payloads, tmp_path
):
    one = {"train-images-idx3-ubyte.gz": payloads["train-images-idx3-ubyte.gz"]}
    _, log = fetch_all(
        one, [http_mirror.url(mode), http_mirror.url("good")], tmp_path, retries=3, backoff=0.001
    )
    assert [http_mirror.hits(m) for m in (mode, "good")] == [3, 1]
    assert "retry 2/2" in log


@pytest.mark.parametrize("mode", ["404", "403", "410", "redirect-http"])
def test_permanent_failures_are_not_retried(mode, http_mirror, payloads, tmp_path):
    one = {"t10k-labels-idx1-ubyte.gz": payloads["t10k-labels-idx1-ubyte.gz"]}
    _, log = fetch_all(one, [http_mirror.url(mode), http_mirror.url("good")], tmp_path, retries=3)
    assert http_mirror.hits(mode) == 1
    assert "giving up on this source" in log


def test_slow_but_steady_body_is_not_a_timeout(http_mirror, payloads, tmp_path):
    """The timeout bounds silence, not the whole transfer: 10 pieces, 0.05 s apart, timeout 0.3."""
    one = {"train-labels-idx1-ubyte.gz": payloads["train-labels-idx1-ubyte.gz"]}
    http_mirror.slow_pause = 0.05
    result, log = fetch_all(one, [http_mirror.url("slow")], tmp_path, timeout=0.3)
    assert result == dict.fromkeys(one, http_mirror.url("slow"))
    assert "warning" not in log


def test_redirect_to_a_loopback_url_is_followed(http_mirror, payloads, tmp_path):
    result, _ = fetch_all(payloads, [http_mirror.url("redirect-good")], tmp_path)
    assert set(result.values()) == {http_mirror.url("redirect-good")}
    assert_exact_files(tmp_path, payloads)


# --------------------------------------------------------------------------- present files


def test_present_and_correct_files_are_not_fetched(http_mirror, payloads, tmp_path):
    for name, body in payloads.items():
        (tmp_path / name).write_bytes(body)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    # the only source would fail if it were asked
    result, log = fetch_all(payloads, [http_mirror.url("503")], tmp_path)
    assert result == dict.fromkeys(payloads, "present")
    assert http_mirror.requests == []
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert log == ""


def test_only_missing_or_wrong_files_are_fetched(http_mirror, payloads, tmp_path):
    names = list(payloads)
    (tmp_path / names[0]).write_bytes(payloads[names[0]])  # correct
    (tmp_path / names[1]).write_bytes(payloads[names[1]][:-1] + b"!")  # right size, wrong bytes
    result, log = fetch_all(payloads, [http_mirror.url("good")], tmp_path)
    assert result[names[0]] == "present"
    assert http_mirror.requests == [f"/good/{names[1]}", f"/good/{names[2]}"]
    assert f"warning: {tmp_path / names[1]}: SHA-256" in log
    assert_exact_files(tmp_path, payloads)


def test_wrong_file_is_kept_when_no_verified_copy_arrives(http_mirror, payloads, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    (tmp_path / name).write_bytes(b"the user's old bytes")
    with pytest.raises(MnistReproError, match=name):
        fetch_all({name: payloads[name]}, [http_mirror.url("wrong")], tmp_path)
    assert (tmp_path / name).read_bytes() == b"the user's old bytes"
    assert [p.name for p in tmp_path.iterdir()] == [name]


# --------------------------------------------------------------------------- atomicity


class _InterruptAfterFirstChunk:
    def __init__(self, name, total, stream):
        self.calls = 0

    def update(self, nbytes):
        raise KeyboardInterrupt

    def close(self):
        pass


@pytest.mark.parametrize("existing", [None, b"older bytes"])
def test_ctrl_c_mid_download_leaves_no_partial_or_temp_file(
    existing, http_mirror, payloads, tmp_path
):
    name = "train-images-idx3-ubyte.gz"
    if existing is not None:
        (tmp_path / name).write_bytes(existing)
    settings = settings_for({name: payloads[name]}, [])
    with pytest.raises(KeyboardInterrupt):
        download.download_all(
            settings,
            tmp_path,
            [http_mirror.url("good")],
            log=io.StringIO(),
            progress=_InterruptAfterFirstChunk,
        )
    assert http_mirror.hits("good") == 1  # the interrupt came mid-download
    if existing is None:
        assert list(tmp_path.iterdir()) == []
    else:
        assert [p.name for p in tmp_path.iterdir()] == [name]
        assert (tmp_path / name).read_bytes() == existing


def test_crash_in_the_middle_of_writing_leaves_nothing(
    http_mirror, payloads, tmp_path, monkeypatch
):
    name = "train-images-idx3-ubyte.gz"
    real_open = Path.open

    class Boom(Exception):
        pass

    def failing_open(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        if "w" in mode:
            original_write = fh.write

            def write(data):
                original_write(data)
                raise Boom

            fh.write = write
        return fh

    monkeypatch.setattr(Path, "open", failing_open)
    settings = settings_for({name: payloads[name]}, [])
    with pytest.raises(Boom):
        download.download_all(settings, tmp_path, [http_mirror.url("good")], log=io.StringIO())
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


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
    value = {
        "relative folder": "mirror",
        "absolute folder": str(local_mirror),
        "file URL": local_mirror.as_uri(),
    }[form]
    monkeypatch.setenv("MNIST_MIRROR", value)
    params = params_yaml(tmp_path / "params.yaml", payloads, [http_mirror.url("503")])
    assert cli.main(["download", "--params", str(params), "--out", "data/raw"]) == 0
    assert_exact_files(tmp_path / "data/raw", payloads)
    assert http_mirror.requests == []


def test_local_mirror_missing_a_file_falls_back_without_retry(
    local_mirror, http_mirror, payloads, tmp_path
):
    (local_mirror / "train-labels-idx1-ubyte.gz").unlink()
    settings = settings_for(payloads, [], retries=3)
    sources = download.resolve_sources([http_mirror.url("good")], str(local_mirror))
    log = io.StringIO()
    download.download_all(settings, tmp_path / "raw", sources, log=log)
    assert http_mirror.requests == ["/good/train-labels-idx1-ubyte.gz"]
    assert "train-labels-idx1-ubyte.gz from file://" in log.getvalue()
    assert "not found; giving up on this source" in log.getvalue()
    assert_exact_files(tmp_path / "raw", payloads)


# --------------------------------------------------------------------------- CLI and progress


def test_cli_mirror_first_then_params_order(http_mirror, payloads, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", http_mirror.url("500"))
    params = params_yaml(
        tmp_path / "params.yaml", payloads, [http_mirror.url("404"), http_mirror.url("good")]
    )
    assert cli.main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 0
    order = [path.split("/")[1] for path in http_mirror.requests]
    assert order == ["500", "404", "good"] * len(payloads)


def test_cli_failure_exits_non_zero_with_one_line(http_mirror, payloads, tmp_path):
    params = params_yaml(tmp_path / "params.yaml", payloads, [http_mirror.url("503")])
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("MNIST_MIRROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_repro", "download", "--params", str(params), "--out", "raw"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [proc.stderr.splitlines()[-1]]
    assert "raw/train-images-idx3-ubyte.gz" in errors[0]
    assert f"{http_mirror.url('503')} (HTTP 503 Service Unavailable)" in errors[0]
    assert list((tmp_path / "raw").iterdir()) == []


def test_cli_refuses_insecure_mirror_before_any_request(
    http_mirror, payloads, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MNIST_MIRROR", "http://mirror.example/mnist/")
    params = params_yaml(tmp_path / "params.yaml", payloads, [http_mirror.url("good")])
    assert cli.main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST_MIRROR=http://mirror.example/mnist/: plain http is refused")
    assert err.count("\n") == 1
    assert http_mirror.requests == []


def test_plain_lines_are_sparse():
    now = [0.0]
    out = io.StringIO()
    progress = download.LineProgress("f.gz", 1000, out, clock=lambda: now[0], min_interval=5.0)
    for _ in range(1000):  # 1 byte per call, 0.1 s apart: 100 s in all
        now[0] += 0.1
        progress.update(1)
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 9  # at most one per 10 % step, none for 100 % (the caller says so)
    assert lines[0].startswith("download: f.gz 10% (")
    assert all("B/s)" in line for line in lines)


def test_fast_transfer_prints_no_progress_lines():
    out = io.StringIO()
    progress = download.LineProgress("f.gz", 1000, out, clock=lambda: 0.0)
    for _ in range(10):
        progress.update(100)
    assert out.getvalue() == ""


def test_progress_bar_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    from tqdm import tqdm

    bar = download.make_progress("f.gz", 10, Terminal())
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(download.make_progress("f.gz", 10, io.StringIO()), download.LineProgress)


def test_local_write_failure_is_one_clear_error_not_a_retry(
    http_mirror, payloads, tmp_path, monkeypatch
):
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(download.os, "fsync", disk_full)
    with pytest.raises(
        MnistReproError, match=r"train-images-idx3-ubyte.gz: cannot write \(No space"
    ):
        fetch_all(payloads, [http_mirror.url("good"), http_mirror.url("good")], tmp_path, retries=3)
    assert http_mirror.hits("good") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_out_must_be_a_folder(http_mirror, payloads, tmp_path, capsys):
    params = params_yaml(tmp_path / "params.yaml", payloads, [http_mirror.url("good")])
    (tmp_path / "raw").write_text("not a folder")
    assert cli.main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'raw'}: exists and is not a folder\n"
    assert http_mirror.requests == []


def test_partial_download_left_by_a_killed_run_is_removed(tmp_path, http_mirror):
    # SIGKILL cannot clean up; the next run must not leave the leftover inside data/raw.
    payloads = {"a.gz": b"A" * 1000}
    http_mirror.files = payloads
    out = tmp_path / "raw"
    out.mkdir()
    (out / ".a.gz.k1ll3d.tmp").write_bytes(b"A" * 400)
    _, log = fetch_all(payloads, [http_mirror.url("good")], out)
    assert_exact_files(out, payloads)
    assert ".a.gz.k1ll3d.tmp: removed a partial download" in log
