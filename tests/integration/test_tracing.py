"""Tracing as deployed (``Tracing: Active``): the functions' X-Ray segments, read off the wire.

The stack runs the product template with tracing on (no ``AWS_SAM_LOCAL``), each invocation with a
sampled trace header as Lambda gives it, and the X-Ray SDK sends its segments to a UDP socket of
this test standing in for the daemon. What reaches X-Ray is checked as an operator would see it:
the handler's subsegment with its annotations, AWS and WeChat calls traced (only the libraries
wxsub calls are patched), and no session token, AppSecret or session_key anywhere in a segment.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import PRODUCT_PARAMETERS, ROOT, TEST_ENV
from wx_flows import new_code

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Daemon:
    """A UDP socket where the X-Ray daemon would listen: keeps every document sent to it."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.raw: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65535)
            except TimeoutError:
                continue
            self.raw.append(data.decode("utf-8", "replace"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[LocalStack, Daemon]]:
    daemon = Daemon()
    stack = LocalStack(
        ROOT / "template.yaml",
        env=TEST_ENV,
        parameters=PRODUCT_PARAMETERS,
        schedules=False,
        pollers=False,
        xray_daemon=daemon.address,
    )
    with stack:
        yield stack, daemon
    daemon.close()


def _segments_after(daemon: Daemon, before: int, name: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        segments = [s for raw in daemon.raw[before:] for s in _flatten(raw)]
        if any(s.get("name") == name for s in segments):
            return segments
        time.sleep(0.1)
    raise AssertionError(
        f"no {name!r} subsegment reached the daemon; got {len(daemon.raw) - before} documents"
    )


def _flatten(raw: str) -> list[dict[str, Any]]:
    pending, found = [json.loads(raw.split("\n", 1)[1])], []
    while pending:
        segment = pending.pop()
        found.append(segment)
        pending.extend(segment.get("subsegments") or [])
    return found


def test_a_traced_login_shows_the_handler_aws_and_wechat_calls_and_no_secret(
    traced: tuple[LocalStack, Daemon],
) -> None:
    stack, daemon = traced
    before = len(daemon.raw)
    code, openid = new_code(stack)

    answer = httpx.post(f"{stack.api_url}/login", json={"code": code}, timeout=30)

    assert answer.status_code == 200, answer.text
    segments = _segments_after(daemon, before, "## lambda_handler")
    handler = next(s for s in segments if s["name"] == "## lambda_handler")
    assert handler["annotations"]["Service"] == "wxsub"
    assert "ColdStart" in handler["annotations"]
    names = {s["name"] for s in segments}
    assert {"dynamodb", "ssm"} <= names  # botocore patched: the StateTable and SecureString reads
    assert "127.0.0.1" in names  # httpx patched: the code2session call to the (sandbox) WeChat
    assert {s["trace_id"] for s in segments if "trace_id" in s} <= {handler["trace_id"]}

    text = "\n".join(daemon.raw[before:])
    token = answer.json()["token"]
    assert token not in text  # POWERTOOLS_TRACER_CAPTURE_RESPONSE is false on LoginFunction
    assert stack.secure_strings[stack.description.parameters["AppSecretParam"]] not in text
    assert stack.sandbox is not None
    with stack.sandbox.state.lock:
        session_key = stack.sandbox.state.users[openid].session_key
    assert session_key not in text
