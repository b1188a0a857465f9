"""The pure core of ``/wechat/push``: verify, decrypt and parse what WeChat pushes (wechat-api.md §7).

No I/O and no clock: callers pass ``now``. Whatever fails to authenticate a request — the
``signature`` or ``msg_signature``, the timestamp window, the decrypted AppID, plaintext where
encryption is required, an ``Encrypt`` no configured key opens — raises ``BadSignature``; a
body that cannot be decoded raises ``InvalidRequest``. Messages name the field at fault and
never carry the token, a key or the decrypted body.

Modes: a query with ``msg_signature`` (or ``encrypt_type=aes``) is safe or compatible mode and
only the decrypted ``Encrypt`` is trusted; the plaintext copy a compatible-mode body also
carries is ignored, and the query's plain ``signature`` is not consulted (WeChat: "不要使用
signature验证"). Without them the push is plaintext and ``signature`` covers only token,
timestamp and nonce, never the body.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wxsub import jsontext
from wxsub.errors import BadSignature, ConfigurationError, InvalidRequest, Misconfigured
from wxsub.wechat.crypto import WxCrypto, signature, signature_matches

__all__ = [
    "PushConfig",
    "PushItem",
    "PushMessage",
    "WxCrypto",
    "encrypted_reply",
    "open_push",
    "signature",
    "verify_url",
]

_WRAPPERS = ("SubscribeMsgPopupEvent", "SubscribeMsgChangeEvent", "SubscribeMsgSentEvent")
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_MAX_XML_DEPTH = 8


@dataclass(frozen=True)
class PushConfig:
    """The push settings of one mini program; invalid values fail at construction.

    ``aes_keys`` lists the current EncodingAESKey first, then earlier ones still accepted while
    a rotation settles (DOC-crypto-plan). Replies are always encrypted with the first.
    """

    token: str = field(repr=False)
    appid: str
    aes_keys: tuple[str, ...] = field(default=(), repr=False)
    require_encryption: bool = False
    max_skew_seconds: int = 300
    cryptos: tuple[WxCrypto, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.token:
            raise ConfigurationError("the push Token is empty")
        if not self.appid:
            raise ConfigurationError("the AppID is empty")
        if self.require_encryption and not self.aes_keys:
            raise ConfigurationError("require_encryption needs at least one EncodingAESKey")
        if self.max_skew_seconds <= 0:
            raise ConfigurationError("max_skew_seconds must be positive")
        object.__setattr__(self, "cryptos", tuple(WxCrypto(key) for key in self.aes_keys))


@dataclass(frozen=True)
class PushItem:
    """One entry of a subscription event's ``List``.

    ``msg_id`` stays a string because it exceeds 2**53; ``popup_scene`` stays a string because
    its values are undocumented for mini programs and must not cost us an accept.
    """

    template_id: str
    status: str | None = None
    popup_scene: str | None = None
    msg_id: str | None = None
    error_code: int | None = None
    error_status: str | None = None


@dataclass(frozen=True)
class PushMessage:
    """A verified push. ``raw`` is the decoded body (XML becomes nested dicts, repeats lists)."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    event: str | None
    items: tuple[PushItem, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def dedupe_key(self) -> str:
        """The same for WeChat's retries of one push, whatever their encryption, nonce or format.

        Built from the parsed fields (so ``"0"`` and ``0`` agree) with items in a canonical order;
        a user message's ``MsgId`` joins in, since two can share a second.
        """
        msg_id = self.raw.get("MsgId")
        items = sorted(json.dumps(dataclasses.astuple(item)) for item in self.items)
        parts = [self.to_user, self.from_user, self.create_time, self.msg_type, self.event]
        canonical = json.dumps([*parts, None if msg_id is None else str(msg_id), items])
        return hashlib.sha256(canonical.encode()).hexdigest()


def verify_url(config: PushConfig, query: Mapping[str, str], now: float) -> str:
    """The raw ``echostr`` to answer WeChat's URL check with (§7.2), once ``signature`` holds."""
    timestamp, nonce = _param(query, "timestamp"), _param(query, "nonce")
    _check(_param(query, "signature"), signature(config.token, timestamp, nonce), "signature")
    _check_fresh(timestamp, now, config.max_skew_seconds)
    echostr = query.get("echostr")
    if not echostr:
        raise InvalidRequest("query parameter 'echostr' is missing")
    return echostr


def is_encrypted(query: Mapping[str, str]) -> bool:
    """Whether a push's query says safe mode: its body is AES-encrypted and signed by ``msg_signature``."""
    return "msg_signature" in query or query.get("encrypt_type") == "aes"


def open_push(
    config: PushConfig, query: Mapping[str, str], body: bytes, content_type: str | None, now: float
) -> PushMessage:
    """Verify a ``POST /wechat/push`` and parse the event it carries (§7.3, §7.4, §7.6).

    JSON or XML is told from the body itself; ``content_type`` only enriches the error.
    """
    if is_encrypted(query):
        fields = _open_encrypted(config, query, body, content_type, now)
    else:
        fields = _open_plain(config, query, body, content_type, now)
    return _message(fields)


def encrypted_reply(
    config: PushConfig,
    msg: str,
    nonce: str,
    timestamp: int,
    fmt: Literal["json", "xml"],
    random16: bytes | None = None,
) -> str:
    """A safe-mode reply carrying ``msg`` (§7.4); ``success`` or an empty body needs none of this.

    ``nonce`` is the request's, ``timestamp`` the current time.
    """
    if not config.cryptos:
        raise Misconfigured("an encrypted reply needs an EncodingAESKey")
    encrypt = config.cryptos[0].encrypt(msg, config.appid, random16)
    msg_signature = signature(config.token, str(timestamp), nonce, encrypt)
    if fmt == "json":
        reply = {"Encrypt": encrypt, "MsgSignature": msg_signature, "TimeStamp": timestamp, "Nonce": nonce}
        return json.dumps(reply, separators=(",", ":"))
    return (
        f"<xml><Encrypt>{_cdata(encrypt)}</Encrypt><MsgSignature>{_cdata(msg_signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>"
    )


def _open_plain(
    config: PushConfig, query: Mapping[str, str], body: bytes, content_type: str | None, now: float
) -> dict[str, Any]:
    if config.require_encryption:
        raise BadSignature("plaintext push refused: safe mode (msg_signature) is required")
    timestamp, nonce = _param(query, "timestamp"), _param(query, "nonce")
    _check(_param(query, "signature"), signature(config.token, timestamp, nonce), "signature")
    _check_fresh(timestamp, now, config.max_skew_seconds)
    fields = _decode(body, content_type)
    if "Encrypt" in fields:
        raise BadSignature("the body carries Encrypt but the query has no msg_signature")
    return fields


def _open_encrypted(
    config: PushConfig, query: Mapping[str, str], body: bytes, content_type: str | None, now: float
) -> dict[str, Any]:
    timestamp, nonce = _param(query, "timestamp"), _param(query, "nonce")
    encrypt = _decode(body, content_type).get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise BadSignature("safe-mode push without an Encrypt field")
    expected = signature(config.token, timestamp, nonce, encrypt)
    _check(_param(query, "msg_signature"), expected, "msg_signature")
    _check_fresh(timestamp, now, config.max_skew_seconds)
    return _decode(_decrypt(config, encrypt), None)


def _decrypt(config: PushConfig, encrypt: str) -> bytes:
    """Try the current key, then the previous ones; the AppID tells a hit from lucky garbage."""
    if not config.cryptos:
        raise Misconfigured("an encrypted push arrived but no EncodingAESKey is configured")
    reasons: list[str] = []
    for crypto in config.cryptos:
        try:
            msg, appid = crypto.decrypt(encrypt)
        except BadSignature as exc:
            reasons.append(exc.message)
            continue
        if signature_matches(config.appid, appid):
            return msg
        reasons.append("the decrypted AppID is not this mini program's AppID")
    if len(reasons) == 1:
        raise BadSignature(reasons[0])
    listed = "; ".join(f"key {number}: {reason}" for number, reason in enumerate(reasons, 1))
    raise BadSignature(f"no configured EncodingAESKey opens Encrypt ({listed})")


def _param(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise BadSignature(f"query parameter {name!r} is missing")
    return value


def _check(given: str, expected: str, name: str) -> None:
    if not signature_matches(expected, given):
        raise BadSignature(f"{name} does not match")


def _check_fresh(timestamp: str, now: float, window: int) -> None:
    if not _TIMESTAMP.fullmatch(timestamp):
        raise BadSignature("query parameter 'timestamp' is not a Unix time in seconds")
    age = now - int(timestamp)
    if age > window:
        raise BadSignature(f"timestamp is {age:.0f} s old; the window is {window} s")
    if -age > window:
        raise BadSignature(f"timestamp is {-age:.0f} s in the future; the window is {window} s")


def _decode(data: bytes, content_type: str | None) -> dict[str, Any]:
    try:
        text = data.decode().lstrip("\ufeff").lstrip()
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the body is not UTF-8") from exc
    if text.startswith("{"):
        return _json_fields(text)
    if text.startswith("<"):
        return _xml_fields(text)
    declared = (content_type or "none")[:100]
    raise InvalidRequest(f"the body is neither a JSON object nor XML (Content-Type: {declared})")


def _json_fields(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("the body is not a JSON object")
    found = jsontext.problem(value)  # a decrypted push has not met the body guard
    if found is not None:
        raise InvalidRequest(found)
    return value


def _xml_fields(text: str) -> dict[str, Any]:
    """XML as nested dicts; a repeated tag becomes a list, as WeChat's JSON does with ``List``.

    A DOCTYPE or ENTITY declaration is refused before parsing. Without a DTD no entity can be
    declared, so ElementTree then expands only the five predefined ones: no entity expansion
    bomb and no external fetch. Decoding to ``str`` first makes expat ignore the declared
    encoding, so the refusal cannot be sidestepped with an exotic one.
    """
    if _DECLARATION.search(text):
        raise InvalidRequest("XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 - declarations are refused above
    except ET.ParseError as exc:
        raise InvalidRequest(f"the body is not well-formed XML: {exc}") from exc
    value = _element(root, 0)
    if not isinstance(value, dict):
        raise InvalidRequest("the XML root holds no fields")
    return value


def _element(element: ET.Element, depth: int) -> str | dict[str, Any]:
    children = list(element)
    if not children:
        return element.text or ""
    if depth >= _MAX_XML_DEPTH:
        raise InvalidRequest("the XML body is nested too deeply")
    fields: dict[str, Any] = {}
    for child in children:
        value = _element(child, depth + 1)
        existing = fields.get(child.tag)
        if child.tag not in fields:
            fields[child.tag] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            fields[child.tag] = [existing, value]
    return fields


def _message(fields: dict[str, Any]) -> PushMessage:
    return PushMessage(
        to_user=_required(fields, "ToUserName"),
        from_user=_required(fields, "FromUserName"),
        create_time=_required_int(fields, "CreateTime"),
        msg_type=_required(fields, "MsgType"),
        event=_scalar(fields, "Event"),
        items=tuple(_item(entry, index) for index, entry in enumerate(_entries(fields))),
        raw=fields,
    )


def _entries(fields: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``List`` at the top (JSON) or inside the event's wrapper (XML), one object or several."""
    entries = fields.get("List")
    if entries is None:
        wrapper: Mapping[str, Any] = next(
            (fields[name] for name in _WRAPPERS if isinstance(fields.get(name), dict)), {}
        )
        entries = wrapper.get("List")
    if entries is None or entries == "":
        return []
    if isinstance(entries, dict):
        return [entries]
    if isinstance(entries, list) and all(isinstance(entry, dict) for entry in entries):
        return entries
    raise InvalidRequest("List must be an object or an array of objects")


def _item(entry: Mapping[str, Any], index: int) -> PushItem:
    where = f"List[{index}]."
    msg_id = _scalar(entry, "MsgID", where)
    return PushItem(
        template_id=_required(entry, "TemplateId", where),
        status=_scalar(entry, "SubscribeStatusString", where),
        popup_scene=_scalar(entry, "PopupScene", where),
        msg_id=None if msg_id is None else msg_id.strip(),
        error_code=_integer(entry, "ErrorCode", where),
        error_status=_scalar(entry, "ErrorStatus", where),
    )


def _scalar(fields: Mapping[str, Any], key: str, where: str = "") -> str | None:
    """A string or an integer as text; absent or empty is ``None``. A float would have lost digits."""
    value = fields.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"{where}{key} must be a string or an integer")
    return str(value)


def _required(fields: Mapping[str, Any], key: str, where: str = "") -> str:
    value = _scalar(fields, key, where)
    if value is None:
        raise InvalidRequest(f"{where}{key} is missing")
    return value


def _integer(fields: Mapping[str, Any], key: str, where: str = "") -> int | None:
    value = _scalar(fields, key, where)
    if value is None:
        return None
    if not _INTEGER.fullmatch(value.strip()):
        raise InvalidRequest(f"{where}{key} must be an integer")
    return int(value)


def _required_int(fields: Mapping[str, Any], key: str) -> int:
    value = _integer(fields, key)
    if value is None:
        raise InvalidRequest(f"{key} is missing")
    return value


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
