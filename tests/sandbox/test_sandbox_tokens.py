"""Access tokens (wechat-api.md §2): /cgi-bin/token invalidation, stable_token rotation, errors."""

from __future__ import annotations

import time

import pytest
from sandbox_helpers import WeChat

from sandbox.server import Sandbox


def _send_errcode(wechat: WeChat, token: str) -> int:
    """The errcode of a send with ``token`` to an unknown user: 40003 once the token passed."""
    return int(wechat.send("o" + "0" * 27, token=token)["errcode"])


def test_classic_fetch_invalidates_the_previous_token_after_five_minutes(wechat: WeChat) -> None:
    first = wechat.classic_token()
    assert set(first) == {"access_token", "expires_in"}
    assert first["expires_in"] == 7200
    second = wechat.classic_token()
    assert second["access_token"] != first["access_token"]
    wechat.advance(299)
    assert _send_errcode(wechat, first["access_token"]) == 40003
    wechat.advance(2)
    assert _send_errcode(wechat, first["access_token"]) == 40001
    assert _send_errcode(wechat, second["access_token"]) == 40003


def test_classic_and_stable_tokens_are_isolated(wechat: WeChat) -> None:
    stable = wechat.stable_token()["access_token"]
    classic = wechat.classic_token()["access_token"]
    wechat.classic_token()
    wechat.advance(400)
    assert _send_errcode(wechat, stable) == 40003
    assert wechat.stable_token()["access_token"] == stable
    assert _send_errcode(wechat, classic) == 40001


def test_stable_normal_mode_returns_the_same_token_counting_down(wechat: WeChat) -> None:
    first = wechat.stable_token()
    assert first["expires_in"] == 7200
    wechat.advance(1000)
    again = wechat.stable_token()
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 6200


def test_stable_rotates_in_the_last_300_seconds_with_both_valid(wechat: WeChat) -> None:
    old = wechat.stable_token()["access_token"]
    wechat.advance(7200 - 301)
    assert wechat.stable_token()["access_token"] == old
    wechat.advance(2)
    rotated = wechat.stable_token()
    assert rotated["access_token"] != old
    assert rotated["expires_in"] == 7200
    assert wechat.stable_token()["access_token"] == rotated["access_token"]
    assert _send_errcode(wechat, old) == 40003
    wechat.advance(300)
    assert _send_errcode(wechat, old) == 42001
    assert _send_errcode(wechat, rotated["access_token"]) == 40003


def test_short_lifetime_rotates_in_the_last_half_and_expires_in_real_seconds() -> None:
    with Sandbox(token_lifetime=1.0) as sb:
        wechat = WeChat(sb)
        start = time.monotonic()
        token = wechat.stable_token()
        assert token["expires_in"] == 1
        assert wechat.stable_token()["access_token"] == token["access_token"]
        time.sleep(start + 0.7 - time.monotonic())
        rotated = wechat.stable_token()["access_token"]
        assert rotated != token["access_token"]
        assert _send_errcode(wechat, token["access_token"]) == 40003
        time.sleep(start + 1.2 - time.monotonic())
        assert _send_errcode(wechat, token["access_token"]) == 42001
        assert _send_errcode(wechat, rotated) == 40003


def test_force_refresh_invalidates_the_previous_token(wechat: WeChat) -> None:
    old = wechat.stable_token()["access_token"]
    new = wechat.stable_token(force_refresh=True)["access_token"]
    assert new != old
    assert _send_errcode(wechat, old) == 40001
    assert wechat.stable_token()["access_token"] == new


def test_force_refresh_within_30_seconds_refreshes_nothing(wechat: WeChat) -> None:
    first = wechat.stable_token(force_refresh=True)["access_token"]
    wechat.advance(29)
    assert wechat.stable_token(force_refresh=True)["access_token"] == first
    wechat.advance(1)
    assert wechat.stable_token(force_refresh=True)["access_token"] != first


def test_force_refresh_is_limited_to_20_a_day(wechat: WeChat) -> None:
    for _ in range(20):
        assert "access_token" in wechat.stable_token(force_refresh=True)
        wechat.advance(30)
    assert wechat.stable_token(force_refresh=True)["errcode"] == 45009
    assert "access_token" in wechat.stable_token()


def test_invalidate_all_tokens_then_normal_mode_issues_a_fresh_one(wechat: WeChat) -> None:
    stable = wechat.stable_token()["access_token"]
    classic = wechat.classic_token()["access_token"]
    wechat.http.post("/sandbox/tokens/invalidate").raise_for_status()
    assert _send_errcode(wechat, stable) == 40001
    assert _send_errcode(wechat, classic) == 40001
    fresh = wechat.stable_token()["access_token"]
    assert fresh != stable
    assert _send_errcode(wechat, fresh) == 40003


def test_stable_token_requires_post(wechat: WeChat) -> None:
    assert wechat.http.get("/cgi-bin/stable_token").json()["errcode"] == 43002


def test_stable_token_fields_outside_the_body_are_41002(wechat: WeChat) -> None:
    params = {"grant_type": "client_credential", "appid": "x", "secret": "y"}
    assert wechat.http.post("/cgi-bin/stable_token", params=params).json()["errcode"] == 41002


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"appid": None}, 41002),
        ({"secret": None}, 41004),
        ({"grant_type": "authorization_code"}, 40002),
        ({"appid": "wx9999999999sandbox"}, 40013),
        ({"secret": "wrong"}, 40125),
    ],
)
def test_stable_token_credential_errors(
    wechat: WeChat, overrides: dict[str, str | None], errcode: int
) -> None:
    assert wechat.stable_token(**overrides)["errcode"] == errcode


def test_classic_token_credential_errors(wechat: WeChat) -> None:
    assert wechat.classic_token(secret="wrong")["errcode"] == 40125
    assert wechat.classic_token(grant_type="x")["errcode"] == 40002


def test_token_errors_on_a_send(wechat: WeChat) -> None:
    response = wechat.http.post("/cgi-bin/message/subscribe/send", json={})
    assert response.json()["errcode"] == 41001
    assert _send_errcode(wechat, "not-a-token") == 40014
    token = wechat.token()
    wechat.advance(7200)
    assert _send_errcode(wechat, token) == 42001
