"""A local HTTP server on 127.0.0.1 that serves files well or badly (the download stage's tests).

The first path segment picks the behaviour, the second is the file name::

    server.files["a.gz"] = b"..."      # what "good" serves
    server.url("good")  -> "http://127.0.0.1:PORT/good/"
    server.url("503")   -> every request answers 503 (any status code works)

Behaviours: good; <status code>; short (half the body, announced as such); truncated (half
the body, no length, then close); close (half the body of the announced length, then
close); wrong (same length, other bytes); html (an HTML error
page); stall (half the body, then silence); slow (the body in ten pieces, ``slow_pause`` s
apart); flaky (503 for the first ``fail_first`` requests of each file, then good);
redirect-http (to a non-loopback http URL); redirect-good (to this server's good/ path).
"""

from __future__ import annotations

import collections
import http.server
import threading
import time

HTML_PAGE = b"<!DOCTYPE html>\n<html><body><h1>Service unavailable</h1></body></html>\n"


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.release = threading.Event()  # set to end stalls
        self.reset()

    def reset(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []  # request paths, in arrival order
        self.fail_first = 0
        self.slow_pause = 0.05
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
        elif mode.startswith("redirect-"):
            target = "http://mirror.example" if mode == "redirect-http" else self.server.base
            self.send_response(302)
            self.send_header("Location", f"{target}/good/{name}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            getattr(self, "_" + mode)(body)

    def _send(self, body: bytes, ctype: str = "application/gzip", length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # HTTP/1.0: without a length the body ends when we close
        self.wfile.write(body)
        self.wfile.flush()

    def _good(self, body: bytes) -> None:
        self._send(body)

    def _short(self, body: bytes) -> None:
        self._send(body[: len(body) // 2])

    def _truncated(self, body: bytes) -> None:
        self._send(body[: len(body) // 2], length=False)

    def _wrong(self, body: bytes) -> None:
        self._send(bytes(b ^ 0xFF for b in body))

    def _html(self, body: bytes) -> None:
        self._send(HTML_PAGE, ctype="text/html; charset=utf-8")

    def _close(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def _stall(self, body: bytes) -> None:
        self._send(body[: len(body) // 2], length=False)
        self.server.release.wait(10)

    def _slow(self, body: bytes) -> None:
        self._send(b"", length=False)
        piece = max(len(body) // 10, 1)
        for start in range(0, len(body), piece):
            self.wfile.write(body[start : start + piece])
            self.wfile.flush()
            time.sleep(self.server.slow_pause)
