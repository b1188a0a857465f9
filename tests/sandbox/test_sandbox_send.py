"""subscribe/send (wechat-api.md §3, §4) and gettemplate (§5.6): grants, keyword rules, errors."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sandbox_helpers import ALARM_DATA, ORDER_DATA, WeChat

from sandbox.model import LONG_TERM_ENUM_VALUES
from sandbox.server import SEEDED_LONG_TERM, SEEDED_ONE_TIME, SEEDED_ONE_TIME_2, SEEDED_ONE_TIME_3, Sandbox

APPOINTMENT_DATA = {
    "thing1": {"value": "体检套餐"},
    "date2": {"value": "2019-12-25 09:42"},
    "name3": {"value": "张三"},
    "number4": {"value": "339208499"},
    "phone_number5": {"value": "+86-0766-66888866"},
}
VEHICLE_DATA = {
    "car_number1": {"value": "粤A8Z888挂"},
    "letter2": {"value": "B"},
    "symbol3": {"value": "#"},
    "short_thing4": {"value": "北门车场"},
    "thing5": {"value": "请按指示停放"},
}
VALID = {
    SEEDED_ONE_TIME: ORDER_DATA,
    SEEDED_ONE_TIME_2: APPOINTMENT_DATA,
    SEEDED_ONE_TIME_3: VEHICLE_DATA,
    SEEDED_LONG_TERM: ALARM_DATA,
}
BAD_VALUE = [
    (SEEDED_ONE_TIME, "thing1", "一二三四五六七八九十一二三四五六七八九十一"),
    (SEEDED_ONE_TIME, "time2", "下午三点"),
    (SEEDED_ONE_TIME, "character_string3", "订单KHDD"),
    (SEEDED_ONE_TIME, "amount4", "一百元"),
    (SEEDED_ONE_TIME, "phrase5", "shipped"),
    (SEEDED_ONE_TIME_2, "date2", "2019年13月1日"),
    (SEEDED_ONE_TIME_2, "name3", "张三3"),
    (SEEDED_ONE_TIME_2, "number4", "12a"),
    (SEEDED_ONE_TIME_2, "phone_number5", "call me"),
    (SEEDED_ONE_TIME_3, "car_number1", "粤A8Z888挂X"),
    (SEEDED_ONE_TIME_3, "letter2", "B2"),
    (SEEDED_ONE_TIME_3, "symbol3", "######"),
    (SEEDED_ONE_TIME_3, "short_thing4", "北门地下停车场"),
    (SEEDED_LONG_TERM, "enum_string2", "门锁异常"),
]


def _subscribed(wechat: WeChat, template_id: str = SEEDED_ONE_TIME, times: int = 1) -> str:
    openid = wechat.user()
    for _ in range(times):
        wechat.accept(openid, template_id)
    return openid


def test_success_body_with_msgid_above_2_pow_53_kept_exact(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    response = wechat.send_raw({"touser": openid, "template_id": SEEDED_ONE_TIME, "data": ORDER_DATA})
    raw = response.text
    match = re.fullmatch(r'\{"errcode":0,"errmsg":"ok","msgid":([0-9]+)\}', raw)
    assert match is not None, raw
    msgid = int(match.group(1))
    assert msgid > 2**53
    assert json.loads(raw, parse_float=float)["msgid"] == msgid
    (message,) = wechat.inbox(openid=openid)
    assert message["msgid"] == match.group(1)


def test_delivered_message_lands_in_the_inbox(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    extra = {"page": "pages/order/detail?id=42", "miniprogram_state": "trial", "lang": "en_US"}
    assert wechat.send(openid, **extra)["errcode"] == 0
    (message,) = wechat.inbox(openid=openid, template_id=SEEDED_ONE_TIME)
    assert message["data"] == ORDER_DATA
    assert message["touser"] == openid
    assert {k: message[k] for k in extra} == extra
    assert wechat.inbox(openid="someone-else") == []


def test_state_and_lang_default_to_formal_and_zh_cn(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    wechat.send(openid)
    (message,) = wechat.inbox(openid=openid)
    assert (message["miniprogram_state"], message["lang"], message["page"]) == ("formal", "zh_CN", None)


def test_one_time_grant_is_consumed_then_43101(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    assert wechat.send(openid)["errcode"] == 0
    assert wechat.grants(openid)[SEEDED_ONE_TIME] == {"one_time": 0, "long_term": False}
    answer = wechat.send(openid)
    assert answer["errcode"] == 43101
    assert answer["errmsg"].startswith("user refuse to accept the msg rid: ")


def test_one_time_grants_accumulate(wechat: WeChat) -> None:
    openid = _subscribed(wechat, times=3)
    assert [wechat.send(openid)["errcode"] for _ in range(4)] == [0, 0, 0, 43101]


def test_no_grant_at_all_is_43101(wechat: WeChat) -> None:
    assert wechat.send(wechat.user())["errcode"] == 43101


def test_long_term_grant_is_not_consumed(wechat: WeChat) -> None:
    openid = _subscribed(wechat, SEEDED_LONG_TERM)
    assert [wechat.send(openid, SEEDED_LONG_TERM)["errcode"] for _ in range(3)] == [0, 0, 0]
    assert wechat.grants(openid)[SEEDED_LONG_TERM] == {"one_time": 0, "long_term": True}


def test_popup_reject_clears_grants(wechat: WeChat) -> None:
    openid = _subscribed(wechat, times=2)
    wechat.accept(openid, status="reject")
    assert wechat.send(openid)["errcode"] == 43101
    lt = _subscribed(wechat, SEEDED_LONG_TERM)
    wechat.accept(lt, SEEDED_LONG_TERM, status="reject")
    assert wechat.send(lt, SEEDED_LONG_TERM)["errcode"] == 43101


def test_later_reject_from_the_service_card_clears_grants(wechat: WeChat) -> None:
    openid = _subscribed(wechat, SEEDED_LONG_TERM)
    answer = wechat.http.post(
        "/sandbox/change", json={"openid": openid, "template_id": SEEDED_LONG_TERM}
    ).json()
    assert answer["grants"][SEEDED_LONG_TERM] == {"one_time": 0, "long_term": False}
    assert wechat.send(openid, SEEDED_LONG_TERM)["errcode"] == 43101


def test_one_popup_with_several_templates(wechat: WeChat) -> None:
    openid = wechat.user()
    results = {SEEDED_ONE_TIME: "accept", SEEDED_ONE_TIME_2: "reject", SEEDED_ONE_TIME_3: "accept"}
    answer = wechat.http.post("/sandbox/subscribe", json={"openid": openid, "results": results}).json()
    assert answer["result"] == {"errMsg": "requestSubscribeMessage:ok"} | results
    assert {k: v["one_time"] for k, v in answer["grants"].items()} == {
        SEEDED_ONE_TIME: 1,
        SEEDED_ONE_TIME_2: 0,
        SEEDED_ONE_TIME_3: 1,
    }


def test_popup_rules_mixed_types_and_unknown_ids_are_refused(wechat: WeChat) -> None:
    openid = wechat.user()
    mixed = {"openid": openid, "results": {SEEDED_ONE_TIME: "accept", SEEDED_LONG_TERM: "accept"}}
    assert "20002" in wechat.http.post("/sandbox/subscribe", json=mixed).json()["error"]
    unknown = {"openid": openid, "template_id": "x" * 43, "status": "accept"}
    assert "20001" in wechat.http.post("/sandbox/subscribe", json=unknown).json()["error"]


@pytest.mark.parametrize("template_id", list(VALID))
def test_every_seeded_template_accepts_its_example_data(wechat: WeChat, template_id: str) -> None:
    openid = _subscribed(wechat, template_id)
    assert wechat.send(openid, template_id, VALID[template_id])["errcode"] == 0


@pytest.mark.parametrize(("template_id", "key", "value"), BAD_VALUE)
def test_rule_violation_is_47003_naming_the_key(
    wechat: WeChat, template_id: str, key: str, value: str
) -> None:
    openid = _subscribed(wechat, template_id)
    data = VALID[template_id] | {key: {"value": value}}
    answer = wechat.send(openid, template_id, data)
    assert answer["errcode"] == 47003
    assert answer["errmsg"].startswith(f"argument invalid! data.{key}.value invalid rid: ")


def test_rejected_send_spends_no_grant(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    assert wechat.send(openid, data=ORDER_DATA | {"phrase5": {"value": "x"}})["errcode"] == 47003
    assert wechat.grants(openid)[SEEDED_ONE_TIME]["one_time"] == 1


@pytest.mark.parametrize(
    "data",
    [
        {k: v for k, v in ORDER_DATA.items() if k != "time2"},
        ORDER_DATA | {"time2": {"value": ""}},
        ORDER_DATA | {"time2": {}},
        ORDER_DATA | {"time2": "2019年10月1日 15:01"},
    ],
    ids=["missing", "empty", "no-value", "not-an-object"],
)
def test_missing_or_empty_keyword_is_47003_is_empty(wechat: WeChat, data: dict[str, Any]) -> None:
    answer = wechat.send(_subscribed(wechat), data=data)
    assert answer["errcode"] == 47003
    assert answer["errmsg"].startswith("argument invalid! data.time2.value is empty rid: ")


def test_data_as_a_json_string_or_dotdata_keys_is_47003_is_empty(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    as_string = wechat.send(openid, data=json.dumps(ORDER_DATA))
    assert as_string["errmsg"].startswith("argument invalid! data.thing1.value is empty")
    dotted = wechat.send(openid, data={f"{k}.DATA": v for k, v in ORDER_DATA.items()})
    assert dotted["errmsg"].startswith("argument invalid! data.thing1.value is empty")


def test_non_string_value_is_47003_invalid(wechat: WeChat) -> None:
    openid = _subscribed(wechat, SEEDED_ONE_TIME_2)
    answer = wechat.send(openid, SEEDED_ONE_TIME_2, APPOINTMENT_DATA | {"number4": {"value": 339208499}})
    assert answer["errmsg"].startswith("argument invalid! data.number4.value invalid")


def test_unknown_extra_keys_are_ignored(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    assert wechat.send(openid, data=ORDER_DATA | {"thing9": {"value": "extra"}})["errcode"] == 0


def test_enum_values_come_from_the_template(wechat: WeChat) -> None:
    openid = _subscribed(wechat, SEEDED_LONG_TERM)
    for value in LONG_TERM_ENUM_VALUES:
        data = ALARM_DATA | {"enum_string2": {"value": value}}
        assert wechat.send(openid, SEEDED_LONG_TERM, data)["errcode"] == 0


@pytest.mark.parametrize(("field", "value"), [("miniprogram_state", "production"), ("lang", "fr_FR")])
def test_invalid_state_or_lang_is_47003(wechat: WeChat, field: str, value: str) -> None:
    answer = wechat.send(_subscribed(wechat), **{field: value})
    assert answer["errcode"] == 47003
    assert answer["errmsg"].startswith(f"argument invalid! {field} invalid")


def test_unknown_openid_40003(wechat: WeChat) -> None:
    answer = wechat.send("o" + "z" * 27)
    assert answer["errcode"] == 40003
    assert answer["errmsg"].startswith("invalid openid rid: ")


def test_unknown_template_40037(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    assert wechat.send(openid, "x" * 43, ORDER_DATA)["errcode"] == 40037
    body = {"touser": openid, "templateId": SEEDED_ONE_TIME, "data": ORDER_DATA}
    assert wechat.send_raw(body).json()["errcode"] == 40037


@pytest.mark.parametrize(("body", "errcode"), [(b"", 44002), (b"{not json", 47001), (b"[1, 2]", 47001)])
def test_body_errors(wechat: WeChat, body: bytes, errcode: int) -> None:
    assert wechat.send_raw(body).json()["errcode"] == errcode


def test_send_requires_post(wechat: WeChat) -> None:
    token = wechat.token()
    answer = wechat.http.get("/cgi-bin/message/subscribe/send", params={"access_token": token}).json()
    assert answer["errcode"] == 43002


def test_any_page_is_accepted_without_a_page_list(wechat: WeChat) -> None:
    assert wechat.send(_subscribed(wechat), page="pages/nowhere")["errcode"] == 0


def test_page_outside_the_configured_pages_is_41030(wechat: WeChat) -> None:
    wechat.configure(pages=["pages/index/index", "pages/order/detail"]).raise_for_status()
    openid = _subscribed(wechat, times=2)
    assert wechat.send(openid, page="pages/nowhere")["errcode"] == 41030
    assert wechat.send(openid, page="/pages/order/detail?id=42")["errcode"] == 0
    assert wechat.send(openid)["errcode"] == 0


def test_daily_quota_45009() -> None:
    with Sandbox(daily_quota=2) as sb:
        wechat = WeChat(sb)
        openid = _subscribed(wechat, times=3)
        assert [wechat.send(openid)["errcode"] for _ in range(3)] == [0, 0, 45009]
        wechat.advance(86400)
        assert wechat.send(openid)["errcode"] == 0


def test_gettemplate_lists_the_seeded_templates(wechat: WeChat) -> None:
    token = wechat.token()
    answer = wechat.http.get("/wxaapi/newtmpl/gettemplate", params={"access_token": token}).json()
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    by_id = {t["priTmplId"]: t for t in answer["data"]}
    assert set(by_id) == set(VALID)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", tid) for tid in by_id)
    assert by_id[SEEDED_ONE_TIME]["type"] == 2
    assert "{{thing1.DATA}}" in by_id[SEEDED_ONE_TIME]["content"]
    assert "keywordEnumValueList" not in by_id[SEEDED_ONE_TIME]
    long_term = by_id[SEEDED_LONG_TERM]
    assert long_term["type"] == 3
    assert long_term["keywordEnumValueList"] == [
        {"keywordCode": "enum_string2.DATA", "enumValueList": LONG_TERM_ENUM_VALUES}
    ]


def test_gettemplate_checks_the_token(wechat: WeChat) -> None:
    assert wechat.http.get("/wxaapi/newtmpl/gettemplate").json()["errcode"] == 41001
    assert wechat.http.post("/wxaapi/newtmpl/gettemplate").status_code == 404


def test_added_and_deleted_templates(wechat: WeChat) -> None:
    body = {
        "title": "报名结果通知",
        "content": "会议时间:{{date2.DATA}}\n会议地点:{{thing1.DATA}}\n",
        "type": 2,
    }
    template_id = wechat.http.post("/sandbox/templates", json=body).json()["priTmplId"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", template_id)
    openid = _subscribed(wechat, template_id, times=2)
    data = {"date2": {"value": "2016年8月8日"}, "thing1": {"value": "TIT会议室"}}
    assert wechat.send(openid, template_id, data)["errcode"] == 0
    assert wechat.http.delete(f"/sandbox/templates/{template_id}").status_code == 200
    assert wechat.send(openid, template_id, data)["errcode"] == 40037


def test_template_with_an_unknown_rule_is_refused(wechat: WeChat) -> None:
    body = {"title": "t", "content": "地点:{{site01.DATA}}\n", "type": 2}
    assert wechat.http.post("/sandbox/templates", json=body).status_code == 400
