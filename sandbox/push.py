"""Message push (消息推送) from the sandbox to the developer server, per wechat-api.md §7.

Rendering: the three subscription events of §7.6 in JSON (top-level ``List``: an object for one
item, an array for several) or XML (repeated ``<List>`` inside ``SubscribeMsgPopupEvent`` /
``SubscribeMsgChangeEvent`` / ``SubscribeMsgSentEvent``), in plaintext, compatible (plaintext
fields plus ``Encrypt``) or safe mode (``ToUserName`` and ``Encrypt`` only). The query carries
``signature``, ``timestamp`` and ``nonce``; compatible and safe mode add ``openid``,
``encrypt_type=aes`` and ``msg_signature``.

JSON scalar types (``push_scalars``): ``mixed`` (default) writes ``CreateTime`` as a number and
``PopupScene``, ``MsgID``, ``ErrorCode`` as strings, like the real pushes quoted in §7.6;
``strings`` writes all four as strings (the guide's examples); ``numbers`` writes all four as
numbers (``MsgID`` as a raw 64-bit integer). XML always writes them bare.

Delivery (§7.8, UNCONFIRMED for mini programs): one background thread sends pushes in order;
each push gets up to ``push_attempts`` tries of ``push_timeout`` seconds, retried after a
connection error, a timeout or a non-2xx answer. Every attempt and its answer is recorded.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sandbox import crypto
from sandbox.model import Config, PushRecord

POPUP = "subscribe_msg_popup_event"
CHANGE = "subscribe_msg_change_event"
SENT = "subscribe_msg_sent_event"

_WRAPPERS = {
    POPUP: "SubscribeMsgPopupEvent",
    CHANGE: "SubscribeMsgChangeEvent",
    SENT: "SubscribeMsgSentEvent",
}
_NUMERIC_FIELDS = ("PopupScene", "MsgID", "ErrorCode")
_RESPONSE_LIMIT = 4096
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Event:
    """An event before rendering; item values are str or int (ints are the numeric fields)."""

    name: str
    openid: str
    create_time: int
    items: list[dict[str, str | int]]


@dataclass
class Rendered:
    url: str
    body: bytes
    content_type: str


def popup_item(template_id: str, status: str) -> dict[str, str | int]:
    return {"TemplateId": template_id, "SubscribeStatusString": status, "PopupScene": 0}


def change_item(template_id: str) -> dict[str, str | int]:
    return {"TemplateId": template_id, "SubscribeStatusString": "reject"}


def sent_item(template_id: str, msgid: int) -> dict[str, str | int]:
    return {"TemplateId": template_id, "MsgID": msgid, "ErrorCode": 0, "ErrorStatus": "success"}


def _fields(event: Event, config: Config) -> dict[str, Any]:
    return {
        "ToUserName": config.original_id,
        "FromUserName": event.openid,
        "CreateTime": event.create_time,
        "MsgType": "event",
        "Event": event.name,
    }


def _json_item(item: dict[str, str | int], scalars: str) -> dict[str, str | int]:
    if scalars == "numbers":
        return dict(item)
    return {key: str(value) if key in _NUMERIC_FIELDS else value for key, value in item.items()}


def to_json(event: Event, config: Config) -> dict[str, Any]:
    body = _fields(event, config)
    if config.push_scalars == "strings":
        body["CreateTime"] = str(event.create_time)
    items = [_json_item(item, config.push_scalars) for item in event.items]
    body["List"] = items[0] if len(items) == 1 else items
    return body


def _xml_value(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml_elements(fields: dict[str, Any]) -> str:
    return "".join(f"<{key}>{_xml_value(value)}</{key}>" for key, value in fields.items())


def to_xml(event: Event, config: Config) -> str:
    items = "".join(f"<List>{_xml_elements(item)}</List>" for item in event.items)
    wrapper = _WRAPPERS[event.name]
    return f"<xml>{_xml_elements(_fields(event, config))}<{wrapper}>{items}</{wrapper}></xml>"


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def render(event: Event, config: Config, timestamp: int, nonce: str) -> Rendered:
    """The request WeChat would make for ``event`` under ``config`` (push_url must be set)."""
    assert config.push_url is not None and config.push_token is not None
    token = config.push_token
    stamp = str(timestamp)
    query = {"signature": crypto.signature(token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
    is_json = config.push_format == "json"
    plain = _dumps(to_json(event, config)) if is_json else to_xml(event, config)
    if config.push_mode == "plain":
        body = plain
    else:
        assert config.push_aes_key is not None
        encrypted = crypto.encrypt(config.push_aes_key, plain.encode("utf-8"), config.appid)
        query |= {
            "openid": event.openid,
            "encrypt_type": "aes",
            "msg_signature": crypto.signature(token, str(timestamp), nonce, encrypted),
        }
        body = _encrypted_body(event, config, encrypted)
    separator = "&" if "?" in config.push_url else "?"
    content_type = "application/json" if is_json else "text/xml"
    return Rendered(config.push_url + separator + urlencode(query), body.encode("utf-8"), content_type)


def _encrypted_body(event: Event, config: Config, encrypted: str) -> str:
    if config.push_format == "json":
        compatible = config.push_mode == "compatible"
        fields = to_json(event, config) if compatible else {"ToUserName": config.original_id}
        return _dumps(fields | {"Encrypt": encrypted})
    if config.push_mode == "compatible":
        plain = to_xml(event, config)
        return plain.removesuffix("</xml>") + f"<Encrypt>{_xml_value(encrypted)}</Encrypt></xml>"
    fields = {"ToUserName": config.original_id, "Encrypt": encrypted}
    return f"<xml>{_xml_elements(fields)}</xml>"


def new_nonce() -> str:
    return str(secrets.randbelow(9 * 10**8) + 10**8)


@dataclass
class _Job:
    record: PushRecord
    request: Rendered
    timeout: float
    attempts: int
    retry_delay: float


class Pusher:
    """Sends pushes from one daemon thread, in submission order.

    Records are updated under ``lock`` (the state lock) so readers see consistent attempts.
    """

    def __init__(self, lock: threading.RLock, now: Callable[[], float]) -> None:
        self._lock = lock
        self._now = now
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-pusher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def reserve(self) -> None:
        """Count a push that will be submitted soon, so :meth:`wait_idle` waits for it too."""
        with self._idle:
            self._pending += 1

    def submit(self, record: PushRecord, request: Rendered, config: Config) -> None:
        """Queue a push counted by :meth:`reserve`."""
        job = _Job(record, request, config.push_timeout, config.push_attempts, config.push_retry_delay)
        self._queue.put(job)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted push has finished (delivered or failed)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._deliver(job)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, job: _Job) -> None:
        for attempt in range(job.attempts):
            if attempt:
                time.sleep(job.retry_delay)
            status, answer, error = _post(job.request, job.timeout)
            ok = status is not None and 200 <= status < 300
            with self._lock:
                attempt_record = {"at": self._now(), "status": status, "response": answer, "error": error}
                job.record.attempts.append(attempt_record)
                job.record.status = status
                job.record.state = "delivered" if ok else "pending"
            if ok:
                return
        with self._lock:
            job.record.state = "failed"


def _post(request: Rendered, timeout: float) -> tuple[int | None, str | None, str | None]:
    """(HTTP status, answer body, error) of one attempt."""
    req = urllib.request.Request(  # noqa: S310 (push_url is checked to be http or https)
        request.url, data=request.body, method="POST", headers={"Content-Type": request.content_type}
    )
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            return response.status, _text(response.read(_RESPONSE_LIMIT)), None
    except urllib.error.HTTPError as exc:
        return exc.code, _text(exc.read(_RESPONSE_LIMIT)), None
    except (OSError, ValueError) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def verify_url(config: Config, echostr: str, timeout: float) -> dict[str, Any]:
    """The URL check WeChat runs when the push URL is saved (§7.2): GET with ``echostr``."""
    assert config.push_url is not None and config.push_token is not None
    timestamp, nonce = str(int(time.time())), new_nonce()
    query = {
        "signature": crypto.signature(config.push_token, timestamp, nonce),
        "echostr": echostr,
        "timestamp": timestamp,
        "nonce": nonce,
    }
    separator = "&" if "?" in config.push_url else "?"
    url = config.push_url + separator + urlencode(query)
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            status, body = response.status, _text(response.read(_RESPONSE_LIMIT))
    except urllib.error.HTTPError as exc:
        status, body = exc.code, _text(exc.read(_RESPONSE_LIMIT))
    except (OSError, ValueError) as exc:
        return {"ok": False, "status": None, "body": None, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": status == 200 and body == echostr, "status": status, "body": body, "error": None}
