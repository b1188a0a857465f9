"""Helpers for the sandbox self-tests: a loopback WeChat client and a push receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sandbox.model import DEFAULT_APPID, DEFAULT_SECRET, SEEDED_LONG_TERM, SEEDED_ONE_TIME
from sandbox.server import Sandbox

APPID = DEFAULT_APPID
SECRET = DEFAULT_SECRET
SEND = "/cgi-bin/message/subscribe/send"

ORDER_DATA = {
    "thing1": {"value": "机械键盘"},
    "time2": {"value": "2019年10月1日 15:01"},
    "character_string3": {"value": "KHDD1912310002"},
    "amount4": {"value": "¥100.00"},
    "phrase5": {"value": "配送中"},
}
ALARM_DATA = {
    "time1": {"value": "2021年10月21日 12:00:00"},
    "enum_string2": {"value": "门锁发生异常，请注意查看。"},
    "thing3": {"value": "客厅门锁"},
}


class WeChat:
    """A loopback client for one sandbox, with the steps tests repeat."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(base_url=sandbox.url, timeout=5.0)

    def user(self, **body: Any) -> str:
        return str(self.http.post("/sandbox/users", json=body).json()["openid"])

    def login(self, openid: str | None = None) -> dict[str, str]:
        body = {"openid": openid} if openid else {}
        answer: dict[str, str] = self.http.post("/sandbox/login", json=body).json()
        return answer

    def code2session(self, code: str, **overrides: str) -> dict[str, Any]:
        params = {"appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "authorization_code"}
        answer: dict[str, Any] = self.http.get("/sns/jscode2session", params=params | overrides).json()
        return answer

    def stable_token(self, **overrides: Any) -> dict[str, Any]:
        body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET} | overrides
        answer: dict[str, Any] = self.http.post("/cgi-bin/stable_token", json=body).json()
        return answer

    def classic_token(self, **overrides: str) -> dict[str, Any]:
        params = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET} | overrides
        answer: dict[str, Any] = self.http.get("/cgi-bin/token", params=params).json()
        return answer

    def token(self) -> str:
        return str(self.stable_token()["access_token"])

    def accept(
        self, openid: str, template_id: str = SEEDED_ONE_TIME, status: str = "accept"
    ) -> dict[str, Any]:
        body = {"openid": openid, "template_id": template_id, "status": status}
        answer: dict[str, Any] = self.http.post("/sandbox/subscribe", json=body).json()
        return answer

    def send_raw(self, body: Any, token: str | None = None, **kwargs: Any) -> httpx.Response:
        params = {"access_token": token if token is not None else self.token()}
        if isinstance(body, bytes | str):
            return self.http.post(SEND, params=params, content=body, **kwargs)
        return self.http.post(SEND, params=params, json=body, **kwargs)

    def send(
        self,
        openid: str,
        template_id: str = SEEDED_ONE_TIME,
        data: Any = None,
        token: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        if data is None:
            data = ALARM_DATA if template_id == SEEDED_LONG_TERM else ORDER_DATA
        body = {"touser": openid, "template_id": template_id, "data": data} | extra
        answer: dict[str, Any] = self.send_raw(body, token).json()
        return answer

    def inbox(self, **params: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.http.get("/sandbox/inbox", params=params).json()["messages"]
        return messages

    def calls(self, path: str = "") -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.http.get("/sandbox/calls", params={"path": path}).json()["calls"]
        return calls

    def grants(self, openid: str) -> dict[str, Any]:
        grants: dict[str, Any] = self.http.get(f"/sandbox/users/{openid}").json()["grants"]
        return grants

    def advance(self, seconds: float) -> None:
        self.http.post("/sandbox/clock", json={"advance": seconds}).raise_for_status()

    def configure(self, **changes: Any) -> httpx.Response:
        return self.http.post("/sandbox/config", json=changes)

    def fault(self, **body: Any) -> None:
        self.http.post("/sandbox/faults", json=body).raise_for_status()


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A developer server stand-in that records pushes; ``answer`` decides each reply."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received], tuple[int, bytes]] = lambda _: (200, b"success")
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


def receiver_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            item = Received(
                self.command,
                split.path,
                {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
                self.headers.get("Content-Type", ""),
                self.rfile.read(length),
                time.monotonic(),
            )
            with receiver.arrived:
                receiver.received.append(item)
                receiver.arrived.notify_all()
            status, body = receiver.answer(item)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
