"""Requests and replies as the sandbox's handlers see them, independent of the HTTP server."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WECHAT_JSON = "application/json; encoding=utf-8"
JSON = "application/json; charset=utf-8"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Reply:
    """An answer; ``hang`` holds it that many seconds, ``after`` runs once it has been written.

    ``cut``: only that many bytes of ``body`` are written (its full length announced), then the
    connection is closed.
    """

    status: int
    body: bytes
    content_type: str
    errcode: int | None = None
    hang: float = 0.0
    cut: int | None = None
    after: list[Callable[[], None]] = field(default_factory=list)


def json_reply(body: Any, status: int = 200, *, errcode: int | None = None, wechat: bool = False) -> Reply:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, raw, WECHAT_JSON if wechat else JSON, errcode)


def not_found() -> Reply:
    return Reply(404, b"404 not found", "text/plain; charset=utf-8")


class ControlError(Exception):
    """A bad control request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)
