"""The one transport to the WeChat API: httpx, a base URL, timeouts and the single errcode check.

WeChat answers errors with HTTP 200 and ``{"errcode", "errmsg"}``; some successes carry
``errcode: 0`` and some no errcode at all; a response may be labelled ``text/plain``. So the
body is parsed as JSON whatever its content type, and :func:`classify` is the only place that
decides what an errcode means. Python's ``json`` keeps 64-bit integers exact, so a ``msgid``
above 2**53 survives until a model turns it into a string.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import certifi
import httpx

from wxsub.observability import count_wechat_error


class ErrorKind(StrEnum):
    TOKEN = "token"  # noqa: S105 - a kind of error, not a credential. The access token is invalid, superseded or expired: re-read and retry once
    RETRYABLE = "retryable"  # busy or throttled: retry with back-off
    QUOTA = "quota"  # the daily quota is spent: stop for the day
    CREDENTIAL = "credential"  # AppID, AppSecret, IP whitelist or account state: an operator must act
    PERMANENT = "permanent"  # this request can never succeed as it is


_KINDS: dict[int, ErrorKind] = {
    **dict.fromkeys((40001, 40014, 41001, 42001), ErrorKind.TOKEN),
    **dict.fromkeys((-1, 45011, 43108), ErrorKind.RETRYABLE),
    45009: ErrorKind.QUOTA,
    **dict.fromkeys(
        (40002, 40013, 40125, 40164, 40243, 41002, 41004, 48001, 50004, 50007, 61007, 89503, 89506, 89507),
        ErrorKind.CREDENTIAL,
    ),
}


def classify(errcode: int) -> ErrorKind:
    """What a non-zero errcode means for the caller (wechat-api.md §0, §2, §3, §9)."""
    return _KINDS.get(errcode, ErrorKind.PERMANENT)


class WeChatError(Exception):
    """Base of the transport's failures."""


class WeChatApiError(WeChatError):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat errcode {errcode}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.kind = classify(errcode)


class WeChatUnreachable(WeChatError):
    """The request was never written: connect failure, connect or pool timeout. Safe to retry."""


class WeChatAmbiguous(WeChatError):
    """The request went out but no clean answer came back: WeChat may or may not have acted on it.

    A read timeout, a reset, an error page from a proxy, a cut-off or unreadable body all land
    here. Whoever sent a non-idempotent request (a send, a code exchange) must not repeat it.
    """


class WeChatTransport:
    """Sends requests to one WeChat base URL and returns the checked JSON body.

    The HTTP client (its TLS context costs tens of milliseconds) is built at the first request,
    so a function that wires WeChat in but seldom calls it (a push only syncs templates on a
    registry miss) does not pay for it at every cold start.
    """

    def __init__(self, base_url: str, timeout: float, http: httpx.Client | None = None) -> None:
        self._base_url, self._timeout = base_url.rstrip("/"), timeout
        self._http = http
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        http = self._http
        if http is None:
            with self._lock:  # the threads of a worker batch share one client
                if self._http is None:
                    self._http = self._new_client()
                http = self._http
        return http

    def _new_client(self) -> httpx.Client:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=certifi.where())  # httpx's own default
        return httpx.Client(
            base_url=self._base_url,
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 3.0)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"User-Agent": "wxsub/0.1"},
            verify=self._tls,
        )

    def reconnect(self) -> None:
        """Drop every pooled connection; the next request opens new ones (after a SnapStart restore
        the snapshot's sockets are gone). The TLS context holds no connection and is kept."""
        with self._lock:
            old, self._http = self._http, None
        if old is not None:
            old.close()

    def get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        return self._send("GET", path, params, None)

    def post(self, path: str, params: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
        return self._send("POST", path, params, body)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _send(
        self, method: str, path: str, params: Mapping[str, str], body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {} if content is None else {"Content-Type": "application/json; charset=utf-8"}
        try:
            response = self._client().request(
                method, path, params=dict(params), content=content, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise WeChatUnreachable(f"cannot connect to WeChat ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise WeChatAmbiguous(f"no complete answer from WeChat ({type(exc).__name__})") from None
        return check(response)


def check(response: httpx.Response) -> dict[str, Any]:
    """The single errcode check: returns the body of a success, raises for anything else.

    Every answer that is not a clean WeChat body arrived after the request went out, so it is
    ambiguous (an HTTP 502 page from a proxy may follow a delivered send).
    """
    if response.status_code != 200:
        raise WeChatAmbiguous(f"WeChat answered HTTP {response.status_code}")
    try:
        body = json.loads(response.content)
    except ValueError:
        raise WeChatAmbiguous("WeChat answered with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise WeChatAmbiguous("WeChat answered with JSON that is not an object")
    errcode = body.get("errcode", 0)
    try:
        errcode = int(errcode)
    except (TypeError, ValueError):
        raise WeChatAmbiguous("WeChat answered with a malformed errcode") from None
    if errcode != 0:
        count_wechat_error(errcode)
        raise WeChatApiError(errcode, str(body.get("errmsg", "")))
    return body
