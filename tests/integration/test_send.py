"""POST /messages on the local stack: delivery, token healing, retries, idempotency, timeouts."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from wx_flows import (
    ONE_TIME,
    accept,
    fault,
    inbox,
    login,
    message,
    one_time_left,
    sandbox,
    send_calls,
    stored_token,
)

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def subscriber(reset_stack: LocalStack, api: httpx.Client) -> tuple[str, str]:
    """A logged-in user holding one grant for the one-time template."""
    openid, token = login(reset_stack, api)
    accept(reset_stack, openid)
    return openid, token


def test_a_send_is_delivered_once_with_wechats_msgid_as_an_exact_string(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber

    answer = signed().post("/messages", json=message(openid, page="pages/order/detail?id=7"))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "sent"
    assert isinstance(body["msgid"], str) and int(body["msgid"]) > 2**53
    delivered = inbox(reset_stack, openid)
    assert [m["msgid"] for m in delivered] == [body["msgid"]]
    assert delivered[0]["data"]["thing1"] == {"value": "机械键盘"}
    assert delivered[0]["page"] == "pages/order/detail?id=7"
    assert delivered[0]["miniprogram_state"] == "developer"


def test_values_may_be_plain_strings_or_value_objects(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber
    body = message(openid)
    body["data"]["thing1"] = {"value": "机械键盘"}

    assert signed().post("/messages", json=body).status_code == 200
    assert inbox(reset_stack, openid)[0]["data"]["thing1"] == {"value": "机械键盘"}


def test_all_tokens_invalidated_mid_way_heal_with_exactly_one_delivery(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber
    before = stored_token(reset_stack)["access_token"]
    with sandbox(reset_stack) as sb:
        sb.post("/sandbox/tokens/invalidate")

    answer = signed().post("/messages", json=message(openid))

    assert answer.status_code == 200, answer.text
    assert len(inbox(reset_stack, openid)) == 1
    assert stored_token(reset_stack)["access_token"] != before


def test_wechat_busy_twice_then_delivered_once(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber
    fault(reset_stack, errcode=-1, count=2)

    answer = signed().post("/messages", json=message(openid))

    assert answer.status_code == 200, answer.text
    assert send_calls(reset_stack) == 3
    assert len(inbox(reset_stack, openid)) == 1


def test_47003_is_never_retried_and_gives_the_grant_back(
    reset_stack: LocalStack, signed, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    fault(reset_stack, errcode=47003, count=3)

    answer = signed().post("/messages", json=message(openid))

    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_data"
    assert send_calls(reset_stack) == 1
    assert one_time_left(api, token) == 1


def test_an_idempotent_retry_returns_the_first_answer_without_a_second_wechat_call(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber
    client = signed(headers={"Idempotency-Key": "order-1001-shipped"})

    first = client.post("/messages", json=message(openid))
    again = client.post("/messages", json=message(openid))

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert send_calls(reset_stack) == 1
    assert len(inbox(reset_stack, openid)) == 1


def test_the_same_key_with_another_body_is_refused(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber
    client = signed(headers={"Idempotency-Key": "k-reused"})
    client.post("/messages", json=message(openid))

    answer = client.post("/messages", json=message(openid, page="pages/other/other"))

    assert answer.status_code == 422
    assert answer.json()["error"] == "idempotency_key_reused"
    assert send_calls(reset_stack) == 1


def test_a_hung_send_is_504_outcome_unknown_and_is_not_sent_twice(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber
    fault(reset_stack, hang=WECHAT_TIMEOUT + 2, deliver=True)
    client = signed(headers={"Idempotency-Key": "hung-1"}, timeout=60)

    first = client.post("/messages", json=message(openid))
    again = client.post("/messages", json=message(openid))

    assert first.status_code == 504
    assert first.json()["error"] == "outcome_unknown"
    assert first.json()["message_id"]
    assert again.json() == first.json()
    assert send_calls(reset_stack) == 1
    _wait(lambda: len(inbox(reset_stack, openid)) == 1)


def test_wechat_down_is_503_and_the_same_key_may_be_retried(
    reset_stack: LocalStack, signed, subscriber: tuple[str, str]
) -> None:
    openid, _ = subscriber
    fault(reset_stack, errcode=-1, count=3)
    client = signed(headers={"Idempotency-Key": "retry-after-503"})

    down = client.post("/messages", json=message(openid))
    later = client.post("/messages", json=message(openid))

    assert down.status_code == 503
    assert down.json()["error"] == "wechat_unavailable"
    assert later.status_code == 200
    assert len(inbox(reset_stack, openid)) == 1


@pytest.mark.parametrize(
    ("errcode", "status", "error"),
    [(45011, 429, "rate_limited"), (45009, 429, "quota_exhausted"), (40164, 503, "misconfigured")],
)
def test_throttling_quota_and_credential_errors_map_to_their_codes(
    reset_stack: LocalStack,
    signed,
    api: httpx.Client,
    subscriber: tuple[str, str],
    errcode: int,
    status: int,
    error: str,
) -> None:
    openid, token = subscriber
    fault(reset_stack, errcode=errcode, count=3)

    answer = signed().post("/messages", json=message(openid))

    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert inbox(reset_stack, openid) == []
    assert one_time_left(api, token) == 1


def test_an_openid_of_another_app_is_422_invalid_openid(reset_stack: LocalStack, signed) -> None:
    answer = signed().post("/messages", json=message("o" * 28, ledger="ignore"))

    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_openid"


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        (b"[1, 2", 400, "JSON"),
        (json.dumps({"template_id": ONE_TIME, "data": {"thing1": "x"}}).encode(), 422, "openid"),
        (json.dumps({"openid": "o", "template_id": ONE_TIME, "data": {}}).encode(), 422, "data"),
        (json.dumps({"openid": "o", "template_id": ONE_TIME, "data": {"thing1": 5}}).encode(), 422, "thing1"),
        (
            json.dumps({"openid": "o", "template_id": ONE_TIME, "data": {"x": "1"}, "lang": "fr"}).encode(),
            422,
            "lang",
        ),
    ],
    ids=["not-json", "no-openid", "empty-data", "number-value", "bad-lang"],
)
def test_bad_send_bodies_are_4xx_json_naming_the_field(
    stack: LocalStack, signed, body: bytes, status: int, named: str
) -> None:
    answer = signed().post("/messages", content=body, headers={"content-type": "application/json"})

    assert answer.status_code == status
    assert answer.json()["error"] == "invalid_request"
    assert named in answer.json()["message"]


def test_the_refresher_writes_ssm_only_when_the_token_changed(reset_stack: LocalStack) -> None:
    version = stored_token(reset_stack)["version"]

    reset_stack.run_schedule("RefreshTokenFunction")
    unchanged = stored_token(reset_stack)["version"]
    with sandbox(reset_stack) as sb:
        sb.post("/sandbox/tokens/invalidate")
    reset_stack.run_schedule("RefreshTokenFunction")

    assert unchanged == version
    assert stored_token(reset_stack)["version"] == version + 1


WECHAT_TIMEOUT = 2


def _wait(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.mark.parametrize("message_id", ["x" * 3000, "not-hex", "0" * 65])
def test_a_malformed_message_id_is_422_not_a_server_error(stack: LocalStack, signed, message_id: str) -> None:
    answer = signed().get(f"/messages/{message_id}")

    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request")


def test_an_unknown_message_id_is_404(stack: LocalStack, signed) -> None:
    answer = signed().get(f"/messages/{'0' * 28}")

    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


@pytest.mark.parametrize(("route", "iam"), [("/login", False), ("/messages", True)])
def test_a_body_that_is_not_utf8_is_400_invalid_request(
    stack: LocalStack, api: httpx.Client, signed, route: str, iam: bool
) -> None:
    client = signed() if iam else api

    answer = client.post(route, content=b"\xa3\xd8{", headers={"content-type": "application/json"})

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
