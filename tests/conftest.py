"""Shared fixtures. ``http_mirror``: a local HTTP server on 127.0.0.1 (helpers.http_server),
started once per session; each test gets it with empty files, an empty request log and a
released stall, and with proxies switched off."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from helpers.http_server import MirrorServer


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
