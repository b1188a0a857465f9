"""The template registry and keyword validation on the local stack: 47003 never reaches WeChat."""

from __future__ import annotations

import httpx
import pytest
from wx_flows import LONG_TERM, ONE_TIME, accept, inbox, login, message, sandbox, send_calls

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_a_21_character_thing_is_refused_naming_thing1_and_wechat_is_not_called(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid)
    body = message(openid)
    body["data"]["thing1"] = "一" * 21

    answer = signed().post("/messages", json=body)

    assert answer.status_code == 422
    refused = answer.json()
    assert refused["error"] == "invalid_data"
    [violation] = refused["violations"]
    assert (violation["keyword"], violation["rule"], violation["length"], violation["limit"]) == (
        "thing1",
        "thing",
        21,
        20,
    )
    assert send_calls(reset_stack) == 0


def test_with_fit_the_message_is_delivered_with_a_20_character_value(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid)
    body = message(openid, fit=True)
    body["data"]["thing1"] = "一" * 25

    answer = signed().post("/messages", json=body)

    assert answer.status_code == 200, answer.text
    value = inbox(reset_stack, openid)[0]["data"]["thing1"]["value"]
    assert len(value) == 20
    assert value.endswith("…")


def test_every_failing_keyword_is_named_with_its_rule(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, _ = login(reset_stack, api)
    body = message(openid)
    body["data"].update({"phrase5": "abc", "amount4": "¥", "thing9": "x"})
    del body["data"]["time2"]

    answer = signed().post("/messages", json=body)

    assert answer.status_code == 422
    problems = {(v["keyword"], v["problem"]) for v in answer.json()["violations"]}
    assert {k for k, _ in problems} == {"phrase5", "amount4", "thing9", "time2"}
    assert ("time2", "missing") in problems
    assert ("thing9", "unknown_keyword") in problems


def test_a_template_wechat_does_not_know_is_422_unknown_template(reset_stack: LocalStack, signed) -> None:
    answer = signed().post("/messages", json=message("o" * 28, template_id="NoSuchTemplate" + "x" * 29))

    assert answer.status_code == 422
    assert answer.json()["error"] == "unknown_template"
    assert send_calls(reset_stack) == 0


def test_a_template_added_after_the_last_sync_is_found_by_the_send(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    with sandbox(reset_stack) as sb:
        template_id = sb.post(
            "/sandbox/templates",
            json={
                "title": "到货提醒",
                "content": "商品:{{thing1.DATA}}\n",
                "example": "商品:键盘\n",
                "type": 2,
            },
        ).json()["priTmplId"]
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid, template_id)

    answer = signed().post(
        "/messages", json={"openid": openid, "template_id": template_id, "data": {"thing1": "键盘"}}
    )

    assert answer.status_code == 200, answer.text


def test_get_templates_lists_keywords_rules_limits_and_enum_values(reset_stack: LocalStack, signed) -> None:
    client = signed()
    assert client.post("/templates/sync").json()["templates"] >= 2

    templates = {t["template_id"]: t for t in client.get("/templates").json()["templates"]}

    one_time = templates[ONE_TIME]
    assert one_time["kind"] == "one_time"
    assert {k["name"]: (k["rule"], k["limit"]) for k in one_time["keywords"]}["thing1"] == ("thing", 20)
    long_term = templates[LONG_TERM]
    assert long_term["kind"] == "long_term"
    enum = next(k for k in long_term["keywords"] if k["rule"] == "enum")
    assert enum["enum_values"]


def test_the_registry_routes_need_iam(stack: LocalStack, api: httpx.Client) -> None:
    assert api.get("/templates").status_code == 403
    assert api.post("/templates/sync").status_code == 403
