"""The sandbox's world: configuration, users, grants, codes, templates, messages and records.

Plain dataclasses; all mutation happens under ``State.lock`` (see ``sandbox.state``).
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from sandbox import crypto, keywords

DEFAULT_APPID = "wx0000000000sandbox"
DEFAULT_SECRET = "sandbox0000000000000000000000000"  # noqa: S105 (the sandbox's own fake AppSecret)
DEFAULT_ORIGINAL_ID = "gh_000sandbox0"

ONE_TIME = 2
LONG_TERM = 3

PUSH_MODES = ("plain", "compatible", "safe")
PUSH_FORMATS = ("json", "xml")
PUSH_SCALARS = ("mixed", "strings", "numbers")
MINIPROGRAM_STATES = ("developer", "trial", "formal")
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")

_ID_ALPHABET = string.ascii_letters + string.digits + "_-"
_ALNUM = string.ascii_letters + string.digits
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+[0-9]+)\.DATA\}\}")


def random_id(length: int, alphabet: str = _ID_ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_openid() -> str:
    """28 characters of [A-Za-z0-9_-] starting with ``o``, like observed openids."""
    return "o" + random_id(27)


def new_code() -> str:
    return random_id(32, _ALNUM)


def new_template_id() -> str:
    return random_id(43)


@dataclass
class Config:
    """What an operator sets in the mini program admin, plus the sandbox's own knobs.

    ``pages`` None means no page list: any ``page`` is accepted. ``daily_quota`` None means
    no quota. ``push_timeout`` and ``push_attempts`` follow wechat-api.md §7.8 (5 s, 3 tries).
    ``latency`` holds every WeChat-API answer that many real seconds (control calls are not held).
    ``template_limit`` caps the private templates addtemplate may reach (25, wechat-api.md §5.4).
    """

    appid: str = DEFAULT_APPID
    secret: str = DEFAULT_SECRET
    original_id: str = DEFAULT_ORIGINAL_ID
    token_lifetime: float = 7200.0
    push_url: str | None = None
    push_token: str | None = None
    push_aes_key: str | None = None
    push_mode: str = "plain"
    push_format: str = "json"
    push_scalars: str = "mixed"
    push_timeout: float = 5.0
    push_attempts: int = 3
    push_retry_delay: float = 0.2
    pages: list[str] | None = None
    daily_quota: int | None = None
    latency: float = 0.0
    template_limit: int = 25

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        ids = (self.appid, self.secret, self.original_id)
        _check(all(isinstance(v, str) for v in ids), "appid, secret and original_id must be strings")
        _check(_is_number(self.token_lifetime) and _is_number(self.push_timeout), "durations must be numbers")
        _check(isinstance(self.push_attempts, int) and _is_number(self.push_retry_delay), "bad push retries")
        pages_ok = isinstance(self.pages, list) and all(isinstance(p, str) for p in self.pages)
        _check(self.pages is None or pages_ok, "pages must be a list of strings or null")
        _check(self.daily_quota is None or isinstance(self.daily_quota, int), "daily_quota must be an int")
        _check(self.token_lifetime > 0, "token_lifetime must be > 0")
        _check(self.push_mode in PUSH_MODES, f"push_mode must be one of {PUSH_MODES}")
        _check(self.push_format in PUSH_FORMATS, f"push_format must be one of {PUSH_FORMATS}")
        _check(self.push_scalars in PUSH_SCALARS, f"push_scalars must be one of {PUSH_SCALARS}")
        _check(self.push_timeout > 0 and self.push_attempts >= 1, "push_timeout > 0 and push_attempts >= 1")
        _check(self.daily_quota is None or self.daily_quota >= 0, "daily_quota must be >= 0")
        _check(_is_number(self.latency) and self.latency >= 0, "latency must be a number of seconds >= 0")
        limit_ok = isinstance(self.template_limit, int) and not isinstance(self.template_limit, bool)
        _check(limit_ok and self.template_limit >= 0, "template_limit must be an integer >= 0")
        if self.push_aes_key is not None:
            crypto.aes_key(self.push_aes_key)
        if self.push_url is not None:
            _check(self.push_url.startswith(("http://", "https://")), "push_url must be an http(s) URL")
            _check(bool(self.push_token), "push_url needs push_token")
            _check(
                self.push_mode == "plain" or self.push_aes_key is not None,
                f"push_mode {self.push_mode} needs push_aes_key",
            )

    def public(self) -> dict[str, Any]:
        """The configuration without AppSecret, push Token or EncodingAESKey."""
        return {
            "appid": self.appid,
            "original_id": self.original_id,
            "token_lifetime": self.token_lifetime,
            "push_url": self.push_url,
            "push_token_set": self.push_token is not None,
            "push_aes_key_set": self.push_aes_key is not None,
            "push_mode": self.push_mode,
            "push_format": self.push_format,
            "push_scalars": self.push_scalars,
            "push_timeout": self.push_timeout,
            "push_attempts": self.push_attempts,
            "pages": self.pages,
            "daily_quota": self.daily_quota,
            "latency": self.latency,
            "template_limit": self.template_limit,
        }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class Grant:
    one_time: int = 0
    long_term: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"one_time": self.one_time, "long_term": self.long_term}


@dataclass
class User:
    openid: str
    session_key: str
    blocked: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)

    def grant(self, template_id: str) -> Grant:
        return self.grants.setdefault(template_id, Grant())

    def to_json(self) -> dict[str, Any]:
        return {
            "openid": self.openid,
            "session_key": self.session_key,
            "blocked": self.blocked,
            "grants": {tmpl: g.to_json() for tmpl, g in self.grants.items()},
        }


@dataclass
class Code:
    code: str
    openid: str
    appid: str
    issued_at: float
    used: bool = False


@dataclass
class Template:
    """A private template as gettemplate lists it; keys come from the ``{{key.DATA}}`` placeholders."""

    pri_tmpl_id: str
    title: str
    content: str
    example: str
    type: int
    enum_values: dict[str, list[str]] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return _PLACEHOLDER.findall(self.content)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "priTmplId": self.pri_tmpl_id,
            "title": self.title,
            "content": self.content,
            "example": self.example,
            "type": self.type,
        }
        if self.enum_values:
            body["keywordEnumValueList"] = [
                {"keywordCode": f"{key}.DATA", "enumValueList": list(values)}
                for key, values in self.enum_values.items()
            ]
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Template:
        """Build from the gettemplate shape; raise ValueError when it cannot be sent to."""
        enum_values: dict[str, list[str]] = {}
        for item in body.get("keywordEnumValueList") or []:
            code, values = item.get("keywordCode"), item.get("enumValueList")
            _check(isinstance(code, str) and isinstance(values, list), "bad keywordEnumValueList item")
            _check(all(isinstance(v, str) for v in values), "enumValueList must hold strings")
            enum_values[code.removesuffix(".DATA")] = values
        template = cls(
            pri_tmpl_id=str(body.get("priTmplId") or new_template_id()),
            title=_text(body, "title"),
            content=_text(body, "content"),
            example=str(body.get("example") or ""),
            type=int(body.get("type", ONE_TIME)),
            enum_values=enum_values,
        )
        template.check()
        return template

    def check(self) -> None:
        _check(self.type in (ONE_TIME, LONG_TERM), "type must be 2 (one-time) or 3 (long-term)")
        _check(bool(self.keys), "content has no {{keyN.DATA}} placeholder")
        for key in self.keys:
            rule = keywords.rule_of(key)
            _check(rule != "enum" or bool(self.enum_values.get(key)), f"{key} needs keywordEnumValueList")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    _check(isinstance(value, str) and value != "", f"{name} is required")
    return str(value)


@dataclass
class Message:
    msgid: int
    touser: str
    template_id: str
    data: Any
    page: str | None
    miniprogram_state: str
    lang: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "msgid": str(self.msgid),
            "touser": self.touser,
            "template_id": self.template_id,
            "data": self.data,
            "page": self.page,
            "miniprogram_state": self.miniprogram_state,
            "lang": self.lang,
            "at": self.at,
        }


@dataclass
class Call:
    method: str
    path: str
    errcode: int | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "errcode": self.errcode, "at": self.at}


@dataclass(eq=False)
class Fault:
    """Calls to ``path`` that misbehave: the next ``count`` ones, or with ``rate`` that share of them.

    Without ``deliver`` the call has no effect and answers ``errcode`` (-1 by default). With
    ``deliver`` the call takes effect (a send is delivered) and answers normally, or ``errcode``
    when one is given. ``answer`` replaces the answer by a broken one (see ``sandbox.faults``)
    either way. ``hang`` holds the answer that many real seconds. A rate fault has no ``count``
    unless one bounds it; ``seed`` reseeds the draws for ``path``.
    """

    path: str
    count: int | None = 1
    errcode: int | None = None
    hang: float = 0.0
    deliver: bool = False
    answer: str | None = None
    rate: float | None = None
    seed: int | str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "count": self.count,
            "errcode": self.errcode,
            "hang": self.hang,
            "deliver": self.deliver,
            "answer": self.answer,
            "rate": self.rate,
            "seed": self.seed,
        }


@dataclass
class PushRecord:
    """One event pushed (or being pushed) to the developer server, with every attempt."""

    id: int
    event: str
    openid: str
    url: str
    body: str
    content_type: str
    state: str = "pending"
    status: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "openid": self.openid,
            "url": self.url,
            "body": self.body,
            "content_type": self.content_type,
            "state": self.state,
            "status": self.status,
            "attempts": list(self.attempts),
        }


SEEDED_ONE_TIME = "SbxOrderShipped1-one_time-tmpl-000000000001"
SEEDED_ONE_TIME_2 = "SbxAppointment02-one_time-tmpl-000000000002"
SEEDED_ONE_TIME_3 = "SbxVehicleEntry3-one_time-tmpl-000000000003"
SEEDED_LONG_TERM = "SbxDeviceAlarm04-long_term-tmpl-00000000004"

LONG_TERM_ENUM_VALUES = ["门锁发生异常，请注意查看。", "设备电量不足，请及时更换电池。", "设备已恢复正常。"]


def seeded_templates() -> list[Template]:
    """Fresh copies of the seeded templates; together they use every rule of §4."""
    return [
        Template(
            SEEDED_ONE_TIME,
            "订单发货通知",
            "商品名称:{{thing1.DATA}}\n发货时间:{{time2.DATA}}\n订单编号:{{character_string3.DATA}}\n"
            "订单金额:{{amount4.DATA}}\n订单状态:{{phrase5.DATA}}\n",
            "商品名称:机械键盘\n发货时间:2019年10月1日 15:01\n订单编号:KHDD1912310002\n"
            "订单金额:¥100.00\n订单状态:配送中\n",
            ONE_TIME,
        ),
        Template(
            SEEDED_ONE_TIME_2,
            "预约成功通知",
            "预约项目:{{thing1.DATA}}\n预约日期:{{date2.DATA}}\n预约人:{{name3.DATA}}\n"
            "排队号码:{{number4.DATA}}\n联系电话:{{phone_number5.DATA}}\n",
            "预约项目:体检套餐\n预约日期:2019年10月1日\n预约人:张三\n排队号码:339208499\n"
            "联系电话:+86-0766-66888866\n",
            ONE_TIME,
        ),
        Template(
            SEEDED_ONE_TIME_3,
            "车辆入场提醒",
            "车牌号码:{{car_number1.DATA}}\n车位区域:{{letter2.DATA}}\n入口标识:{{symbol3.DATA}}\n"
            "停车场:{{short_thing4.DATA}}\n温馨提示:{{thing5.DATA}}\n",
            "车牌号码:粤A8Z888挂\n车位区域:B\n入口标识:#\n停车场:北门车场\n温馨提示:请按指示停放\n",
            ONE_TIME,
        ),
        Template(
            SEEDED_LONG_TERM,
            "设备告警提醒",
            "告警时间:{{time1.DATA}}\n告警内容:{{enum_string2.DATA}}\n设备名称:{{thing3.DATA}}\n",
            "告警时间:2021年10月21日 12:00:00\n告警内容:门锁发生异常，请注意查看。\n设备名称:客厅门锁\n",
            LONG_TERM,
            {"enum_string2": list(LONG_TERM_ENUM_VALUES)},
        ),
    ]
