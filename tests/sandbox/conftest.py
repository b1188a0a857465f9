"""Fixtures for the sandbox self-tests: a started Sandbox, a loopback client, a push receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from sandbox_helpers import Receiver, WeChat, receiver_handler

from sandbox.server import Sandbox


@pytest.fixture(scope="session")
def _shared() -> Iterator[WeChat]:
    with Sandbox() as sb:
        client = WeChat(sb)
        yield client
        client.http.close()


@pytest.fixture
def wechat(_shared: WeChat) -> WeChat:
    """A client of the shared sandbox, reset to its seeded state, constructor config and no tokens."""
    _shared.sandbox.wait_for_pushes(timeout=5.0)
    _shared.http.post("/sandbox/reset", json={"config": True, "tokens": True}).raise_for_status()
    return _shared


@pytest.fixture
def sandbox(wechat: WeChat) -> Sandbox:
    return wechat.sandbox


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver_handler(rec))
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/wechat/push"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
