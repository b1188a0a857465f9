"""The template library endpoints of /wxaapi/newtmpl (wechat-api.md §5.1–5.5) over HTTP.

getcategory, getpubtemplatetitles, getpubtemplatekeywords, addtemplate and deltemplate: their
answers, the errors §5 names, the private-template limit, the token check, and templates added
here showing up in gettemplate and taking sends. Tests whose names say "unconfirmed" pin a choice
the sandbox made where wechat-api.md is silent; it is the stricter one.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sandbox_helpers import ORDER_DATA, WeChat

from sandbox.keywords import RULES, value_ok
from sandbox.server import SEEDED_ONE_TIME, SEEDED_TEMPLATES

NEWTMPL = "/wxaapi/newtmpl/"
ORDER_SHIPPED = "855"
LOGISTICS = "2356"
COURSE = "3118"
RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")
PLACEHOLDER = re.compile(r"^(.+):\{\{([a-z_]+[0-9]+)\.DATA\}\}$")


def _get(wechat: WeChat, name: str, token: str | None = None, **params: Any) -> dict[str, Any]:
    params["access_token"] = token if token is not None else wechat.token()
    answer: dict[str, Any] = wechat.http.get(NEWTMPL + name, params=params).json()
    return answer


def _post(wechat: WeChat, name: str, body: Any, token: str | None = None) -> dict[str, Any]:
    params = {"access_token": token if token is not None else wechat.token()}
    if isinstance(body, bytes):
        response = wechat.http.post(NEWTMPL + name, params=params, content=body)
    else:
        response = wechat.http.post(NEWTMPL + name, params=params, json=body)
    answer: dict[str, Any] = response.json()
    return answer


def _add(wechat: WeChat, tid: str, kids: list[int], scene: str = "测试数据") -> dict[str, Any]:
    return _post(wechat, "addtemplate", {"tid": tid, "kidList": kids, "sceneDesc": scene})


def _added(wechat: WeChat, tid: str, kids: list[int]) -> str:
    answer = _add(wechat, tid, kids)
    assert answer["errcode"] == 0, answer
    return str(answer["priTmplId"])


def _private(wechat: WeChat) -> dict[str, dict[str, Any]]:
    return {t["priTmplId"]: t for t in _get(wechat, "gettemplate")["data"]}


def _keywords(wechat: WeChat, tid: str) -> list[dict[str, Any]]:
    answer = _get(wechat, "getpubtemplatekeywords", tid=tid)
    assert answer["errcode"] == 0, answer
    keywords: list[dict[str, Any]] = answer["data"]
    return keywords


def _all_titles(wechat: WeChat) -> list[dict[str, Any]]:
    ids = ",".join(str(c["id"]) for c in _get(wechat, "getcategory")["data"])
    titles: list[dict[str, Any]] = _get(wechat, "getpubtemplatetitles", ids=ids, start=0, limit=30)["data"]
    return titles


def _example_data(wechat: WeChat, template: dict[str, Any], tid: str) -> dict[str, dict[str, str]]:
    """Send data for ``template`` read from its content, each value the library's example."""
    examples = {k["name"]: k["example"] for k in _keywords(wechat, tid)}
    data = {}
    for line in template["content"].splitlines():
        match = PLACEHOLDER.fullmatch(line)
        assert match is not None, line
        data[match.group(2)] = {"value": examples[match.group(1)]}
    return data


def test_getcategory_answers_the_accounts_categories(wechat: WeChat) -> None:
    answer = _get(wechat, "getcategory")
    assert set(answer) == {"errcode", "errmsg", "data"}
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    categories = answer["data"]
    assert len(categories) == 4
    for category in categories:
        assert set(category) == {"id", "name"}
        assert isinstance(category["id"], int)
        assert isinstance(category["name"], str) and category["name"]


def test_titles_of_one_category_with_the_count_of_all(wechat: WeChat) -> None:
    shopping = _get(wechat, "getcategory")["data"][0]["id"]
    answer = _get(wechat, "getpubtemplatetitles", ids=str(shopping), start=0, limit=2)
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    assert answer["count"] == 5
    assert len(answer["data"]) == 2
    for title in answer["data"]:
        assert set(title) == {"tid", "title", "type", "categoryId"}
        assert isinstance(title["tid"], int)
        assert title["categoryId"] == str(shopping)
        assert title["type"] in (2, 3)


def test_titles_page_through_several_categories(wechat: WeChat) -> None:
    everything = _all_titles(wechat)
    assert len(everything) == 13
    assert len({t["categoryId"] for t in everything}) == 4
    ids = ",".join(sorted({t["categoryId"] for t in everything}))
    page = _get(wechat, "getpubtemplatetitles", ids=ids, start=2, limit=3)
    assert page["count"] == 13
    assert page["data"] == everything[2:5]
    past = _get(wechat, "getpubtemplatetitles", ids=ids, start=13, limit=30)
    assert (past["count"], past["data"]) == (13, [])


def test_titles_type_2_is_one_time_and_3_long_term(wechat: WeChat) -> None:
    by_title = {t["title"]: t for t in _all_titles(wechat)}
    one_time = ("订单发货通知", "预约成功通知", "付款成功通知", "退款通知", "会员到期提醒", "物流状态更新")
    assert all(by_title[title]["type"] == 2 for title in one_time)
    assert by_title["课程开课提醒"]["type"] == 3
    assert sum(t["type"] == 3 for t in by_title.values()) >= 2


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"start": 0, "limit": 10}, 200018),
        ({"ids": "", "start": 0, "limit": 10}, 200018),
        ({"ids": "shopping", "start": 0, "limit": 10}, 200019),
        ({"ids": "307,,411", "start": 0, "limit": 10}, 200019),
        ({"ids": "307", "start": -1, "limit": 10}, 200016),
        ({"ids": "307", "start": "x", "limit": 10}, 200016),
        ({"ids": "307", "start": 0, "limit": 31}, 200017),
        ({"ids": "307", "start": 0, "limit": 0}, 200017),
    ],
)
def test_title_query_errors(wechat: WeChat, params: dict[str, Any], errcode: int) -> None:
    answer = _get(wechat, "getpubtemplatetitles", **params)
    assert answer["errcode"] == errcode
    assert RID.search(answer["errmsg"])


def test_limit_of_30_is_allowed(wechat: WeChat) -> None:
    assert _get(wechat, "getpubtemplatetitles", ids="307", start=0, limit=30)["errcode"] == 0


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"ids": "307", "limit": 10}, 200016),
        ({"ids": "307", "start": 0}, 200017),
        ({"ids": "307,616", "start": 0, "limit": 10}, 200019),
    ],
    ids=["no-start", "no-limit", "foreign-category"],
)
def test_unconfirmed_missing_start_or_limit_and_foreign_categories_are_refused(
    wechat: WeChat, params: dict[str, Any], errcode: int
) -> None:
    assert _get(wechat, "getpubtemplatetitles", **params)["errcode"] == errcode


def test_keywords_of_a_title(wechat: WeChat) -> None:
    answer = _get(wechat, "getpubtemplatekeywords", tid=ORDER_SHIPPED)
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    assert answer["count"] == len(answer["data"]) == 10
    first = answer["data"][0]
    assert first == {"kid": 1, "name": "商品名称", "example": "机械键盘", "rule": "thing"}
    assert all(set(k) == {"kid", "name", "example", "rule"} for k in answer["data"])
    assert len({k["kid"] for k in answer["data"]}) == 10


def test_every_library_example_satisfies_its_rule(wechat: WeChat) -> None:
    rules = set()
    for title in _all_titles(wechat):
        keywords = _keywords(wechat, str(title["tid"]))
        assert len(keywords) >= 4, title
        for keyword in keywords:
            assert keyword["rule"] in RULES
            assert value_ok(keyword["rule"], keyword["example"]), (title["title"], keyword)
            rules.add(keyword["rule"])
    every_rule = {"thing", "number", "letter", "symbol", "character_string", "time", "date", "amount"}
    every_rule |= {"phone_number", "car_number", "name", "phrase"}
    assert rules == every_rule


@pytest.mark.parametrize(
    ("tid", "errcode"), [(None, 200002), ("", 200002), ("abc", 200014), ("99999", 200014)]
)
def test_keyword_query_errors(wechat: WeChat, tid: str | None, errcode: int) -> None:
    params = {} if tid is None else {"tid": tid}
    assert _get(wechat, "getpubtemplatekeywords", **params)["errcode"] == errcode


def test_added_template_appears_in_gettemplate_in_the_seeded_layout(wechat: WeChat) -> None:
    answer = _add(wechat, COURSE, [2, 1, 5], "课程提醒")
    assert set(answer) == {"errcode", "errmsg", "priTmplId"}
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    template_id = answer["priTmplId"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", template_id)
    private = _private(wechat)
    assert set(private) == {*SEEDED_TEMPLATES, template_id}
    assert private[template_id] == {
        "priTmplId": template_id,
        "title": "课程开课提醒",
        "content": "开课时间:{{time2.DATA}}\n课程名称:{{thing1.DATA}}\n教室区域:{{letter5.DATA}}\n",
        "example": "开课时间:2024年9月1日 19:00~20:30\n课程名称:Python 入门第3课\n教室区域:A\n",
        "type": 3,
    }


def test_added_one_time_template_takes_a_send_checked_against_its_rules(wechat: WeChat) -> None:
    template_id = _added(wechat, LOGISTICS, [1, 2, 5, 4])
    template = _private(wechat)[template_id]
    assert template["type"] == 2
    data = _example_data(wechat, template, LOGISTICS)
    assert set(data) == {"character_string1", "phrase2", "car_number5", "time4"}
    openid = wechat.user()
    wechat.accept(openid, template_id)
    wechat.accept(openid, template_id)
    bad = data | {"car_number5": {"value": "粤A12345678"}}
    answer = wechat.send(openid, template_id, bad)
    assert answer["errcode"] == 47003
    assert answer["errmsg"].startswith("argument invalid! data.car_number5.value invalid")
    assert wechat.send(openid, template_id, data)["errcode"] == 0
    (message,) = wechat.inbox(openid=openid, template_id=template_id)
    assert message["data"] == data
    assert wechat.send(openid, template_id, data)["errcode"] == 0
    assert wechat.send(openid, template_id, data)["errcode"] == 43101


def test_added_long_term_template_takes_repeated_sends(wechat: WeChat) -> None:
    template_id = _added(wechat, COURSE, [1, 2, 3, 4])
    data = _example_data(wechat, _private(wechat)[template_id], COURSE)
    openid = wechat.user()
    wechat.accept(openid, template_id)
    assert [wechat.send(openid, template_id, data)["errcode"] for _ in range(3)] == [0, 0, 0]


def test_deltemplate_removes_the_template(wechat: WeChat) -> None:
    template_id = _added(wechat, LOGISTICS, [1, 2])
    openid = wechat.user()
    wechat.accept(openid, template_id)
    answer = _post(wechat, "deltemplate", {"priTmplId": template_id})
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert template_id not in _private(wechat)
    data = {"character_string1": {"value": "YT9876543210"}, "phrase2": {"value": "运输中"}}
    assert wechat.send(openid, template_id, data)["errcode"] == 40037
    assert _post(wechat, "deltemplate", {"priTmplId": template_id})["errcode"] == 200014


def test_a_deleted_template_can_be_added_again_under_a_new_id(wechat: WeChat) -> None:
    first = _added(wechat, LOGISTICS, [1, 2])
    _post(wechat, "deltemplate", {"priTmplId": first})
    second = _added(wechat, LOGISTICS, [1, 2])
    assert second != first


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"kidList": [1, 2], "sceneDesc": "测试"}, 200014),
        ({"tid": "99999", "kidList": [1, 2], "sceneDesc": "测试"}, 200014),
        ({"tid": "abc", "kidList": [1, 2], "sceneDesc": "测试"}, 200014),
        ({"tid": ORDER_SHIPPED, "sceneDesc": "测试"}, 200020),
        ({"tid": ORDER_SHIPPED, "kidList": [1], "sceneDesc": "测试"}, 200020),
        ({"tid": ORDER_SHIPPED, "kidList": [1, 2, 3, 4, 5, 6], "sceneDesc": "测试"}, 200020),
        ({"tid": ORDER_SHIPPED, "kidList": [1, 11], "sceneDesc": "测试"}, 200020),
        ({"tid": ORDER_SHIPPED, "kidList": [1, 2, 1], "sceneDesc": "测试"}, 200020),
        ({"tid": ORDER_SHIPPED, "kidList": ["1", "2"], "sceneDesc": "测试"}, 200020),
        ({"tid": ORDER_SHIPPED, "kidList": "1,2", "sceneDesc": "测试"}, 200020),
        ({"tid": ORDER_SHIPPED, "kidList": [6, 7], "sceneDesc": "一二三四五六七八九十一二三四五六"}, 200021),
        ({"tid": ORDER_SHIPPED, "kidList": [6, 7], "sceneDesc": ""}, 200021),
        ({"tid": ORDER_SHIPPED, "kidList": [6, 7], "sceneDesc": 15}, 200021),
    ],
    ids=[
        "no-tid",
        "unknown-tid",
        "tid-not-digits",
        "no-kidList",
        "one-kid",
        "six-kids",
        "unknown-kid",
        "repeated-kid",
        "kids-as-strings",
        "kidList-not-a-list",
        "scene-16-chars",
        "scene-empty",
        "scene-not-a-string",
    ],
)
def test_addtemplate_errors(wechat: WeChat, body: dict[str, Any], errcode: int) -> None:
    answer = _post(wechat, "addtemplate", body)
    assert answer["errcode"] == errcode
    assert RID.search(answer["errmsg"])
    assert set(_private(wechat)) == set(SEEDED_TEMPLATES)


def test_addtemplate_bounds_two_and_five_kids_and_a_15_character_scene_are_accepted(wechat: WeChat) -> None:
    assert _add(wechat, ORDER_SHIPPED, [6, 7], "一二三四五六七八九十一二三四五")["errcode"] == 0
    assert _add(wechat, ORDER_SHIPPED, [10, 9, 8, 7, 6])["errcode"] == 0


def test_unconfirmed_tid_as_a_number_is_refused_since_documented_as_a_string(wechat: WeChat) -> None:
    body = {"tid": int(ORDER_SHIPPED), "kidList": [6, 7], "sceneDesc": "测试"}
    assert _post(wechat, "addtemplate", body)["errcode"] == 200014


def test_unconfirmed_missing_scene_desc_is_refused_as_the_new_doc_requires_it(wechat: WeChat) -> None:
    body = {"tid": ORDER_SHIPPED, "kidList": [6, 7]}
    assert _post(wechat, "addtemplate", body)["errcode"] == 200021


def test_same_title_and_keywords_twice_is_200022(wechat: WeChat) -> None:
    _added(wechat, LOGISTICS, [3, 1])
    answer = _add(wechat, LOGISTICS, [3, 1])
    assert answer["errcode"] == 200022
    assert RID.search(answer["errmsg"])
    assert _add(wechat, LOGISTICS, [3, 1, 2])["errcode"] == 0


def test_unconfirmed_same_keywords_in_another_order_also_count_as_the_same(wechat: WeChat) -> None:
    _added(wechat, LOGISTICS, [3, 1])
    assert _add(wechat, LOGISTICS, [1, 3])["errcode"] == 200022


def test_the_seeded_order_template_is_already_in_the_library(wechat: WeChat) -> None:
    assert _add(wechat, ORDER_SHIPPED, [1, 2, 3, 4, 5])["errcode"] == 200022
    assert _add(wechat, ORDER_SHIPPED, [5, 4, 3, 2, 1])["errcode"] == 200022
    template_id = _added(wechat, ORDER_SHIPPED, [1, 2, 3, 4, 6])
    private = _private(wechat)
    seeded_lines = private[SEEDED_ONE_TIME]["content"].splitlines()
    added_lines = private[template_id]["content"].splitlines()
    assert added_lines[:4] == seeded_lines[:4]
    assert added_lines[4] == "快递公司:{{thing6.DATA}}"


def test_private_template_limit_is_25_then_200012(wechat: WeChat) -> None:
    assert wechat.http.get("/sandbox/config").json()["template_limit"] == 25
    pairs = [[a, b] for a in range(1, 11) for b in range(a + 1, 11)][:21]
    added = [_added(wechat, ORDER_SHIPPED, pair) for pair in pairs]
    assert len(_private(wechat)) == 25
    answer = _add(wechat, LOGISTICS, [1, 2])
    assert answer["errcode"] == 200012
    assert RID.search(answer["errmsg"])
    assert _post(wechat, "deltemplate", {"priTmplId": added[0]})["errcode"] == 0
    assert _add(wechat, LOGISTICS, [1, 2])["errcode"] == 0


def test_limit_counts_every_private_template_and_can_be_configured(wechat: WeChat) -> None:
    wechat.configure(template_limit=5).raise_for_status()
    _added(wechat, LOGISTICS, [1, 2])
    assert _add(wechat, LOGISTICS, [1, 3])["errcode"] == 200012
    _post(wechat, "deltemplate", {"priTmplId": SEEDED_ONE_TIME})
    assert _add(wechat, LOGISTICS, [1, 3])["errcode"] == 0
    assert wechat.configure(template_limit=-1).status_code == 400


@pytest.mark.parametrize("body", [{}, {"priTmplId": ""}, {"priTmplId": 7}])
def test_deltemplate_without_a_template_id_is_20002(wechat: WeChat, body: dict[str, Any]) -> None:
    assert _post(wechat, "deltemplate", body)["errcode"] == 20002


def test_unconfirmed_deleting_an_unknown_template_is_200014_not_success(wechat: WeChat) -> None:
    answer = _post(wechat, "deltemplate", {"priTmplId": "x" * 43})
    assert answer["errcode"] == 200014
    assert answer["errmsg"].startswith("invalid priTmplId rid: ")
    assert set(_private(wechat)) == set(SEEDED_TEMPLATES)


def test_seeded_templates_can_be_deleted_and_reset_restores_them(wechat: WeChat) -> None:
    added = _added(wechat, LOGISTICS, [1, 2])
    assert _post(wechat, "deltemplate", {"priTmplId": SEEDED_ONE_TIME})["errcode"] == 0
    assert set(_private(wechat)) == {*SEEDED_TEMPLATES, added} - {SEEDED_ONE_TIME}
    wechat.http.post("/sandbox/reset", json={}).raise_for_status()
    assert set(_private(wechat)) == set(SEEDED_TEMPLATES)
    openid = wechat.user()
    wechat.accept(openid)
    assert wechat.send(openid, SEEDED_ONE_TIME, ORDER_DATA)["errcode"] == 0


@pytest.mark.parametrize(("body", "errcode"), [(b"", 44002), (b"{not json", 47001), (b"[1, 2]", 47001)])
@pytest.mark.parametrize("name", ["addtemplate", "deltemplate"])
def test_body_errors(wechat: WeChat, name: str, body: bytes, errcode: int) -> None:
    assert _post(wechat, name, body)["errcode"] == errcode


@pytest.mark.parametrize("name", ["getcategory", "getpubtemplatetitles", "getpubtemplatekeywords"])
def test_get_endpoints_answer_404_to_post(wechat: WeChat, name: str) -> None:
    response = wechat.http.post(NEWTMPL + name, params={"access_token": wechat.token()})
    assert (response.status_code, response.text) == (404, "404 not found")


@pytest.mark.parametrize("name", ["addtemplate", "deltemplate"])
def test_post_endpoints_answer_43002_to_get(wechat: WeChat, name: str) -> None:
    assert _get(wechat, name)["errcode"] == 43002


ENDPOINTS = [
    ("GET", "getcategory", None),
    ("GET", "getpubtemplatetitles", None),
    ("GET", "getpubtemplatekeywords", None),
    ("POST", "addtemplate", {"tid": LOGISTICS, "kidList": [1, 2], "sceneDesc": "测试"}),
    ("POST", "deltemplate", {"priTmplId": SEEDED_ONE_TIME}),
]


def _call(wechat: WeChat, method: str, name: str, body: Any, token: str | None) -> dict[str, Any]:
    params = {} if token is None else {"access_token": token}
    if method == "GET":
        params |= {"ids": "307", "start": "0", "limit": "10", "tid": ORDER_SHIPPED}
        answer: dict[str, Any] = wechat.http.get(NEWTMPL + name, params=params).json()
    else:
        answer = wechat.http.post(NEWTMPL + name, params=params, json=body).json()
    return answer


@pytest.mark.parametrize(("method", "name", "body"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_token_errors(wechat: WeChat, method: str, name: str, body: Any) -> None:
    assert _call(wechat, method, name, body, None)["errcode"] == 41001
    assert _call(wechat, method, name, body, "not-a-token")["errcode"] == 40014
    expired = wechat.token()
    wechat.advance(7200)
    assert _call(wechat, method, name, body, expired)["errcode"] == 42001
    invalidated = wechat.token()
    wechat.http.post("/sandbox/tokens/invalidate").raise_for_status()
    assert _call(wechat, method, name, body, invalidated)["errcode"] == 40001
    assert set(_private(wechat)) == set(SEEDED_TEMPLATES)
    assert _call(wechat, method, name, body, wechat.token())["errcode"] == 0


def test_calls_are_recorded_without_query_strings(wechat: WeChat) -> None:
    token = wechat.token()
    _get(wechat, "getcategory", token)
    _get(wechat, "getpubtemplatekeywords", token, tid="99999")
    _add(wechat, LOGISTICS, [1, 2])
    calls = wechat.calls(NEWTMPL)
    assert [(c["method"], c["path"], c["errcode"]) for c in calls] == [
        ("GET", NEWTMPL + "getcategory", 0),
        ("GET", NEWTMPL + "getpubtemplatekeywords", 200014),
        ("POST", NEWTMPL + "addtemplate", 0),
    ]


def test_a_faulted_addtemplate_adds_nothing(wechat: WeChat) -> None:
    wechat.fault(path=NEWTMPL + "addtemplate", errcode=-1)
    assert _add(wechat, LOGISTICS, [1, 2])["errcode"] == -1
    assert set(_private(wechat)) == set(SEEDED_TEMPLATES)
    assert _add(wechat, LOGISTICS, [1, 2])["errcode"] == 0
