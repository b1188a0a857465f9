"""LoginService: a wx.login code becomes one session, and a retried code gets that same session."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from wxsub import errors
from wxsub.services.login import LoginResult, LoginService
from wxsub.sessions import SessionSigner
from wxsub.wechat.api.auth import AuthApi, Code2Session
from wxsub.wechat.client import (
    WeChatAmbiguous,
    WeChatApiError,
    WeChatError,
    WeChatTransport,
    WeChatUnreachable,
)

T0 = int(time.time())  # sessions are verified against the real clock
SECRET, APPID, TTL = "app-secret", "wx-app", 3600
CODE, OPENID, SESSION_KEY = "0a3Xyz-wx-login-code", "o-alice", "tiihtNczf5v6AKRyjwEUhQ=="
SIGNER = SessionSigner("k" * 32, TTL, APPID)


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Records each wait; ``then`` runs what another container does meanwhile."""

    def __init__(self, then: Callable[[], None] | None = None) -> None:
        self.seconds: list[float] = []
        self._then = then

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        if self._then is not None:
            self._then()


class WeChat:
    """jscode2session: each code is exchanged once; ``failures`` are answered first."""

    def __init__(self, *failures: WeChatError, codes: dict[str, str] | None = None) -> None:
        self._failures = list(failures)
        self._codes = {CODE: OPENID} if codes is None else codes
        self._used: set[str] = set()
        self.calls = 0

    def code2session(self, secret: str, code: str) -> Code2Session:
        assert secret == SECRET
        self.calls += 1
        if self._failures:
            raise self._failures.pop(0)
        if code in self._used:
            raise WeChatApiError(40163, "code been used")
        if code not in self._codes:
            raise WeChatApiError(40029, "invalid code")
        self._used.add(code)
        return Code2Session(self._codes[code], SESSION_KEY)


class State:
    """The state table's short-lived records, expiring by the clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, pk: str) -> dict[str, Any] | None:
        item = self.items.get(pk)
        if item is None or item["expires_at"] <= self._clock():
            return None
        return dict(item)

    def put_new(self, pk: str, ttl_seconds: int, **attributes: Any) -> bool:
        if self.get(pk) is not None:
            return False
        self.items[pk] = {"pk": pk, "expires_at": int(self._clock()) + ttl_seconds, **attributes}
        return True


class SlowWrites:
    """A state table whose writes land only when ``land`` is called: another container's in-flight write."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._pending: list[Callable[[], bool]] = []

    def get(self, pk: str) -> dict[str, Any] | None:
        return self._state.get(pk)

    def put_new(self, pk: str, ttl_seconds: int, **attributes: Any) -> bool:
        self._pending.append(lambda: self._state.put_new(pk, ttl_seconds, **attributes))
        return True

    def land(self) -> None:
        while self._pending:
            self._pending.pop(0)()


def login_service(wechat: WeChat, state: State | SlowWrites, clock: Clock, sleep: Sleeps) -> LoginService:
    return LoginService(
        wechat,  # type: ignore[arg-type]
        state,  # type: ignore[arg-type]
        lambda: SECRET,
        lambda: SIGNER,
        clock=clock,
        sleep=sleep,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> State:
    return State(clock)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def test_a_first_code_exchange_issues_a_session_for_the_users_openid(
    state: State, clock: Clock, sleeps: Sleeps
) -> None:
    wechat = WeChat()

    result = login_service(wechat, state, clock, sleeps).login(CODE)

    assert (result.openid, result.expires_in) == (OPENID, TTL)
    assert SIGNER.verify(result.token) == OPENID
    assert wechat.calls == 1


def test_the_same_code_again_returns_the_identical_session_without_asking_wechat(
    state: State, clock: Clock, sleeps: Sleeps
) -> None:
    wechat = WeChat()
    first = login_service(wechat, state, clock, sleeps).login(CODE)
    clock.now += 30

    again = login_service(wechat, state, clock, sleeps).login(CODE)

    assert again == LoginResult(first.token, OPENID, TTL - 30)
    assert wechat.calls == 1


def test_a_code_used_by_a_concurrent_exchange_gets_that_exchanges_session(state: State, clock: Clock) -> None:
    wechat = WeChat()
    in_flight = SlowWrites(state)
    first = login_service(wechat, in_flight, clock, Sleeps()).login(CODE)
    waits = Sleeps(then=in_flight.land)

    second = login_service(wechat, state, clock, waits).login(CODE)

    assert second.token == first.token
    assert second.openid == OPENID
    assert wechat.calls == 2
    assert waits.seconds == [0.25]


def test_a_code_already_used_with_no_session_to_replay_is_code_used(
    state: State, clock: Clock, sleeps: Sleeps
) -> None:
    wechat = WeChat(WeChatApiError(40163, "code been used"))

    with pytest.raises(errors.CodeUsed) as raised:
        login_service(wechat, state, clock, sleeps).login(CODE)

    assert (raised.value.status, raised.value.code) == (400, "code_used")
    assert sum(sleeps.seconds) == pytest.approx(1.5)
    assert wechat.calls == 1


def test_a_code_retried_after_its_five_minutes_is_code_used(
    state: State, clock: Clock, sleeps: Sleeps
) -> None:
    wechat = WeChat()
    login_service(wechat, state, clock, sleeps).login(CODE)
    clock.now += 301

    with pytest.raises(errors.CodeUsed):
        login_service(wechat, state, clock, sleeps).login(CODE)

    assert wechat.calls == 2


@pytest.mark.parametrize(
    ("errcode", "error", "status", "code"),
    [
        (40029, errors.InvalidCode, 400, "invalid_code"),
        (40226, errors.LoginBlocked, 403, "login_blocked"),
        (40013, errors.Misconfigured, 503, "misconfigured"),
        (40125, errors.Misconfigured, 503, "misconfigured"),
        (40164, errors.Misconfigured, 503, "misconfigured"),
    ],
)
def test_wechat_refusals_become_the_contracts_login_errors(
    errcode: int,
    error: type[errors.WxsubError],
    status: int,
    code: str,
    state: State,
    clock: Clock,
    sleeps: Sleeps,
) -> None:
    wechat = WeChat(WeChatApiError(errcode, "refused"))

    with pytest.raises(error) as raised:
        login_service(wechat, state, clock, sleeps).login(CODE)

    assert (raised.value.status, raised.value.code) == (status, code)
    assert wechat.calls == 1
    assert sleeps.seconds == []
    assert state.items == {}


def test_an_unknown_code_is_invalid_code(state: State, clock: Clock, sleeps: Sleeps) -> None:
    with pytest.raises(errors.InvalidCode):
        login_service(WeChat(), state, clock, sleeps).login("not-a-code")


def test_the_code_and_the_session_key_are_never_stored(state: State, clock: Clock, sleeps: Sleeps) -> None:
    login_service(WeChat(), state, clock, sleeps).login(CODE)

    assert list(state.items) == ["login#" + hashlib.sha256(CODE.encode()).hexdigest()]
    assert all(re.fullmatch(r"login#[0-9a-f]{64}", pk) for pk in state.items)
    stored = repr(state.items)
    assert CODE not in stored
    assert SESSION_KEY not in stored


# WeChat busy or away.


def test_a_busy_wechat_is_asked_again_after_a_back_off(state: State, clock: Clock, sleeps: Sleeps) -> None:
    wechat = WeChat(WeChatApiError(-1, "system busy"), WeChatUnreachable("connection refused"))

    result = login_service(wechat, state, clock, sleeps).login(CODE)

    assert result.openid == OPENID
    assert wechat.calls == 3
    assert sleeps.seconds == [0.2, 0.4]


def test_wechat_busy_on_every_attempt_is_rate_limited_or_unavailable(
    state: State, clock: Clock, sleeps: Sleeps
) -> None:
    limited = WeChat(*[WeChatApiError(45011, "api minute-quota reach limit")] * 3)
    away = WeChat(*[WeChatUnreachable("connection refused")] * 3)

    with pytest.raises(errors.RateLimited):
        login_service(limited, state, clock, sleeps).login(CODE)
    with pytest.raises(errors.WeChatUnavailable):
        login_service(away, state, clock, sleeps).login(CODE)

    assert (limited.calls, away.calls) == (3, 3)


@pytest.mark.parametrize(
    "failure",
    [
        WeChatAmbiguous("no complete answer from WeChat (ReadTimeout)"),
        WeChatAmbiguous("WeChat answered HTTP 502"),
        WeChatAmbiguous("jscode2session answered without an openid"),
    ],
    ids=["read-timeout", "error-page", "no-openid"],
)
def test_an_ambiguous_answer_is_not_retried_since_the_code_may_be_spent(
    failure: WeChatAmbiguous, state: State, clock: Clock, sleeps: Sleeps
) -> None:
    wechat = WeChat(failure)

    with pytest.raises(errors.WeChatUnavailable) as raised:
        login_service(wechat, state, clock, sleeps).login(CODE)

    assert (raised.value.status, raised.value.code) == (503, "wechat_unavailable")
    assert wechat.calls == 1
    assert sleeps.seconds == []
    assert state.items == {}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502, content=b"<html>502 Bad Gateway</html>"),
        httpx.Response(200, content=b"<html>maintenance</html>"),
        httpx.Response(200, json={"session_key": SESSION_KEY}),
    ],
    ids=["502-page", "not-json", "no-openid"],
)
def test_wechat_answering_an_unusable_body_is_503_after_one_exchange(
    answer: httpx.Response, state: State, clock: Clock, sleeps: Sleeps
) -> None:
    """Over the real transport: whatever came back, the code may be spent, so it is asked once."""
    requests: list[httpx.Request] = []

    def wechat(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answer

    http = httpx.Client(base_url="https://wechat.test", transport=httpx.MockTransport(wechat))
    auth = AuthApi(WeChatTransport("https://wechat.test", 1.0, http=http), APPID)
    service = LoginService(auth, state, lambda: SECRET, lambda: SIGNER, clock=clock, sleep=sleeps)  # type: ignore[arg-type]

    with pytest.raises(errors.WeChatUnavailable) as raised:
        service.login(CODE)

    assert (raised.value.status, raised.value.code) == (503, "wechat_unavailable")
    assert len(requests) == 1
    assert sleeps.seconds == []
