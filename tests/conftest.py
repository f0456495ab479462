"""Shared fixtures. ``http_mirror``: a local HTTP server on 127.0.0.1 serving files well or badly.

The first path segment picks the behaviour, the second is the file name::

    http_mirror.files["a.gz"] = b"..."          # what "good" serves
    http_mirror.url("good")   -> "http://127.0.0.1:PORT/good/"
    http_mirror.url("503")    -> every request answers 503 (any status code works)

Behaviours (see ``MODES``): good, <status code>, short (half the body, announced as
such), truncated (half the body, no length header), wrong (same length, other bytes),
html (an HTML error page), html-as-binary, stall (half the body, then silence),
stall-headers (silence before any header), drop (half the body, then a TCP reset),
close (half the body, then a clean close), long (more bytes than expected), slow (the
body trickles in small pieces), flaky (503 for the first ``fail_first`` requests of each
file, then good), redirect-http (to a non-loopback http URL), redirect-good (to this
server's good/ path).

The server runs once per test session; each test gets it with empty files, an empty
request log and a released stall.
"""

from __future__ import annotations

import collections
import http.server
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

MODES = (
    "good",
    "short",
    "truncated",
    "wrong",
    "html",
    "html-as-binary",
    "stall",
    "stall-headers",
    "drop",
    "close",
    "long",
    "slow",
    "flaky",
    "redirect-http",
    "redirect-good",
)
HTML_PAGE = b"<!DOCTYPE html>\n<html><body><h1>Service unavailable</h1></body></html>\n"


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.release = threading.Event()  # set to end stalls
        self.slow_pause = 0.05  # seconds between pieces of a "slow" body
        self.reset()

    def reset(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []  # request paths, in arrival order
        self.fail_first = 0
        self._served: collections.Counter[str] = collections.Counter()
        self.release.clear()

    def url(self, mode: str) -> str:
        """The base URL of a source that behaves as ``mode``."""
        return f"{self.base}/{mode}/"

    def hits(self, mode: str) -> int:
        """How many requests the ``mode`` source has seen."""
        return sum(path.startswith(f"/{mode}/") for path in self.requests)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: MirrorServer

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        _, mode, name = self.path.split("/", 2)
        body = self.server.files.get(name)
        if mode.isdigit():
            self.send_error(int(mode))
        elif body is None:
            self.send_error(404)
        elif mode == "flaky":
            self.server._served[name] += 1
            if self.server._served[name] <= self.server.fail_first:
                self.send_error(503)
            else:
                self._send(body)
        else:
            getattr(self, "_" + mode.replace("-", "_"), self._unknown)(body, name)

    def _unknown(self, body: bytes, name: str) -> None:
        self.send_error(400, "unknown mode")

    def _send(self, body: bytes, ctype: str = "application/gzip") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_unsized(self, body: bytes, ctype: str = "application/gzip") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.end_headers()  # HTTP/1.0 and no Content-Length: the body ends when we close
        self.wfile.write(body)

    def _good(self, body: bytes, name: str) -> None:
        self._send(body)

    def _short(self, body: bytes, name: str) -> None:
        self._send(body[: len(body) // 2])

    def _truncated(self, body: bytes, name: str) -> None:
        self._send_unsized(body[: len(body) // 2])

    def _wrong(self, body: bytes, name: str) -> None:
        self._send(bytes(b ^ 0xFF for b in body))

    def _html(self, body: bytes, name: str) -> None:
        self._send(HTML_PAGE, ctype="text/html; charset=utf-8")

    def _html_as_binary(self, body: bytes, name: str) -> None:
        self._send_unsized(HTML_PAGE, ctype="application/octet-stream")

    def _long(self, body: bytes, name: str) -> None:
        self._send_unsized(body + b"trailing garbage")

    def _stall(self, body: bytes, name: str) -> None:
        self._send_headers_and_half(body)
        self.server.release.wait(10)

    def _stall_headers(self, body: bytes, name: str) -> None:
        self.server.release.wait(10)

    def _drop(self, body: bytes, name: str) -> None:
        self._send_headers_and_half(body)
        time.sleep(0.05)  # let the first half arrive, then reset the connection
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _close(self, body: bytes, name: str) -> None:
        self._send_headers_and_half(body)
        self.close_connection = True

    def _slow(self, body: bytes, name: str) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        piece = max(len(body) // 10, 1)
        for start in range(0, len(body), piece):
            self.wfile.write(body[start : start + piece])
            self.wfile.flush()
            time.sleep(self.server.slow_pause)

    def _redirect_http(self, body: bytes, name: str) -> None:
        self._redirect(f"http://mirror.example/{name}")

    def _redirect_good(self, body: bytes, name: str) -> None:
        self._redirect(f"{self.server.base}/good/{name}")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_headers_and_half(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()


@pytest.fixture(scope="session")
def _mirror_server() -> Iterator[MirrorServer]:
    server = MirrorServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_mirror(
    _mirror_server: MirrorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MirrorServer]:
    """The local HTTP server, reset for this test; proxies are switched off."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    _mirror_server.reset()
    yield _mirror_server
    _mirror_server.release.set()  # end any stall this test started
