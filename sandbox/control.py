"""Control endpoints under ``/sandbox/``: what a phone, an operator or a test would do.

JSON in, JSON out; a bad request answers 400 (404 for an unknown user or template) with
``{"error": "..."}``. Handlers run under the state lock.
"""

from __future__ import annotations

from typing import Any

from sandbox import push
from sandbox.faults import parse_fault
from sandbox.model import ONE_TIME, Template, User
from sandbox.state import State
from sandbox.wire import ControlError, Reply, Request, json_reply

ACCEPT = "accept"
REJECT = "reject"
MAX_POPUP_IDS = 5


def _body(req: Request) -> dict[str, Any]:
    if not req.body.strip():
        return {}
    try:
        body = req.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(400, "body is not JSON") from exc
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def _string(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"{name} must be a non-empty string")
    return value


def _user(state: State, openid: str) -> User:
    user = state.users.get(openid)
    if user is None:
        raise ControlError(404, f"unknown user {openid}")
    return user


def _grants(user: User) -> dict[str, Any]:
    return {tmpl: grant.to_json() for tmpl, grant in user.grants.items()}


def _with_push(reply: Reply, step: Any) -> Reply:
    if step is not None:
        reply.after.append(step)
    return reply


def create_user(state: State, req: Request, _: str | None) -> Reply:
    body = _body(req)
    blocked = body.get("blocked")
    if blocked is not None and not isinstance(blocked, bool):
        raise ControlError(400, "blocked must be a boolean")
    user = state.add_user(_string(body, "openid", required=False), blocked)
    return json_reply({"openid": user.openid})


def get_user(state: State, req: Request, openid: str | None) -> Reply:
    return json_reply(_user(state, openid or "").to_json())


def login(state: State, req: Request, _: str | None) -> Reply:
    """What ``wx.login`` gives the phone: a fresh single-use code for this user."""
    user = state.add_user(_string(_body(req), "openid", required=False))
    code = state.issue_code(user)
    return json_reply({"code": code.code, "openid": user.openid})


def _popup_choices(body: dict[str, Any]) -> dict[str, str]:
    results = body.get("results")
    if results is None:
        return {str(_string(body, "template_id")): str(_string(body, "status"))}
    if not isinstance(results, dict) or not results:
        raise ControlError(400, "results must be a non-empty object {template_id: status}")
    return dict(results)


def _check_popup(state: State, choices: dict[str, str]) -> None:
    if len(choices) > MAX_POPUP_IDS:
        raise ControlError(400, "20003 Templates count out of max bounds")
    types = set()
    for template_id, status in choices.items():
        template = state.templates.get(template_id)
        if template is None:
            raise ControlError(
                400, f"20001 No template data return, verify the template id exist ({template_id})"
            )
        if status not in (ACCEPT, REJECT):
            raise ControlError(400, f"status must be accept or reject, not {status!r}")
        types.add(template.type)
    if len(types) > 1:
        raise ControlError(400, "20002 Templates type must be same")


def subscribe(state: State, req: Request, _: str | None) -> Reply:
    """The user acts on one ``wx.requestSubscribeMessage`` popup.

    accept: one-time +1 or long-term on. reject: one-time grants cleared and long-term off
    (wechat-api.md §3: after a reject, sends answer 43101).
    """
    body = _body(req)
    user = state.add_user(_string(body, "openid"))
    choices = _popup_choices(body)
    _check_popup(state, choices)
    for template_id, status in choices.items():
        grant = user.grant(template_id)
        if status == REJECT:
            grant.one_time, grant.long_term = 0, False
        elif state.templates[template_id].type == ONE_TIME:
            grant.one_time += 1
        else:
            grant.long_term = True
    result: dict[str, str] = {"errMsg": "requestSubscribeMessage:ok"} | choices
    items = [push.popup_item(template_id, status) for template_id, status in choices.items()]
    step = state.queue_push(push.POPUP, user.openid, items)
    return _with_push(json_reply({"grants": _grants(user), "result": result}), step)


def change(state: State, req: Request, _: str | None) -> Reply:
    """The user rejects a template later, from a service-notification card's menu."""
    body = _body(req)
    user = state.add_user(_string(body, "openid"))
    template_id = str(_string(body, "template_id"))
    if template_id not in state.templates:
        raise ControlError(404, f"unknown template {template_id}")
    grant = user.grant(template_id)
    grant.one_time, grant.long_term = 0, False
    step = state.queue_push(push.CHANGE, user.openid, [push.change_item(template_id)])
    return _with_push(json_reply({"grants": _grants(user)}), step)


def inbox(state: State, req: Request, _: str | None) -> Reply:
    openid, template_id = req.query.get("openid"), req.query.get("template_id")
    messages = [
        m.to_json()
        for m in state.inbox
        if (not openid or m.touser == openid) and (not template_id or m.template_id == template_id)
    ]
    return json_reply({"messages": messages})


def calls(state: State, req: Request, _: str | None) -> Reply:
    prefix = req.query.get("path", "")
    return json_reply({"calls": [c.to_json() for c in state.calls if c.path.startswith(prefix)]})


def faults(state: State, req: Request, _: str | None) -> Reply:
    if req.method == "POST":
        try:
            state.faults.add(parse_fault(_body(req)))
        except ValueError as exc:
            raise ControlError(400, str(exc)) from exc
    elif req.method == "DELETE":
        state.faults.clear()
    return json_reply({"faults": state.faults.to_json()})


def invalidate_tokens(state: State, req: Request, _: str | None) -> Reply:
    state.tokens.invalidate_all()
    return json_reply({"invalidated": True})


def templates(state: State, req: Request, template_id: str | None) -> Reply:
    if req.method == "POST":
        try:
            template = Template.from_json(_body(req))
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from exc
        state.templates[template.pri_tmpl_id] = template
        return json_reply({"priTmplId": template.pri_tmpl_id})
    if req.method == "DELETE":
        if state.templates.pop(template_id or "", None) is None:
            raise ControlError(404, f"unknown template {template_id}")
        return json_reply({"deleted": template_id})
    return json_reply({"data": [t.to_json() for t in state.templates.values()]})


def config(state: State, req: Request, _: str | None) -> Reply:
    if req.method == "POST":
        try:
            state.configure(_body(req))
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from exc
    return json_reply(state.config.public())


def pushes(state: State, req: Request, _: str | None) -> Reply:
    event = req.query.get("event")
    return json_reply({"pushes": [p.to_json() for p in state.pushes if not event or p.event == event]})


def reset(state: State, req: Request, _: str | None) -> Reply:
    body = _body(req)
    state.reset(config=body.get("config") is True, tokens=body.get("tokens") is True)
    return json_reply({"reset": True})


def clock(state: State, req: Request, _: str | None) -> Reply:
    if req.method == "POST":
        advance = _body(req).get("advance")
        if not isinstance(advance, int | float) or isinstance(advance, bool) or advance < 0:
            raise ControlError(400, "advance must be a number of seconds >= 0")
        state.offset += float(advance)
    return json_reply({"now": state.now(), "offset": state.offset})
