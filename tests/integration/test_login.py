"""POST /login on the local stack against the WeChat sandbox."""

from __future__ import annotations

import httpx
import pytest
from wx_flows import fault, new_code, sandbox

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_a_code_logs_the_user_in_and_a_retried_code_gets_the_same_session(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    code, openid = new_code(reset_stack)

    first = api.post("/login", json={"code": code})
    retried = api.post("/login", json={"code": code})

    assert first.status_code == 200
    body = first.json()
    assert body["openid"] == openid
    assert 0 < body["expires_in"] <= 604800
    assert set(body) == {"token", "openid", "expires_in"}
    assert retried.status_code == 200
    assert retried.json()["token"] == body["token"]


def test_the_session_key_never_reaches_the_mini_program(reset_stack: LocalStack, api: httpx.Client) -> None:
    code, openid = new_code(reset_stack)
    with sandbox(reset_stack) as sb:
        session_key = sb.get(f"/sandbox/users/{openid}").json()["session_key"]

    answer = api.post("/login", json={"code": code})

    assert answer.status_code == 200
    assert session_key not in answer.text


def test_an_invalid_code_is_400_invalid_code(reset_stack: LocalStack, api: httpx.Client) -> None:
    answer = api.post("/login", json={"code": "not-a-code-wechat-issued"})

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_code"


def test_a_code_another_backend_already_exchanged_is_400_code_used(
    reset_stack: LocalStack, api: httpx.Client, local_env: dict[str, str]
) -> None:
    code, _ = new_code(reset_stack)
    with sandbox(reset_stack) as sb:
        sb.get(
            "/sns/jscode2session",
            params={
                "appid": reset_stack.appid,
                "secret": local_env["WECHAT_APP_SECRET"],
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )

    answer = api.post("/login", json={"code": code})

    assert answer.status_code == 400
    assert answer.json()["error"] == "code_used"


def test_a_blocked_user_is_403_login_blocked(reset_stack: LocalStack, api: httpx.Client) -> None:
    with sandbox(reset_stack) as sb:
        openid = sb.post("/sandbox/users", json={"blocked": True}).json()["openid"]
    code, _ = new_code(reset_stack, openid)

    answer = api.post("/login", json={"code": code})

    assert answer.status_code == 403
    assert answer.json()["error"] == "login_blocked"


def test_a_refused_app_secret_is_503_misconfigured_without_the_secret(
    reset_stack: LocalStack, api: httpx.Client, local_env: dict[str, str]
) -> None:
    code, _ = new_code(reset_stack)
    fault(reset_stack, path="/sns/jscode2session", errcode=40125)

    answer = api.post("/login", json={"code": code})

    assert answer.status_code == 503
    assert answer.json()["error"] == "misconfigured"
    assert local_env["WECHAT_APP_SECRET"] not in answer.text


def test_wechat_busy_once_on_login_is_retried(reset_stack: LocalStack, api: httpx.Client) -> None:
    code, openid = new_code(reset_stack)
    fault(reset_stack, path="/sns/jscode2session", errcode=-1)

    answer = api.post("/login", json={"code": code})

    assert answer.status_code == 200
    assert answer.json()["openid"] == openid


def test_wechat_busy_on_every_try_is_503_wechat_unavailable(
    reset_stack: LocalStack, api: httpx.Client
) -> None:
    code, _ = new_code(reset_stack)
    fault(reset_stack, path="/sns/jscode2session", errcode=-1, count=3)

    answer = api.post("/login", json={"code": code})

    assert answer.status_code == 503
    assert answer.json()["error"] == "wechat_unavailable"


def test_login_throttled_by_wechat_is_429_rate_limited(reset_stack: LocalStack, api: httpx.Client) -> None:
    code, _ = new_code(reset_stack)
    fault(reset_stack, path="/sns/jscode2session", errcode=45011, count=3)

    answer = api.post("/login", json={"code": code})

    assert (answer.status_code, answer.json()["error"]) == (429, "rate_limited")


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        (b"{not json", 400, "JSON"),
        (b"{}", 422, "code"),
        (b'{"code": 42}', 422, "code"),
        (b'{"code": ""}', 422, "code"),
    ],
    ids=["not-json", "missing", "mistyped", "empty"],
)
def test_bad_login_bodies_are_4xx_json_naming_the_problem(
    stack: LocalStack, api: httpx.Client, body: bytes, status: int, named: str
) -> None:
    answer = api.post("/login", content=body, headers={"content-type": "application/json"})

    assert answer.status_code == status
    assert answer.json()["error"] == "invalid_request"
    assert named in answer.json()["message"]
    assert "Traceback" not in answer.text
