"""The grant ledger and the WeChat push endpoint: one accept = one send, counted once."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from wx_flows import (
    LONG_TERM,
    LONG_TERM_DATA_BASE,
    ONE_TIME,
    accept,
    aws_client,
    encrypted_push,
    fault,
    grants,
    inbox,
    login,
    message,
    one_time_left,
    popup_event,
    post_push,
    push_popup,
    report,
    sandbox,
    send_calls,
    settle_pushes,
)

from local.stack import LocalStack
from sandbox import crypto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_accept_push_grant_send_then_a_second_send_is_409_without_calling_wechat(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, token = login(reset_stack, api)
    accept(reset_stack, openid)
    assert one_time_left(api, token) == 1

    first = signed().post("/messages", json=message(openid))
    calls_after_first = send_calls(reset_stack)  # one, or two if an earlier test left the token stale
    second = signed().post("/messages", json=message(openid))

    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]) == (409, "no_grant")
    assert send_calls(reset_stack) == calls_after_first
    assert len(inbox(reset_stack, openid)) == 1


def test_20_parallel_sends_on_one_grant_deliver_exactly_one(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid)
    client = signed()

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(
            pool.map(lambda _: client.post("/messages", json=message(openid)).status_code, range(20))
        )

    assert sorted(statuses) == [200] + [409] * 19
    assert len(inbox(reset_stack, openid)) == 1


def test_ledger_ignore_tries_wechat_and_learns_from_43101(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, token = login(reset_stack, api)

    answer = signed().post("/messages", json=message(openid, ledger="ignore"))

    assert (answer.status_code, answer.json()["error"]) == (409, "no_grant")
    assert send_calls(reset_stack) == 1
    assert one_time_left(api, token) == 0


def test_an_over_count_heals_itself_on_the_next_send(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, token = login(reset_stack, api)
    report(api, token, {ONE_TIME: "accept"})  # the ledger counts; WeChat never saw this accept

    answer = signed().post("/messages", json=message(openid))

    assert (answer.status_code, answer.json()["error"]) == (409, "no_grant")
    assert one_time_left(api, token) == 0


@pytest.mark.parametrize(
    "forge",
    ["signature", "appid", "stale"],
    ids=["forged-signature", "wrong-appid", "stale-timestamp"],
)
def test_a_forged_push_is_401_and_changes_nothing(
    reset_stack: LocalStack, api: httpx.Client, forge: str
) -> None:
    openid, token = login(reset_stack, api)
    event = _popup(openid, ONE_TIME)
    if forge == "signature":
        answer = push_popup(reset_stack, api, openid, ONE_TIME, token="not-the-push-token")
    elif forge == "appid":
        answer = encrypted_push(reset_stack, api, event, appid="wx0000000000forged")
    else:
        answer = push_popup(reset_stack, api, openid, ONE_TIME, timestamp=int(time.time()) - 3600)

    assert (answer.status_code, answer.json()["error"]) == (401, "bad_signature")
    assert one_time_left(api, token) == 0


def test_the_same_push_twice_counts_once(reset_stack: LocalStack, api: httpx.Client) -> None:
    openid, token = login(reset_stack, api)
    created = int(time.time())

    first = push_popup(reset_stack, api, openid, ONE_TIME, create_time=created)
    retry = push_popup(reset_stack, api, openid, ONE_TIME, create_time=created)

    assert (first.status_code, first.text) == (200, "success")
    assert (retry.status_code, retry.text) == (200, "success")
    assert one_time_left(api, token) == 1


def test_a_safe_mode_push_counts(reset_stack: LocalStack, api: httpx.Client) -> None:
    openid, token = login(reset_stack, api)

    answer = encrypted_push(reset_stack, api, _popup(openid, ONE_TIME))

    assert (answer.status_code, answer.text) == (200, "success")
    assert one_time_left(api, token) == 1


def test_a_push_and_a_client_report_within_10_minutes_are_one_accept(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    openid, token = login(reset_stack, api)

    push_popup(reset_stack, api, openid, ONE_TIME)
    report(api, token, {ONE_TIME: "acceptWithAudio"})

    assert one_time_left(api, token) == 1


def test_two_client_reports_are_two_accepts(reset_stack: LocalStack, api: httpx.Client) -> None:
    _, token = login(reset_stack, api)

    report(api, token, {ONE_TIME: "accept"})
    report(api, token, {ONE_TIME: "accept"})

    assert one_time_left(api, token) == 2


def test_a_report_then_a_push_11_minutes_later_are_two_accepts(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    openid, token = login(reset_stack, api)

    report(api, token, {ONE_TIME: "accept"})
    push_popup(reset_stack, api, openid, ONE_TIME, create_time=int(time.time()) + 11 * 60)

    assert one_time_left(api, token) == 2


def test_a_change_event_reject_takes_every_grant_away(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, token = login(reset_stack, api)
    accept(reset_stack, openid)
    with sandbox(reset_stack) as sb:
        sb.post("/sandbox/change", json={"openid": openid, "template_id": ONE_TIME})
    settle_pushes(reset_stack)

    answer = signed().post("/messages", json=message(openid))

    assert one_time_left(api, token) == 0
    assert (answer.status_code, answer.json()["error"]) == (409, "no_grant")
    assert send_calls(reset_stack) == 0


def test_a_long_term_grant_is_not_consumed(reset_stack: LocalStack, signed, api: httpx.Client) -> None:
    openid, token = login(reset_stack, api)
    accept(reset_stack, openid, LONG_TERM)
    enum_value = next(
        k["enum_values"][0]
        for t in signed().get("/templates").json()["templates"]
        if t["template_id"] == LONG_TERM
        for k in t["keywords"]
        if k["rule"] == "enum"
    )
    body = {
        "openid": openid,
        "template_id": LONG_TERM,
        "data": {**LONG_TERM_DATA_BASE, "enum_string2": enum_value},
    }

    statuses = [signed().post("/messages", json=body).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert grants(api, token)[LONG_TERM]["long_term"] is True


def test_a_sent_event_marks_the_delivery_delivered(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid)
    sent = signed().post("/messages", json=message(openid)).json()

    settle_pushes(reset_stack)
    record = signed().get(f"/messages/{sent['message_id']}")

    assert record.status_code == 200
    assert record.json()["status"] == "delivered"
    assert record.json()["msgid"] == sent["msgid"]


def test_a_hung_send_ends_unknown_and_is_settled_by_its_sent_event(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, token = login(reset_stack, api)
    accept(reset_stack, openid)
    with sandbox(reset_stack) as sb:
        sb.post("/sandbox/config", json={"push_url": None})
    fault(reset_stack, hang=4, deliver=True)

    answer = signed(timeout=60).post("/messages", json=message(openid))
    unknown = signed().get(f"/messages/{answer.json()['message_id']}").json()
    with sandbox(reset_stack) as sb:
        sb.post("/sandbox/config", json={"push_url": f"{reset_stack.api_url}/wechat/push"})
        msgid = sb.get("/sandbox/inbox", params={"openid": openid}).json()["messages"][0]["msgid"]
    sent_event = {
        "ToUserName": "gh_000sandbox0",
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "event",
        "Event": "subscribe_msg_sent_event",
        "List": {"TemplateId": ONE_TIME, "MsgID": msgid, "ErrorCode": "0", "ErrorStatus": "success"},
    }
    post_push(reset_stack, api, json.dumps(sent_event))
    settled = signed().get(f"/messages/{answer.json()['message_id']}").json()

    assert answer.status_code == 504
    assert unknown["status"] == "unknown"
    assert settled["status"] == "delivered"
    assert settled["msgid"] == msgid
    assert one_time_left(api, token) == 0


def test_wechat_url_verification_answers_the_raw_echostr(reset_stack: LocalStack) -> None:
    with sandbox(reset_stack) as sb:
        verdict = sb.post("/sandbox/verify").json()

    assert verdict["ok"] is True


def test_session_routes_refuse_a_missing_or_bad_token(stack: LocalStack, api: httpx.Client) -> None:
    missing = api.get("/subscriptions")
    bad = api.get("/subscriptions", headers={"Authorization": "Bearer abc.def.ghi"})

    assert (missing.status_code, missing.json()["error"]) == (401, "invalid_session")
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_session")


def _popup(openid: str, template_id: str) -> dict[str, Any]:
    return popup_event(openid, template_id)


def test_subscription_reports_are_rate_limited_per_user(reset_stack: LocalStack, api: httpx.Client) -> None:
    _, token = login(reset_stack, api)
    _, other = login(reset_stack, api)

    statuses = []
    while 429 not in statuses and len(statuses) < 61:  # 30 a minute; a minute boundary may reset it once
        statuses.append(report(api, token, {ONE_TIME: "reject"}).status_code)
    neighbour = report(api, other, {ONE_TIME: "reject"})

    assert statuses[-1] == 429
    assert 30 <= len(statuses) - 1 <= 60
    assert set(statuses[:-1]) == {200}
    assert neighbour.status_code == 200


def test_a_report_naming_more_ids_than_any_popup_can_is_refused(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    _, token = login(reset_stack, api)

    answer = report(api, token, {f"tmpl{i}": "accept" for i in range(10)})

    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request")
    assert grants(api, token) == {}


@pytest.mark.parametrize("body", [b"\xa3\xd8<xml>", b"{not json", b"<xml><ToUserName>", b""])
def test_a_signed_push_that_cannot_be_decoded_is_400(
    reset_stack: LocalStack, api: httpx.Client, body: bytes
) -> None:
    answer = post_push(reset_stack, api, body)

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_a_push_retried_re_encrypted_counts_once(reset_stack: LocalStack, api: httpx.Client) -> None:
    openid, token = login(reset_stack, api)
    event = _popup(openid, ONE_TIME)

    first = encrypted_push(reset_stack, api, event)
    retry = encrypted_push(reset_stack, api, event)  # new random bytes, nonce and timestamp

    assert (first.status_code, retry.status_code) == (200, 200)
    assert one_time_left(api, token) == 1


def test_a_retry_while_the_first_push_is_still_applied_is_refused_so_a_failed_first_is_not_lost(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    """WeChat retries after 5 s without an answer. The first delivery's grant write is slow and then
    fails; the retry that came meanwhile must not be told "success", or the accept is lost."""
    openid, token = login(reset_stack, api)
    created = int(time.time())
    reset_stack.aws_fault("UpdateItem", table="GrantsTable", count=3, error="internal", delay=1.5)

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(push_popup, reset_stack, api, openid, ONE_TIME, create_time=created)
        time.sleep(1.0)
        during = push_popup(reset_stack, api, openid, ONE_TIME, create_time=created)
        failed = first.result()
    after = push_popup(reset_stack, api, openid, ONE_TIME, create_time=created)
    again = push_popup(reset_stack, api, openid, ONE_TIME, create_time=created)

    assert failed.status_code >= 500
    assert (during.status_code, during.json()["error"]) == (503, "push_in_progress")
    assert [(r.status_code, r.text) for r in (after, again)] == [(200, "success"), (200, "success")]
    assert one_time_left(api, token) == 1


def _grant_item(stack: LocalStack, openid: str, template_id: str) -> dict[str, object]:
    table = next(t.name for t in stack.description.tables if t.logical_id == "GrantsTable")
    item = aws_client(stack, "dynamodb").get_item(
        TableName=table, Key={"openid": {"S": openid}, "template_id": {"S": template_id}}, ConsistentRead=True
    )
    return dict(item["Item"])


def test_a_reported_template_no_registry_knows_is_kept_for_seven_days_unless_wechat_confirms_it(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    """'nosuch' used to get a grant for good; a template WeChat really has is learnt by a sync."""
    openid, token = login(reset_stack, api)
    before = int(time.time())

    assert report(api, token, {"nosuch": "accept", ONE_TIME: "accept"}).status_code == 200
    unknown, known = _grant_item(reset_stack, openid, "nosuch"), _grant_item(reset_stack, openid, ONE_TIME)
    push_popup(reset_stack, api, openid, "nosuch")  # WeChat itself pushes about it: it exists
    confirmed = _grant_item(reset_stack, openid, "nosuch")

    week = 7 * 86400
    assert before + week <= int(unknown["expires_at"]["N"]) <= int(time.time()) + week  # type: ignore[index]
    assert "expires_at" not in known
    assert "expires_at" not in confirmed


def test_a_user_holds_grants_for_at_most_50_templates(reset_stack: LocalStack, api: httpx.Client) -> None:
    _, token = login(reset_stack, api)
    for start in range(0, 50, 5):  # five a report, as the popup allows at most three to five
        batch = {f"tmpl-{i:02d}": "reject" for i in range(start, start + 5)}
        assert report(api, token, batch).status_code == 200, start

    refused = report(api, token, {"tmpl-50": "accept"})
    again = report(api, token, {"tmpl-07": "accept"})

    assert (refused.status_code, refused.json()["error"]) == (422, "too_many_templates")
    assert "50" in refused.json()["message"]
    assert again.status_code == 200
    assert len(grants(api, token)) == 50


def test_an_observed_plaintext_signature_cannot_carry_another_event(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    """A plaintext push is signed over Token, timestamp and nonce only: whoever saw one push URL
    could send any body under it for five minutes. The pair now serves one push only."""
    openid, token = login(reset_stack, api)
    other_openid, other_token = login(reset_stack, api)
    push_token = reset_stack.secure_strings[reset_stack.description.parameters["PushTokenParam"]]
    stamp, nonce = str(int(time.time())), "424242"
    query = {"signature": crypto.signature(push_token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
    headers = {"content-type": "application/json"}
    seen = json.dumps(popup_event(openid, ONE_TIME))

    first = api.post("/wechat/push", params=query, content=seen, headers=headers)
    retried = api.post("/wechat/push", params=query, content=seen, headers=headers)  # WeChat's retry
    forged = api.post(
        "/wechat/push", params=query, content=json.dumps(popup_event(other_openid, ONE_TIME)), headers=headers
    )

    assert [(r.status_code, r.text) for r in (first, retried)] == [(200, "success"), (200, "success")]
    assert (forged.status_code, forged.json()["error"]) == (401, "bad_signature")
    assert one_time_left(api, token) == 1
    assert one_time_left(api, other_token) == 0
