"""Fixtures for the sandbox self-tests: a started Sandbox, a loopback client, a push receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from sandbox_helpers import Receiver, WeChat, receiver_handler

from sandbox.server import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def wechat(sandbox: Sandbox) -> Iterator[WeChat]:
    client = WeChat(sandbox)
    yield client
    client.http.close()


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
