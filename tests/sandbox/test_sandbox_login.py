"""code2Session (wechat-api.md §1): single-use 5-minute codes and the login errors."""

from __future__ import annotations

import re

import pytest
from sandbox_helpers import WeChat

RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


def test_code_exchanges_for_openid_and_session_key_without_errcode(wechat: WeChat) -> None:
    login = wechat.login()
    answer = wechat.code2session(login["code"])
    assert set(answer) == {"openid", "session_key"}
    assert answer["openid"] == login["openid"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{28}", answer["openid"])
    assert re.fullmatch(r"[A-Za-z0-9+/]{22}==", answer["session_key"])
    assert wechat.http.get(f"/sandbox/users/{login['openid']}").json()["session_key"] == answer["session_key"]


def test_code_is_single_use_40163(wechat: WeChat) -> None:
    code = wechat.login()["code"]
    wechat.code2session(code)
    answer = wechat.code2session(code)
    assert answer["errcode"] == 40163
    assert answer["errmsg"].startswith("code been used, rid: ")


def test_code_expires_after_five_minutes_40029(wechat: WeChat) -> None:
    fresh, stale = wechat.login()["code"], wechat.login()["code"]
    wechat.advance(299)
    assert "openid" in wechat.code2session(fresh)
    wechat.advance(2)
    assert wechat.code2session(stale)["errcode"] == 40029


def test_used_code_after_expiry_is_40029(wechat: WeChat) -> None:
    code = wechat.login()["code"]
    wechat.code2session(code)
    wechat.advance(301)
    assert wechat.code2session(code)["errcode"] == 40029


def test_unknown_code_40029_with_rid(wechat: WeChat) -> None:
    answer = wechat.code2session("0" * 32)
    assert answer["errcode"] == 40029
    assert answer["errmsg"].startswith("invalid code, rid: ")
    assert RID.search(answer["errmsg"])


def test_code_of_another_appid_is_40029(wechat: WeChat) -> None:
    code = wechat.login()["code"]
    wechat.configure(appid="wx1111111111sandbox").raise_for_status()
    assert wechat.code2session(code, appid="wx1111111111sandbox")["errcode"] == 40029


def test_blocked_user_40226(wechat: WeChat) -> None:
    openid = wechat.user(blocked=True)
    answer = wechat.code2session(wechat.login(openid)["code"])
    assert answer["errcode"] == 40226


def test_login_creates_or_reuses_the_user(wechat: WeChat) -> None:
    openid = wechat.user(openid="o" + "x" * 27)
    assert wechat.login(openid)["openid"] == openid
    assert wechat.code2session(wechat.login(openid)["code"])["openid"] == openid


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"appid": ""}, 41002),
        ({"secret": ""}, 41004),
        ({"js_code": ""}, 41008),
        ({"grant_type": "client_credential"}, 40002),
        ({"appid": "wx9999999999sandbox"}, 40013),
        ({"secret": "wrong"}, 40125),
    ],
)
def test_bad_parameters(wechat: WeChat, overrides: dict[str, str], errcode: int) -> None:
    code = wechat.login()["code"]
    answer = wechat.code2session(code, **overrides)
    assert answer["errcode"] == errcode
    assert RID.search(answer["errmsg"])


def test_failed_exchange_does_not_spend_the_code(wechat: WeChat) -> None:
    code = wechat.login()["code"]
    assert wechat.code2session(code, secret="wrong")["errcode"] == 40125
    assert "openid" in wechat.code2session(code)


def test_errors_are_http_200_json(wechat: WeChat) -> None:
    response = wechat.http.get("/sns/jscode2session")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["errcode"] == 41002
