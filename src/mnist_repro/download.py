"""Stage ``download``: fetch the four MNIST idx .gz files and verify their pinned SHA-256 and size.

Sources are tried in order: ``MNIST_MIRROR`` (an https URL, a ``file://`` URL or a local
folder) when set, then ``params.yaml: download.sources``. Each source gets up to
``download.retries`` attempts with exponential backoff; a permanent failure (HTTP 4xx other
than 408/425/429, an insecure redirect, a missing local file) moves on to the next source at
once. A body is streamed into a temporary file beside its final name and renamed only after
its size and SHA-256 match, so an interrupted run never leaves a partial file behind.

Only HTTPS is allowed on the network; plain ``http://`` is refused except for loopback hosts
(local test servers).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import ipaddress
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from mnist_repro.atomic import atomic_path, remove_stale_temps
from mnist_repro.errors import MnistReproError
from mnist_repro.params import load_section
from mnist_repro.provenance import sha256_file

MIRROR_ENV = "MNIST_MIRROR"
CHUNK_SIZE = 64 * 1024
# HTTP client errors that another attempt at the same source may cure.
RETRYABLE_4XX = frozenset({408, 425, 429})
USER_AGENT = "mnist-repro-download"


@dataclass(frozen=True)
class FileSpec:
    """A file to fetch and the pinned facts that prove it is the right one."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Settings:
    """The validated ``download`` section of params.yaml."""

    sources: tuple[str, ...]
    files: tuple[FileSpec, ...]
    timeout: float
    retries: int
    backoff: float


class AttemptFailed(Exception):
    """One attempt at one source failed; ``reason`` is a short phrase for the user."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


# --------------------------------------------------------------------------- settings


def parse_settings(section: Mapping[str, Any], where: str = "params.yaml") -> Settings:
    """Validate the ``download`` section; errors name the offending key."""

    def fail(key: str, problem: str) -> MnistReproError:
        return MnistReproError(f"{where}: download.{key} {problem}")

    sources = section.get("sources")
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise fail("sources", "must be a list of URLs")
    files = section.get("files")
    if not isinstance(files, dict) or not files:
        raise fail("files", "must map file names to {sha256, size}")
    specs = []
    for name, pin in files.items():
        sha = pin.get("sha256") if isinstance(pin, dict) else None
        size = pin.get("size") if isinstance(pin, dict) else None
        if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
            raise fail(f"files.{name}.sha256", "must be 64 lower-case hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise fail(f"files.{name}.size", "must be a non-negative integer")
        if "/" in name or name in ("", ".", ".."):
            raise fail(f"files.{name}", "must be a plain file name")
        specs.append(FileSpec(name, sha, size))
    numbers = {}
    for key, low in (("timeout", 0.0), ("retries", 1), ("backoff", 0.0)):
        value = section.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < low:
            raise fail(key, f"must be a number >= {low}")
        numbers[key] = value
    if numbers["timeout"] <= 0:
        raise fail("timeout", "must be > 0 seconds")
    if not isinstance(numbers["retries"], int):
        raise fail("retries", "must be a whole number of attempts")
    for i, source in enumerate(sources):
        try:
            check_url_allowed(source)
        except ValueError as exc:
            raise fail(f"sources[{i}]", f"{source!r}: {exc}") from None
    return Settings(
        sources=tuple(sources),
        files=tuple(specs),
        timeout=float(numbers["timeout"]),
        retries=numbers["retries"],
        backoff=float(numbers["backoff"]),
    )


# --------------------------------------------------------------------------- sources


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url_allowed(url: str) -> None:
    """Raise ValueError unless ``url`` is https, file, or http to a loopback host."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        if not parts.hostname:
            raise ValueError("URL has no host")
        return
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("file:// URL must name a local path (file:///abs/path)")
        return
    if scheme == "http":
        if is_loopback(parts.hostname):
            return
        raise ValueError(
            "plain http is refused, use https, a file:// URL or a local folder "
            "(http is allowed only for loopback hosts)"
        )
    raise ValueError(f"unsupported URL scheme {scheme!r} (use https, file:// or a local folder)")


def mirror_source(value: str, cwd: str | os.PathLike[str] = ".") -> str:
    """Turn an ``MNIST_MIRROR`` value (URL or local folder) into a base URL ending in ``/``."""
    where = f"{MIRROR_ENV}={value}"
    if "://" in value:
        try:
            check_url_allowed(value)
        except ValueError as exc:
            raise MnistReproError(f"{where}: {exc}") from None
        return with_slash(value)
    folder = (Path(cwd) / Path(value).expanduser()).resolve()
    if not folder.is_dir():
        raise MnistReproError(f"{where}: no such folder ({folder})")
    return with_slash(folder.as_uri())


def resolve_sources(
    params_sources: Sequence[str], mirror: str | None, cwd: str | os.PathLike[str] = "."
) -> list[str]:
    """Base URLs in the order they are tried: the mirror (if any), then params order."""
    ordered = [mirror_source(mirror, cwd)] if mirror else []
    ordered += [with_slash(s) for s in params_sources]
    return list(dict.fromkeys(ordered))  # drop repeats, keep the first position


def with_slash(base: str) -> str:
    return base if base.endswith("/") else base + "/"


def file_url(base: str, name: str) -> str:
    """The URL of ``name`` under the base URL ``base``."""
    return with_slash(base) + urllib.parse.quote(name)


def backoff_delays(attempts: int, backoff: float) -> list[float]:
    """Seconds to wait before attempt 2, 3, ...: ``backoff``, doubling each time."""
    return [backoff * 2**i for i in range(max(attempts - 1, 0))]


# --------------------------------------------------------------------------- verification


def check_file(path: Path, spec: FileSpec) -> str | None:
    """Why ``path`` is not the pinned file, or None if it is (size first: it is cheap)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size != spec.size:
        return f"size {size} bytes, expected {spec.size}"
    digest = sha256_file(path)
    if digest != spec.sha256:
        return f"SHA-256 {digest[:12]}..., expected {spec.sha256[:12]}..."
    return None


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body"))


# --------------------------------------------------------------------------- one attempt


class Progress(Protocol):
    def update(self, nbytes: int) -> None: ...
    def close(self) -> None: ...


class _SecureRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to URLs that :func:`check_url_allowed` accepts (no https->http)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        try:
            if urllib.parse.urlsplit(newurl).scheme.lower() == "file":
                raise ValueError("a server may not redirect to a local file")
            check_url_allowed(newurl)
        except ValueError as exc:
            raise AttemptFailed(f"refused redirect to {newurl}: {exc}", retry=False) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SecureRedirects)


def open_source(url: str, timeout: float) -> tuple[IO[bytes], int | None, str]:
    """Open ``url``; return (stream, announced length or None, content type)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.request.url2pathname(parts.path))
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            raise AttemptFailed("not found", retry=False) from None
        except OSError as exc:
            raise AttemptFailed(f"cannot read {path}: {exc.strerror}", retry=False) from None
        return stream, os.fstat(stream.fileno()).st_size, ""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        retry = exc.code >= 500 or exc.code in RETRYABLE_4XX
        raise AttemptFailed(f"HTTP {exc.code} {exc.reason}", retry=retry) from None
    except urllib.error.URLError as exc:
        raise AttemptFailed(network_reason(exc.reason, timeout)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise AttemptFailed(network_reason(exc, timeout)) from None
    length = response.headers.get("Content-Length")
    announced = int(length) if length and length.isdigit() else None
    return response, announced, response.headers.get_content_type()


def network_reason(error: object, timeout: float) -> str:
    """A short phrase for a socket-level failure."""
    if isinstance(error, TimeoutError):
        return f"timed out: no data for {timeout:g} s"
    if isinstance(error, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "connection dropped"
    if isinstance(error, http.client.IncompleteRead | http.client.RemoteDisconnected):
        return "connection dropped"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host: {str(error.strerror).lower()}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def read_chunks(stream: IO[bytes], timeout: float) -> Iterator[bytes]:
    """Yield the body in chunks, turning socket errors into AttemptFailed."""
    while True:
        try:
            chunk = stream.read(CHUNK_SIZE)
        except (OSError, http.client.HTTPException) as exc:
            raise AttemptFailed(network_reason(exc, timeout)) from None
        if not chunk:
            return
        yield chunk


def fetch_once(url: str, dest: Path, spec: FileSpec, timeout: float, progress: Progress) -> None:
    """Stream ``url`` into ``dest`` and check its size and SHA-256; raise AttemptFailed if not.

    ``timeout`` bounds each wait for data (a stall), not the whole transfer.
    """
    stream, announced, content_type = open_source(url, timeout)
    with stream:
        if content_type == "text/html":
            raise AttemptFailed("got an HTML page (text/html), not the file")
        if announced is not None and announced != spec.size:
            raise AttemptFailed(f"wrong size: {announced} bytes announced, expected {spec.size}")
        digest, received, head = hashlib.sha256(), 0, b""
        with dest.open("wb") as out:
            for chunk in read_chunks(stream, timeout):
                head += chunk[: max(512 - len(head), 0)]
                received += len(chunk)
                if received > spec.size:
                    break  # no need to read the rest of a wrong body
                digest.update(chunk)
                out.write(chunk)
                progress.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    problem = body_problem(spec, received, digest.hexdigest(), head, announced)
    if problem:
        raise AttemptFailed(problem)


def body_problem(
    spec: FileSpec, received: int, sha256: str, head: bytes, announced: int | None = None
) -> str | None:
    """Why a received body is not the pinned file, or None if it is."""
    if (received, sha256) == (spec.size, spec.sha256):
        return None
    if looks_like_html(head):
        return "got an HTML page, not the file"
    if received > spec.size:
        return f"body longer than the expected {spec.size} bytes"
    if announced is not None and received < announced:
        return f"connection dropped after {received} of {announced} bytes"
    if received < spec.size:
        return f"truncated: {received} of {spec.size} bytes"
    return f"SHA-256 mismatch (got {sha256[:12]}..., expected {spec.sha256[:12]}...)"


# --------------------------------------------------------------------------- progress


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class LineProgress:
    """Sparse plain lines for logs: at most one per 10 % step and ``min_interval`` seconds."""

    def __init__(
        self,
        name: str,
        total: int,
        stream: IO[str],
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 5.0,
    ) -> None:
        self.name, self.total, self.stream, self.clock = name, total, stream, clock
        self.min_interval = min_interval
        self.start = self.last = clock()
        self.done = 0
        self.step = 0  # the last 10 % step reported

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        step = self.done * 10 // self.total if self.total else 10
        now = self.clock()
        if step > self.step and step < 10 and now - self.last >= self.min_interval:
            self.step, self.last = step, now
            rate = self.done / max(now - self.start, 1e-9)
            print(
                f"download: {self.name} {step * 10}% "
                f"({human_bytes(self.done)} of {human_bytes(self.total)}, {human_bytes(rate)}/s)",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        pass


def make_progress(name: str, total: int, stream: IO[str]) -> Progress:
    """A tqdm bar (bytes and rate) on a terminal, sparse plain lines otherwise."""
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(
            total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
            file=stream, leave=False, dynamic_ncols=True,
        )  # fmt: skip
    return LineProgress(name, total, stream)


# --------------------------------------------------------------------------- retry loop

ProgressFactory = Callable[[str, int, IO[str]], Progress]


def fetch_file(
    spec: FileSpec,
    out_dir: Path,
    sources: Sequence[str],
    settings: Settings,
    *,
    progress: ProgressFactory = make_progress,
    log: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Put a verified ``spec.name`` into ``out_dir``; return the source it came from.

    Raises MnistReproError naming the file and each source's last reason if no source
    delivers the pinned bytes.
    """
    log = log or sys.stderr
    final = out_dir / spec.name
    failures = []
    for source in sources:
        reason = try_source(spec, final, source, settings, progress, log, sleep)
        if reason is None:
            return source
        failures.append(f"{source} ({reason})")
    tried = "; ".join(failures) or "no sources configured"
    raise MnistReproError(
        f"{final}: could not download a copy matching the pinned SHA-256 from any source: "
        f"{tried}. Set {MIRROR_ENV} to a folder or URL that holds the file."
    )


def try_source(
    spec: FileSpec,
    final: Path,
    source: str,
    settings: Settings,
    progress: ProgressFactory,
    log: IO[str],
    sleep: Callable[[float], None],
) -> str | None:
    """Up to ``settings.retries`` attempts at one source, with exponential backoff.

    Returns None once ``final`` holds the verified file, else the last failure's reason.
    A permanent failure (``AttemptFailed.retry`` false) ends the tries at once.
    """
    delays = backoff_delays(settings.retries, settings.backoff)
    for attempt in range(1, settings.retries + 1):
        try:
            attempt_once(spec, final, source, settings.timeout, progress, log)
            return None
        except AttemptFailed as exc:
            where = f"{spec.name} from {source}: {exc.reason}"
            if not exc.retry or attempt == settings.retries:
                warn(log, f"{where}; giving up on this source")
                return exc.reason
            delay = delays[attempt - 1]
            warn(log, f"{where}; retry {attempt}/{settings.retries - 1} in {delay:g} s")
            sleep(delay)
    raise AssertionError("unreachable: settings.retries >= 1")


def attempt_once(
    spec: FileSpec,
    final: Path,
    source: str,
    timeout: float,
    progress: ProgressFactory,
    log: IO[str],
) -> None:
    """One download of ``spec`` from ``source`` into ``final``, via a verified temp file."""
    print(f"download: {spec.name} from {source}", file=log, flush=True)
    started = time.monotonic()
    bar = progress(spec.name, spec.size, log)
    try:
        with atomic_path(final) as tmp:
            fetch_once(file_url(source, spec.name), tmp, spec, timeout, bar)
    except OSError as exc:  # network errors are AttemptFailed by now: this is the local disk
        raise MnistReproError(f"{final}: cannot write ({exc.strerror or exc})") from None
    finally:
        bar.close()
    seconds = time.monotonic() - started
    print(
        f"download: {spec.name} verified (SHA-256, {human_bytes(spec.size)} in {seconds:.1f} s)",
        file=log,
        flush=True,
    )


def warn(log: IO[str], message: str) -> None:
    print(f"warning: {message}", file=log, flush=True)


def download_all(
    settings: Settings,
    out_dir: Path,
    sources: Sequence[str],
    *,
    log: IO[str] | None = None,
    **fetch_kwargs: Any,
) -> dict[str, str]:
    """Make every pinned file present and verified; return ``{name: "present" | source}``.

    A file already present with the right size and SHA-256 is left alone (no network).
    A wrong file under the final name is replaced only by a verified download.
    """
    log = log or sys.stderr
    result = {}
    for spec in settings.files:
        for stale in remove_stale_temps(out_dir / spec.name):
            warn(log, f"{stale}: removed a partial download left by an interrupted run")
        problem = check_file(out_dir / spec.name, spec)
        if problem is None:
            result[spec.name] = "present"
            continue
        if problem != "missing":
            warn(log, f"{out_dir / spec.name}: {problem}; fetching a verified copy")
        result[spec.name] = fetch_file(spec, out_dir, sources, settings, log=log, **fetch_kwargs)
    return result


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("data/raw"), help="folder for the files (%(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(load_section("download", args.params), str(args.params))
    sources = resolve_sources(settings.sources, os.environ.get(MIRROR_ENV))
    if args.out.exists() and not args.out.is_dir():
        raise MnistReproError(f"{args.out}: exists and is not a folder")
    result = download_all(settings, args.out, sources)
    fetched = sum(v != "present" for v in result.values())
    print(
        f"download: {len(result)} files verified in {args.out} "
        f"({fetched} fetched, {len(result) - fetched} already present)",
        file=sys.stderr,
    )
    return 0
