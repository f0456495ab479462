"""Stage ``download``: fetch the four MNIST idx .gz files and verify their pinned SHA-256 and size.

HTTP is requests (redirects, streaming, timeouts) with urllib3's ``Retry`` as the retry policy
(which statuses, how many attempts, the backoff); this module holds only the project's policy:

- sources in order: ``MNIST_MIRROR`` (https URL, ``file://`` URL or local folder), then
  ``params.yaml: download.sources``; each gets ``download.retries`` attempts, except a local
  mirror (a bad local file cannot change) and a permanent failure (HTTP 4xx other than
  408/425/429, a refused redirect, a source slower than ``download.deadline``);
- HTTPS only, every redirect hop included; plain http only to loopback hosts (test servers);
- an HTML page is never the file; the size and SHA-256 pins decide, and a file is renamed
  into place only once they match (no partial file under its final name, ever).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
from urllib3.util.retry import Retry

from mnist_repro import log, params, paths
from mnist_repro.atomic import atomic_path, remove_stale_temps
from mnist_repro.errors import MnistReproError
from mnist_repro.params import Integral, Interval, ListOf, MapOf, Pattern, Real
from mnist_repro.provenance import sha256_file

MIRROR_ENV = "MNIST_MIRROR"
CHUNK_SIZE = 64 * 1024
PROGRESS_EVERY = 10.0  # seconds between progress lines of one file
RETRY_STATUSES = frozenset({408, 425, 429, *range(500, 600)})
LOG = log.get("download")


class AllowedURL(Pattern):
    """A source URL: https, ``file://`` (local path) or http to a loopback host."""

    def __init__(self) -> None:
        super().__init__(r"\S+", "an https URL, a file:// URL, or http to a loopback host")

    def is_satisfied_by(self, value: Any) -> bool:
        return super().is_satisfied_by(value) and url_problem(value) is None


SPEC = {
    "sources": [ListOf(AllowedURL(), min_len=0)],
    "files": MapOf(
        Pattern(r"(?!\.\.?$)[^/\\\x00]+", "a plain file name"),
        {
            "sha256": [Pattern(r"[0-9a-f]{64}", "64 lower-case hex digits")],
            "size": [Interval(Integral, 0, 2**40)],
        },
    ),
    "timeout": [Interval(Real, 0, 3600, closed="right")],
    "deadline": [Interval(Real, 0, 86400, closed="right")],
    "retries": [Interval(Integral, 1, 100)],
    "backoff": [Interval(Real, 0, 3600)],
}


@dataclass(frozen=True)
class FileSpec:
    """A file to fetch and the pinned facts that prove it is the right one."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Settings:
    """The checked ``download`` section of params.yaml."""

    sources: tuple[str, ...]
    files: tuple[FileSpec, ...]
    timeout: float  # seconds without a byte
    deadline: float  # seconds one attempt at one file may take in all
    retries: int  # attempts per source
    backoff: float  # urllib3 backoff_factor

    def retry_policy(self) -> Retry:
        return Retry(total=self.retries - 1, backoff_factor=self.backoff)


class AttemptFailed(Exception):
    """One attempt at one source failed; ``reason`` is a short phrase for the user."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.retry = reason, retry


def load_settings(path: str | os.PathLike[str] = paths.PARAMS) -> Settings:
    """The ``download`` section of ``path``, checked (a one-line error naming the key)."""
    section = params.load("download", SPEC, path)
    files = tuple(FileSpec(name, **pin) for name, pin in section.pop("files").items())
    section["sources"] = tuple(section["sources"])
    return Settings(files=files, **section)


# --------------------------------------------------------------------------- sources


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why ``url`` may not be a source, or None: https, file, or http to a loopback host."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        return None if parts.hostname else "URL has no host"
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return "file:// URL must name a local path (file:///abs/path)"
        return None
    if scheme == "http":
        if is_loopback(parts.hostname):
            return None
        return (
            "plain http is refused, use https, a file:// URL or a local folder "
            "(http is allowed only for loopback hosts)"
        )
    return f"unsupported URL scheme {scheme!r} (use https, file:// or a local folder)"


def mirror_source(value: str, cwd: str | os.PathLike[str] = ".") -> str:
    """Turn an ``MNIST_MIRROR`` value (URL or local folder) into a base URL ending in ``/``."""
    if "://" in value:
        if problem := url_problem(value):
            raise MnistReproError(f"{MIRROR_ENV}={value}: {problem}")
        return with_slash(value)
    folder = (Path(cwd) / Path(value).expanduser()).resolve()
    if not folder.is_dir():
        raise MnistReproError(f"{MIRROR_ENV}={value}: no such folder ({folder})")
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


def is_local(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.lower() == "file"


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


def body_problem(spec: FileSpec, received: int, sha256: str, head: bytes) -> str | None:
    """Why a received body is not the pinned file, or None if it is."""
    if (received, sha256) == (spec.size, spec.sha256):
        return None
    if head.lstrip()[:64].lower().startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        return "got an HTML page, not the file"
    if received > spec.size:
        return f"body longer than the expected {spec.size} bytes"
    if received < spec.size:
        return f"truncated: {received} of {spec.size} bytes"
    return f"SHA-256 mismatch (got {sha256[:12]}..., expected {spec.sha256[:12]}...)"


# --------------------------------------------------------------------------- one attempt


def check_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """requests response hook: refuse a redirect hop to anything but an allowed network URL."""
    if not response.is_redirect:
        return
    target = urllib.parse.urljoin(response.url, response.headers["location"])
    problem = "a server may not redirect to a local file" if is_local(target) else None
    if problem := problem or url_problem(target):
        raise AttemptFailed(f"refused redirect to {target}: {problem}", retry=False)


def network_reason(exc: Exception, timeout: float, otherwise: str) -> str:
    """A short phrase for a failure below HTTP: a timeout, or ``otherwise``."""
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        return f"timed out: no data for {timeout:g} s"
    return otherwise


def http_chunks(
    session: requests.Session, url: str, size: int, settings: Settings
) -> Iterator[bytes]:
    """The body of ``url`` in chunks as they arrive (``size``: the pinned size)."""
    try:
        response = session.get(url, stream=True, timeout=settings.timeout, hooks=HOOKS)
    except requests.RequestException as exc:
        otherwise = "connection failed" if isinstance(exc, requests.ConnectionError) else str(exc)
        raise AttemptFailed(network_reason(exc, settings.timeout, otherwise)) from None
    with response:
        if response.status_code >= 400:
            retry = response.status_code in RETRY_STATUSES
            raise AttemptFailed(f"HTTP {response.status_code} {response.reason}", retry=retry)
        if response.headers.get("Content-Type", "").split(";")[0].strip() == "text/html":
            raise AttemptFailed("got an HTML page (text/html), not the file")
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) != size:
            raise AttemptFailed(f"wrong size: {announced} bytes announced, expected {size}")
        received = 0
        while True:
            try:  # read1: whatever has arrived, so the deadline is checked as bytes trickle in
                chunk = response.raw.read1(CHUNK_SIZE, decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                dropped = f"connection dropped after {received} of {size} bytes"
                raise AttemptFailed(network_reason(exc, settings.timeout, dropped)) from None
            if not chunk:
                return
            received += len(chunk)
            yield chunk


def file_chunks(url: str) -> Iterator[bytes]:
    """The bytes of a ``file://`` URL; any problem is permanent (the file will not change)."""
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                yield chunk
    except FileNotFoundError:
        raise AttemptFailed("not found", retry=False) from None
    except OSError as exc:
        raise AttemptFailed(f"cannot read {path}: {exc.strerror}", retry=False) from None


def save_verified(chunks: Iterator[bytes], dest: Path, spec: FileSpec, settings: Settings) -> None:
    """Write ``chunks`` to ``dest``; raise AttemptFailed unless they are the pinned file."""
    digest, received, head = hashlib.sha256(), 0, b""
    started = last_line = time.monotonic()
    with dest.open("wb") as out:
        for chunk in chunks:
            head += chunk[: max(512 - len(head), 0)]
            received += len(chunk)
            if received > spec.size:
                break  # no need to read the rest of a wrong body
            digest.update(chunk)
            out.write(chunk)
            now = time.monotonic()
            if now - started > settings.deadline:
                raise AttemptFailed(
                    f"too slow: {received} of {spec.size} bytes after {settings.deadline:g} s "
                    "(download.deadline)",
                    retry=False,
                )
            if now - last_line >= PROGRESS_EVERY:
                last_line = now
                LOG.info("%s: %.1f of %.1f MiB", spec.name, received / 2**20, spec.size / 2**20)
        out.flush()
        os.fsync(out.fileno())
    if problem := body_problem(spec, received, digest.hexdigest(), head):
        raise AttemptFailed(problem)


def attempt(session: requests.Session, spec: FileSpec, final: Path, source: str, settings) -> None:
    """One download of ``spec`` from ``source`` into ``final``, via a verified temp file."""
    url = file_url(source, spec.name)
    LOG.info("%s from %s", spec.name, source)
    started = time.monotonic()
    chunks = file_chunks(url) if is_local(url) else http_chunks(session, url, spec.size, settings)
    with atomic_path(final) as tmp:
        save_verified(chunks, tmp, spec, settings)
    seconds = time.monotonic() - started
    LOG.info("%s verified (SHA-256, %.1f MiB in %.1f s)", spec.name, spec.size / 2**20, seconds)


HOOKS = {"response": [check_redirect]}


# --------------------------------------------------------------------------- sources and files


def fetch_from(
    session: requests.Session, spec: FileSpec, final: Path, source: str, settings: Settings
) -> str | None:
    """Attempts at one source as urllib3's ``Retry`` allows (one for a local mirror); None
    once ``final`` holds the verified file, else the last failure's reason."""
    policy = settings.retry_policy() if not is_local(source) else Retry(total=0)
    while True:
        try:
            attempt(session, spec, final, source, settings)
            return None
        except AttemptFailed as exc:
            where = f"{spec.name} from {source}: {exc.reason}"
            try:
                policy = policy.increment("GET", source, error=exc) if exc.retry else None
            except urllib3.exceptions.MaxRetryError:
                policy = None
            if policy is None:
                LOG.warning("%s; giving up on this source", where)
                return exc.reason
            delay = policy.get_backoff_time()
            LOG.warning(
                "%s; retry %d/%d in %g s", where, len(policy.history), settings.retries - 1, delay
            )
            policy.sleep()


def fetch_file(
    session: requests.Session, spec: FileSpec, out_dir: Path, sources: Sequence[str], settings
) -> str:
    """Put a verified ``spec.name`` into ``out_dir``; return the source it came from.

    Raises MnistReproError naming the file and each source's last reason if none delivers.
    """
    final = out_dir / spec.name
    failures = []
    for source in sources:
        reason = fetch_from(session, spec, final, source, settings)
        if reason is None:
            return source
        failures.append(f"{source} ({reason})")
    tried = "; ".join(failures) or "no sources configured"
    raise MnistReproError(
        f"{final}: could not download a copy matching the pinned SHA-256 from any source: "
        f"{tried}. Set {MIRROR_ENV} to a folder or URL that holds the file."
    )


def download_all(settings: Settings, out_dir: Path, sources: Sequence[str]) -> dict[str, str]:
    """Make every pinned file present and verified; return ``{name: "present" | source}``.

    A file already present with the right size and SHA-256 is left alone (no network).
    A wrong file under the final name is replaced only by a verified download.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MnistReproError(f"{out_dir}: exists and is not a folder")
    result = {}
    with requests.Session() as session:
        session.headers.update({"User-Agent": "mnist-repro", "Accept-Encoding": "identity"})
        for spec in settings.files:
            for stale in remove_stale_temps(out_dir / spec.name):
                LOG.warning("%s: removed a partial download left by an interrupted run", stale)
            problem = check_file(out_dir / spec.name, spec)
            if problem is None:
                result[spec.name] = "present"
                continue
            if problem != "missing":
                LOG.warning("%s: %s; fetching a verified copy", out_dir / spec.name, problem)
            result[spec.name] = fetch_file(session, spec, out_dir, sources, settings)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=paths.RAW, help="folder for the files (%(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.params)
    sources = resolve_sources(settings.sources, os.environ.get(MIRROR_ENV))
    result = download_all(settings, args.out, sources)
    fetched = sum(v != "present" for v in result.values())
    LOG.info(
        "%d files verified in %s (%d fetched, %d already present)",
        len(result), args.out, fetched, len(result) - fetched,
    )  # fmt: skip
    return 0
