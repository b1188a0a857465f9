"""The template library endpoints of ``/wxaapi/newtmpl`` (wechat-api.md §5.1–5.5).

getcategory, getpubtemplatetitles and getpubtemplatekeywords read the public library in
``sandbox.library``; addtemplate and deltemplate change the account's private templates, the
ones gettemplate lists and subscribe/send accepts. Each handler runs under the state lock,
raises WeChatError for an errcode answer and returns the success Reply.

Order of checks: a wrong method first (404 for the GET endpoints, as §5 documents; 43002 for the
POST ones), then the access token (41001, 40014, 42001, 40001, as for every token API), then
the body (44002 empty, 47001 not a JSON object), then the parameters in the order below.

* getpubtemplatetitles: 200018 ``ids`` missing, 200019 ``ids`` not a comma-separated list of
  the account's category ids, 200016 ``start`` missing or not an integer >= 0, 200017 ``limit``
  missing or not an integer from 1 to 30.
* getpubtemplatekeywords: 200002 ``tid`` missing, 200014 ``tid`` not a known title id.
* addtemplate: 200014 ``tid`` missing, not a string of digits or unknown; 200020 ``kidList``
  not a list of 2 to 5 integers, each a keyword of the title and none twice; 200021
  ``sceneDesc`` missing, not a string, empty or longer than 15 characters; 200022 a private
  template with the same title and the same keywords (in any order) exists; 200012 the
  account has ``template_limit`` private templates already (the seeded ones count).
* deltemplate: 20002 ``priTmplId`` missing or not a non-empty string, 200014 no such template.

Choices where wechat-api.md is silent or UNCONFIRMED: ``tid`` must be a string, as §5.4 types
it; ``start`` and ``limit`` are required; category ids outside the account answer 200019; an
unknown ``priTmplId`` answers 200014 rather than success; ``categoryId`` is a string, as in
§5.2's example.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox import library
from sandbox.errors import WeChatError
from sandbox.state import State
from sandbox.wechat import check_token, json_object
from sandbox.wire import Reply, Request, json_reply, not_found

MAX_PAGE = 30
MIN_KIDS = 2
MAX_KIDS = 5
MAX_SCENE = 15

_NUMBER = re.compile(r"[0-9]{1,9}")


def _ok(body: dict[str, Any]) -> Reply:
    return json_reply({"errcode": 0, "errmsg": "ok"} | body, errcode=0, wechat=True)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(raw: str | None, errcode: int, low: int, high: int) -> int:
    if raw is None or _NUMBER.fullmatch(raw) is None or not low <= int(raw) <= high:
        raise WeChatError(errcode)
    return int(raw)


def _title(tid: Any) -> library.Title:
    title = None
    if isinstance(tid, str) and _NUMBER.fullmatch(tid):
        title = library.title_of(int(tid))
    if title is None:
        raise WeChatError(200014)
    return title


def getcategory(state: State, req: Request) -> Reply:
    if req.method != "GET":
        return not_found()
    check_token(state, req)
    return _ok({"data": [category.to_json() for category in library.CATEGORIES]})


def _category_ids(raw: str | None) -> set[int]:
    if not raw:
        raise WeChatError(200018)
    parts = raw.split(",")
    if not all(_NUMBER.fullmatch(part) for part in parts):
        raise WeChatError(200019)
    ids = {int(part) for part in parts}
    if not ids <= library.CATEGORY_IDS:
        raise WeChatError(200019)
    return ids


def getpubtemplatetitles(state: State, req: Request) -> Reply:
    if req.method != "GET":
        return not_found()
    check_token(state, req)
    ids = _category_ids(req.query.get("ids"))
    start = _number(req.query.get("start"), 200016, 0, 10**9)
    limit = _number(req.query.get("limit"), 200017, 1, MAX_PAGE)
    titles = library.titles_in(ids)
    page = [title.to_json() for title in titles[start : start + limit]]
    return _ok({"count": len(titles), "data": page})


def getpubtemplatekeywords(state: State, req: Request) -> Reply:
    if req.method != "GET":
        return not_found()
    check_token(state, req)
    tid = req.query.get("tid")
    if not tid:
        raise WeChatError(200002)
    data = [keyword.to_json() for keyword in _title(tid).keywords]
    return _ok({"count": len(data), "data": data})


def _kids(title: library.Title, value: Any) -> list[int]:
    if not isinstance(value, list) or not MIN_KIDS <= len(value) <= MAX_KIDS:
        raise WeChatError(200020)
    if not all(_is_int(kid) and title.keyword(kid) is not None for kid in value):
        raise WeChatError(200020)
    if len(set(value)) != len(value):
        raise WeChatError(200020)
    return list(value)


def addtemplate(state: State, req: Request) -> Reply:
    if req.method != "POST":
        raise WeChatError(43002)
    check_token(state, req)
    body = json_object(req)
    title = _title(body.get("tid"))
    kids = _kids(title, body.get("kidList"))
    scene = body.get("sceneDesc")
    if not isinstance(scene, str) or not 1 <= len(scene) <= MAX_SCENE:
        raise WeChatError(200021)
    template = library.private_template(title, kids)
    keys = set(template.keys)
    if any(t.title == template.title and set(t.keys) == keys for t in state.templates.values()):
        raise WeChatError(200022)
    if len(state.templates) >= state.config.template_limit:
        raise WeChatError(200012)
    state.templates[template.pri_tmpl_id] = template
    return _ok({"priTmplId": template.pri_tmpl_id})


def deltemplate(state: State, req: Request) -> Reply:
    if req.method != "POST":
        raise WeChatError(43002)
    check_token(state, req)
    template_id = json_object(req).get("priTmplId")
    if not isinstance(template_id, str) or not template_id:
        raise WeChatError(20002)
    if state.templates.pop(template_id, None) is None:
        raise WeChatError(200014, "invalid priTmplId")
    return _ok({})
