"""Install, start and stop Azurite, Microsoft's Azure Storage emulator, for the storage tests.

Azurite comes from the npm registry, pinned with integrity hashes by
``tools/azurite-npm/package-lock.json``, and is installed once (``npm ci``) into a cache
folder outside the repository: ``$MNIST_REPRO_AZURITE_HOME``, else
``${XDG_CACHE_HOME:-~/.cache}/mnist-repro/azurite``. ``make test-storage`` and
``make bench-storage`` install it first::

    python tools/azurite.py install

The storage tests (tests/test_storage_azurite.py) and tools/bench/bench_storage.py import it.

Each :class:`Azurite` runs ``azurite-blob`` on a free port of 127.0.0.1 with its own data
folder and is stopped by its pid. The account is the emulator's well-known development
account (public, documented by Microsoft), so no real credential exists anywhere here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

NPM_DIR = Path(__file__).resolve().parent / "azurite-npm"
PACKAGE_FILES = ("package.json", "package-lock.json")

# The emulator's fixed development account, documented by Microsoft for Azurite.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def pinned_version() -> str:
    """The Azurite version that ``package-lock.json`` pins."""
    lock = json.loads((NPM_DIR / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"]["node_modules/azurite"]["version"]


def missing_tools() -> str | None:
    """Why Azurite cannot run here (``None`` when node and npm are both on PATH)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH: install Node.js 20+ to run Azurite"
    return None


def cache_dir() -> Path:
    """Where Azurite is installed: outside the repository, kept between runs."""
    if home := os.environ.get("MNIST_REPRO_AZURITE_HOME"):
        return Path(home)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-repro" / "azurite"


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in PACKAGE_FILES:
        digest.update((NPM_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def install_dir() -> Path:
    """The folder of this exact lock file's install (a new lock installs beside the old)."""
    return cache_dir() / f"azurite-{pinned_version()}-{_lock_digest()}"


def blob_executable() -> Path:
    return install_dir() / "node_modules" / ".bin" / "azurite-blob"


def is_installed() -> bool:
    return (install_dir() / ".installed").is_file() and blob_executable().exists()


def ensure_installed(log: IO[str] = sys.stderr) -> Path:
    """Install the pinned Azurite with ``npm ci`` unless already there; return azurite-blob.

    ``npm ci`` checks every package against the lock file's integrity hash. Install
    scripts are not run (Azurite needs none). The install goes to a temporary folder
    that is renamed into place, under a file lock, so an interrupted or concurrent
    install never leaves a half-installed cache.
    """
    if reason := missing_tools():
        raise RuntimeError(reason)
    if is_installed():
        return blob_executable()
    final = install_dir()
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / ".install.lock", "w") as lock_fh:
        fcntl.flock(lock_fh, fcntl.LOCK_EX)
        if is_installed():
            return blob_executable()
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=final.parent))
        try:
            for name in PACKAGE_FILES:
                shutil.copy2(NPM_DIR / name, staging / name)
            print(
                f"Installing Azurite {pinned_version()} (npm ci) into {final} ...",
                file=log,
                flush=True,
            )
            started = time.monotonic()
            proc = subprocess.run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"npm ci for Azurite failed (exit {proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}"
                )
            (staging / ".installed").write_text(pinned_version() + "\n", encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
            print(f"Installed Azurite in {time.monotonic() - started:.0f} s", file=log, flush=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return blob_executable()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection_string(port: int) -> str:
    """The connection string of the emulator's account on ``127.0.0.1:port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def _end_with_parent() -> None:
    """In the child: on Linux, get SIGTERM when the test process dies, however it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class _PortTaken(RuntimeError):
    pass


class Azurite:
    """One ``azurite-blob`` process on 127.0.0.1, its data in ``location``.

    ``start()`` waits until it answers HTTP; ``stop()`` ends it by its pid (SIGTERM, then
    SIGKILL), ``kill()`` ends it at once, as a crash would. ``start()`` again reuses the
    same port and data folder, so the blobs written before survive a restart.
    """

    def __init__(self, location: str | os.PathLike[str], port: int | None = None) -> None:
        self.location = Path(location)
        self.port = port or free_port()
        self._may_move = port is None  # a port we picked may be taken before Azurite binds it
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.location.parent / f"{self.location.name}.azurite.log"
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def start(self, timeout: float = 30.0) -> Azurite:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"Azurite already runs as pid {self.process.pid}")
        self.location.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._spawn()
            try:
                self._wait_ready(timeout)
            except _PortTaken:
                if not self._may_move or attempt == 2:
                    raise
                self.port = free_port()
                continue
            self._may_move = False  # restarts keep the port the clients know
            return self
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        cmd = [
            str(ensure_installed()),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--location", str(self.location),
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--loose",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_end_with_parent,
            )

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                error = _PortTaken if "EADDRINUSE" in self.log_text() else RuntimeError
                raise error(
                    f"Azurite exited with {self.process.returncode} before answering; "
                    f"its log:\n{self.log_text()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", f"/{ACCOUNT}?comp=list")
                    conn.getresponse().read()  # any status (403 without a key) means it serves
                    return
                finally:
                    conn.close()
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"Azurite did not answer within {timeout:.0f} s")
            time.sleep(0.2)

    def log_text(self) -> str:
        """What the current (or last) Azurite process wrote to its log."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")

    def _end(self, sig: signal.Signals, grace: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, sig)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """End Azurite by its pid: SIGTERM, SIGKILL after 10 s."""
        self._end(signal.SIGTERM, grace=10)

    def kill(self) -> None:
        """End Azurite by its pid at once (SIGKILL), like a crash or a lost connection."""
        self._end(signal.SIGKILL, grace=10)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # Blob API helpers (azure-storage-blob comes with dvc-azure).
    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, name: str) -> None:
        self.service().create_container(name)

    def blob_names(self, container: str, prefix: str = "") -> list[str]:
        client = self.service().get_container_client(container)
        return sorted(blob.name for blob in client.list_blobs(name_starts_with=prefix))

    def delete_blob(self, container: str, name: str) -> None:
        self.service().get_container_client(container).delete_blob(name)


class BlobProxy:
    """An HTTP reverse proxy on 127.0.0.1 in front of Azurite, to interrupt a transfer on cue.

    It forwards each request to ``127.0.0.1:upstream_port`` and calls
    ``on_response(method, path, status)`` after the upstream answered but before the
    client sees the answer, so a test can stop Azurite after exactly N uploads. When the
    upstream is gone, the client's connection is dropped, as a dead server's would be,
    and ``upstream_failures`` counts it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.on_response: Callable[[str, str, int], None] | None = None
        self.upstream_failures = 0
        self.failed = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "connection")
                }
                headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body, headers)
                    resp = upstream.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    proxy.upstream_failures += 1
                    proxy.failed.set()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                finally:
                    upstream.close()
                if proxy.on_response is not None:
                    proxy.on_response(self.command, self.path, resp.status)
                self.send_response_only(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() in ("transfer-encoding", "connection", "keep-alive"):
                        continue
                    if key.lower() == "content-length" and self.command != "HEAD":
                        continue
                    self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def connection_string(self) -> str:
        return connection_string(self.port)

    def __enter__(self) -> BlobProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python tools/azurite.py install", file=sys.stderr)
        return 2
    if reason := missing_tools():
        print(f"Azurite not installed: {reason}", file=sys.stderr)
        return 0  # the storage tests then skip with the same reason
    path = ensure_installed(log=sys.stdout)
    print(f"Azurite {pinned_version()}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
