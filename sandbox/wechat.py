"""The WeChat endpoints the sandbox stands in for (wechat-api.md §1, §2, §3, §5.6).

The other template endpoints of §5 are in ``sandbox.newtmpl``.

Each handler runs under the state lock, raises WeChatError for an errcode answer and returns
the success Reply. Order of checks, where WeChat's own order is unknown:

* credentials (token, stable_token, jscode2session): 41002 appid missing, 41004 secret missing,
  40002 grant_type, 40013 appid, 40125 secret (an empty stable_token body therefore answers
  41002, as observed when the fields were sent outside the body);
* jscode2session then: 41008 no js_code, 40029 unknown code / code of another AppID / older than
  5 minutes (even if it was used), 40163 used, 40226 blocked user;
* subscribe/send: 43002 method, 41001/40014/42001/40001 token, 44002 empty body, 47001 not a
  JSON object, 45009 daily quota, 40003 touser, 40037 template_id, 47003 miniprogram_state /
  lang / data, 41030 page, 43101 grant.

Choices where wechat-api.md says UNCONFIRMED: extra ``data`` keys the template does not have are
ignored; a ``value`` that is not a string is ``invalid``; an invalid ``miniprogram_state`` or
``lang`` answers 47003 ``argument invalid! <field> invalid``; the page check (only with a
configured page list) ignores ``?query`` and a leading ``/`` and applies to every
``miniprogram_state``; a ``page`` that is not a string answers 41030.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from sandbox import keywords, push
from sandbox.errors import WeChatError
from sandbox.model import LANGS, LONG_TERM, MINIPROGRAM_STATES, Config, Message, Template, User
from sandbox.state import CODE_TTL, State
from sandbox.wire import Reply, Request, json_reply, not_found

_MSGID_LOW = 2**60
_MSGID_HIGH = 2**63


def _credentials(config: Config, appid: Any, secret: Any, grant_type: Any, expected: str) -> None:
    if not appid:
        raise WeChatError(41002)
    if not secret:
        raise WeChatError(41004)
    if grant_type != expected:
        raise WeChatError(40002)
    if appid != config.appid:
        raise WeChatError(40013)
    if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), config.secret.encode()):
        raise WeChatError(40125)


def json_object(req: Request, *, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body as a JSON object: 44002 when empty (unless ``empty`` stands in), 47001 when not one."""
    if not req.body.strip():
        if empty is not None:
            return empty
        raise WeChatError(44002)
    try:
        body = req.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeChatError(47001) from exc
    if not isinstance(body, dict):
        raise WeChatError(47001)
    return body


def check_token(state: State, req: Request) -> None:
    """The access-token check of every token API: 41001 missing, then 40014/42001/40001."""
    value = req.query.get("access_token")
    if not value:
        raise WeChatError(41001)
    state.tokens.check(value)


def jscode2session(state: State, req: Request) -> Reply:
    if req.method != "GET":
        raise WeChatError(43001)
    q = req.query
    _credentials(state.config, q.get("appid"), q.get("secret"), q.get("grant_type"), "authorization_code")
    js_code = q.get("js_code")
    if not js_code:
        raise WeChatError(41008)
    code = state.codes.get(js_code)
    if code is None or code.appid != state.config.appid or state.now() - code.issued_at > CODE_TTL:
        raise WeChatError(40029)
    if code.used:
        raise WeChatError(40163)
    user = state.users[code.openid]
    if user.blocked:
        raise WeChatError(40226)
    code.used = True
    return json_reply({"session_key": user.session_key, "openid": user.openid}, errcode=0, wechat=True)


def get_token(state: State, req: Request) -> Reply:
    if req.method != "GET":
        raise WeChatError(43001)
    q = req.query
    _credentials(state.config, q.get("appid"), q.get("secret"), q.get("grant_type"), "client_credential")
    token = state.tokens.fetch_classic()
    body = {"access_token": token.value, "expires_in": state.tokens.expires_in(token)}
    return json_reply(body, errcode=0, wechat=True)


def stable_token(state: State, req: Request) -> Reply:
    if req.method != "POST":
        raise WeChatError(43002)
    body = json_object(req, empty={})
    appid, secret, grant_type = body.get("appid"), body.get("secret"), body.get("grant_type")
    _credentials(state.config, appid, secret, grant_type, "client_credential")
    token = state.tokens.fetch_stable(force=body.get("force_refresh") is True)
    answer = {"access_token": token.value, "expires_in": state.tokens.expires_in(token)}
    return json_reply(answer, errcode=0, wechat=True)


def gettemplate(state: State, req: Request) -> Reply:
    if req.method != "GET":
        return not_found()
    check_token(state, req)
    data = [template.to_json() for template in state.templates.values()]
    return json_reply({"errcode": 0, "errmsg": "ok", "data": data}, errcode=0, wechat=True)


def send(state: State, req: Request) -> Reply:
    if req.method != "POST":
        raise WeChatError(43002)
    check_token(state, req)
    body = json_object(req)
    quota = state.config.daily_quota
    if quota is not None and state.sends_by_day.get(state.day(), 0) >= quota:
        raise WeChatError(45009)
    user = _recipient(state, body.get("touser"))
    template = _template(state, body.get("template_id"))
    mp_state = _choice(body, "miniprogram_state", MINIPROGRAM_STATES, "formal")
    lang = _choice(body, "lang", LANGS, "zh_CN")
    check_data(template, body.get("data"))
    page = _page(state.config, body.get("page"))
    _consume_grant(user, template)
    msgid = _MSGID_LOW + secrets.randbelow(_MSGID_HIGH - _MSGID_LOW)
    tmpl = template.pri_tmpl_id
    state.deliver(Message(msgid, user.openid, tmpl, body["data"], page, mp_state, lang, state.now()))
    reply = json_reply({"errcode": 0, "errmsg": "ok", "msgid": msgid}, errcode=0, wechat=True)
    pushed = state.queue_push(push.SENT, user.openid, [push.sent_item(template.pri_tmpl_id, msgid)])
    if pushed is not None:
        reply.after.append(pushed)
    return reply


def _recipient(state: State, touser: Any) -> User:
    user = state.users.get(touser) if isinstance(touser, str) else None
    if user is None:
        raise WeChatError(40003)
    return user


def _template(state: State, template_id: Any) -> Template:
    template = state.templates.get(template_id) if isinstance(template_id, str) else None
    if template is None:
        raise WeChatError(40037)
    return template


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise WeChatError(47003, f"argument invalid! {name} invalid")
    return str(value)


def check_data(template: Template, data: Any) -> None:
    """Raise 47003 naming the first keyword (in template order) that is missing, empty or breaks its rule."""
    for key in template.keys:
        entry = data.get(key) if isinstance(data, dict) else None
        value = entry.get("value") if isinstance(entry, dict) else None
        if value is None or value == "":
            raise WeChatError(47003, f"argument invalid! data.{key}.value is empty")
        rule = keywords.rule_of(key)
        if not isinstance(value, str) or not keywords.value_ok(rule, value, template.enum_values.get(key)):
            raise WeChatError(47003, f"argument invalid! data.{key}.value invalid")


def _page(config: Config, page: Any) -> str | None:
    if page is None or page == "":
        return None
    if not isinstance(page, str):
        raise WeChatError(41030)
    if config.pages is not None:
        path = page.split("?", 1)[0].lstrip("/")
        if path not in {p.lstrip("/") for p in config.pages}:
            raise WeChatError(41030)
    return page


def _consume_grant(user: User, template: Template) -> None:
    grant = user.grants.get(template.pri_tmpl_id)
    if template.type == LONG_TERM:
        if grant is None or not grant.long_term:
            raise WeChatError(43101)
        return
    if grant is None or grant.one_time <= 0:
        raise WeChatError(43101)
    grant.one_time -= 1
