"""Bodies refused before any route runs (issue 14): other media types, deep nesting, unencodable text.

Each case broke the contract on the parent of this change (500 with an exception logged); on the
running stack each now answers a 4xx JSON error naming what was wrong, and the function logs no
exception for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from wx_flows import encrypted_push, grants, login, message, post_push

from local.stack import LocalStack

pytestmark = pytest.mark.integration
NESTED = "[" * 5000 + "]" * 5000
LONE_SURROGATE = '{"code": "\\ud800"}'


def _error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["error"] == code
    return str(body["message"])


@pytest.fixture
def quiet(stack: LocalStack) -> Iterator[None]:
    """Fails the test if a function logged an exception (a traceback) while it ran."""
    before = len(stack.logs())
    yield
    tracebacks = [line for line in stack.logs()[before:] if "Traceback" in line or '"level":"ERROR"' in line]
    assert tracebacks == []


@pytest.mark.parametrize("media", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_login_with_a_body_that_is_not_json_by_its_media_type_is_415(
    api: httpx.Client, quiet: None, media: str
) -> None:
    answer = api.post("/login", content=json.dumps({"code": "x"}), headers={"content-type": media})
    assert media in _error(answer, 415, "unsupported_media_type")


def test_a_signed_send_as_text_plain_is_415(signed, quiet: None) -> None:  # type: ignore[no-untyped-def]
    with signed() as client:
        answer = client.post(
            "/messages", content=json.dumps(message("o-anyone")), headers={"content-type": "text/plain"}
        )
    _error(answer, 415, "unsupported_media_type")


def test_json_with_a_charset_or_a_json_suffix_is_still_json(stack: LocalStack, api: httpx.Client) -> None:
    _, token = login(stack, api)
    for media in ("application/json; charset=utf-8", "application/vnd.wxsub+json"):
        answer = api.post(
            "/subscriptions",
            content=json.dumps({"results": {}}),
            headers={"content-type": media, "authorization": f"Bearer {token}"},
        )
        assert answer.status_code != 415, answer.text


@pytest.mark.parametrize("path", ["/login", "/wechat/push"])
def test_json_nested_5000_deep_is_400_not_a_recursion_error(
    api: httpx.Client, quiet: None, path: str
) -> None:
    answer = api.post(path, content=NESTED, headers={"content-type": "application/json"})
    assert "nested deeper than 32" in _error(answer, 400, "invalid_request")


def test_json_nested_32_deep_reaches_the_route(api: httpx.Client) -> None:
    body = '{"code": ' + "[" * 31 + "]" * 31 + "}"
    answer = api.post("/login", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text  # the route's validation: code is not a string


def test_an_unsigned_push_with_a_lone_surrogate_is_400_before_the_signature_check(
    api: httpx.Client, quiet: None
) -> None:
    answer = api.post(
        "/wechat/push", content='{"Encrypt": "\\ud800"}', headers={"content-type": "application/json"}
    )
    assert "not valid Unicode" in _error(answer, 400, "invalid_request")


def test_a_signed_push_with_a_lone_surrogate_is_400(
    stack: LocalStack, api: httpx.Client, quiet: None
) -> None:
    _error(post_push(stack, api, '{"ToUserName": "gh_x", "Event": "\\udfff"}'), 400, "invalid_request")


def test_a_login_with_a_lone_surrogate_is_400(api: httpx.Client, quiet: None) -> None:
    answer = api.post("/login", content=LONE_SURROGATE, headers={"content-type": "application/json"})
    _error(answer, 400, "invalid_request")


@pytest.mark.parametrize("field", ["FromUserName", "ToUserName", "TemplateId"])
def test_an_encrypted_push_whose_decrypted_text_holds_a_lone_surrogate_is_400_and_grants_nothing(
    stack: LocalStack, api: httpx.Client, quiet: None, field: str
) -> None:
    # The body guard sees only the ciphertext; the decrypted event must meet the same rule, or the
    # surrogate reaches the ledger write (a 503 WeChat retries forever) or is accepted as a grant.
    openid, token = login(stack, api)
    event = {
        "ToUserName": "gh_000sandbox0",
        "FromUserName": openid,
        "CreateTime": 1796000000,
        "MsgType": "event",
        "Event": "subscribe_msg_popup_event",
        "List": {
            "TemplateId": "SbxOrderShipped1-one_time-tmpl-000000000001",
            "SubscribeStatusString": "accept",
        },
    }
    if field == "TemplateId":
        event["List"]["TemplateId"] += "\udc00"  # type: ignore[index]
    else:
        event[field] = str(event[field]) + "\udc00"

    answer = encrypted_push(stack, api, event, openid=openid)

    assert "not valid Unicode" in _error(answer, 400, "invalid_request")
    assert grants(api, token) == {}


def test_a_push_body_over_64_kib_is_413_before_it_is_parsed(api: httpx.Client, quiet: None) -> None:
    body = "<xml>" + "<a></a>" * 20_000 + "</xml>"

    answer = api.post("/wechat/push?signature=x&timestamp=1&nonce=2", content=body)

    assert "at most 64 KiB" in _error(answer, 413, "payload_too_large")
