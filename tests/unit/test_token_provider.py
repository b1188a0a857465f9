"""The access token: healing a token error once, a single-flight refresh, the refresher (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wxsub import errors
from wxsub.deadline import Deadline
from wxsub.services.tokens import LEASE_NAME, RefreshResult, TokenProvider, TokenRefresher
from wxsub.stores.parameters import StoredToken
from wxsub.wechat.api.auth import AccessToken
from wxsub.wechat.client import WeChatAmbiguous, WeChatApiError, WeChatError, WeChatUnreachable

NOW = 1_800_000_000
SECRET = "app-secret"


class WeChat:
    """stable_token in normal mode, and an API that takes only the token WeChat currently honours."""

    def __init__(self, current: str) -> None:
        self.current = current
        self.stable_token_calls = 0
        self.tokens_seen: list[str] = []
        self.refuse_every_token = False
        self.stable_token_error: WeChatError | None = None

    def stable_token(self, secret: str) -> AccessToken:
        assert secret == SECRET
        self.stable_token_calls += 1
        if self.stable_token_error is not None:
            raise self.stable_token_error
        return AccessToken(self.current, 7200)

    def send(self, access_token: str) -> str:
        self.tokens_seen.append(access_token)
        if self.refuse_every_token or access_token != self.current:
            raise WeChatApiError(40001, "invalid credential, access_token is invalid or not latest")
        return "sent"


class TokenStore:
    """The SSM parameter, and this container's cache of it (bypassed by ``force``)."""

    def __init__(self, token: str | None = None, cached: str | None = None) -> None:
        self.parameter = None if token is None else StoredToken(token, NOW + 7200)
        self._cache = None if cached is None else StoredToken(cached, NOW + 7200)
        self.forced_reads = 0
        self.writes = 0

    def get(self, *, force: bool = False) -> StoredToken | None:
        self.forced_reads += int(force)
        if force or self._cache is None:
            self._cache = self.parameter
        return self._cache

    def put(self, access_token: str, expires_in: int) -> StoredToken:
        self.writes += 1
        self.parameter = StoredToken(access_token, NOW + expires_in)
        self._cache = None
        return self.parameter

    @property
    def token(self) -> str | None:
        return None if self.parameter is None else self.parameter.access_token


class Leases:
    """The state table's leases: one holder per name until released."""

    def __init__(self, *held_elsewhere: str) -> None:
        self.held = set(held_elsewhere)
        self.acquired = 0

    def acquire(self, name: str, ttl_seconds: int) -> bool:
        if name in self.held:
            return False
        self.held.add(name)
        self.acquired += 1
        return True

    def release(self, name: str) -> None:
        self.held.discard(name)


class Sleeps:
    """Records each wait; ``then`` runs what other containers do meanwhile."""

    def __init__(self, then: dict[int, Callable[[], object]] | None = None) -> None:
        self.seconds: list[float] = []
        self._then = then or {}

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        action = self._then.get(len(self.seconds))
        if action is not None:
            action()


def provider(wechat: WeChat, store: TokenStore, leases: Leases, sleep: Sleeps | None = None) -> TokenProvider:
    refresher = TokenRefresher(wechat, store, lambda: SECRET)  # type: ignore[arg-type]
    return TokenProvider(store, refresher, leases, sleep or Sleeps())  # type: ignore[arg-type]


# Healing a token error.


def test_a_refused_token_is_retried_once_with_the_newer_one_ssm_already_holds() -> None:
    wechat = WeChat(current="new")
    store, leases = TokenStore("new", cached="old"), Leases()

    answer = provider(wechat, store, leases).call(wechat.send)

    assert answer == "sent"
    assert wechat.tokens_seen == ["old", "new"]
    assert wechat.stable_token_calls == 0
    assert (store.writes, leases.acquired) == (0, 0)


def test_when_ssm_still_holds_the_refused_token_one_refresh_runs_through_the_lease() -> None:
    wechat = WeChat(current="new")
    store, leases = TokenStore("old"), Leases()

    answer = provider(wechat, store, leases).call(wechat.send)

    assert answer == "sent"
    assert wechat.tokens_seen == ["old", "new"]
    assert wechat.stable_token_calls == 1
    assert (store.token, store.writes) == ("new", 1)
    assert leases.acquired == 1
    assert LEASE_NAME not in leases.held


def test_while_another_sender_holds_the_lease_this_one_waits_for_its_token_and_refreshes_nothing() -> None:
    wechat = WeChat(current="new")
    store, leases = TokenStore("old"), Leases(LEASE_NAME)
    sleeps = Sleeps(then={3: lambda: store.put("new", 7200)})

    answer = provider(wechat, store, leases, sleeps).call(wechat.send)

    assert answer == "sent"
    assert wechat.tokens_seen == ["old", "new"]
    assert sleeps.seconds == [0.25, 0.25, 0.25]
    assert wechat.stable_token_calls == 0
    assert store.writes == 1


def test_a_lease_holder_that_never_writes_ends_in_503_after_a_bounded_wait() -> None:
    wechat = WeChat(current="new")
    store, leases, sleeps = TokenStore("old"), Leases(LEASE_NAME), Sleeps()

    with pytest.raises(errors.WeChatUnavailable):
        provider(wechat, store, leases, sleeps).call(wechat.send)

    assert sum(sleeps.seconds) == pytest.approx(5.0)
    assert wechat.tokens_seen == ["old"]
    assert wechat.stable_token_calls == 0


def test_a_second_token_error_after_healing_propagates_without_another_attempt() -> None:
    wechat = WeChat(current="new")
    wechat.refuse_every_token = True
    store, leases = TokenStore("old"), Leases()

    with pytest.raises(WeChatApiError) as raised:
        provider(wechat, store, leases).call(wechat.send)

    assert raised.value.errcode == 40001
    assert wechat.tokens_seen == ["old", "new"]
    assert wechat.stable_token_calls == 1


@pytest.mark.parametrize(
    "error",
    [
        WeChatApiError(47003, "argument invalid!"),
        WeChatApiError(-1, "system busy"),
        WeChatApiError(40013, "invalid appid"),
        WeChatAmbiguous("no complete answer from WeChat (ReadTimeout)"),
        WeChatUnreachable("cannot connect to WeChat"),
    ],
    ids=["47003", "busy", "credential", "ambiguous", "unreachable"],
)
def test_errors_that_are_not_about_the_token_propagate_untouched(error: WeChatError) -> None:
    wechat = WeChat(current="old")
    store, leases = TokenStore("old"), Leases()
    calls: list[str] = []

    def failing(token: str) -> str:
        calls.append(token)
        raise error

    with pytest.raises(WeChatError) as raised:
        provider(wechat, store, leases).call(failing)

    assert raised.value is error
    assert calls == ["old"]
    assert (store.forced_reads, wechat.stable_token_calls, leases.acquired) == (0, 0, 0)


# No token yet, and a refresh that fails.


def test_with_no_token_in_ssm_yet_the_sender_refreshes_once_and_sends() -> None:
    wechat = WeChat(current="first")
    store, leases = TokenStore(), Leases()

    answer = provider(wechat, store, leases).call(wechat.send)

    assert answer == "sent"
    assert wechat.tokens_seen == ["first"]
    assert (wechat.stable_token_calls, store.token) == (1, "first")


def test_a_refresh_wechat_refuses_surfaces_as_a_product_error_and_frees_the_lease() -> None:
    wechat = WeChat(current="new")
    wechat.stable_token_error = WeChatApiError(40125, "invalid appsecret")
    store, leases = TokenStore("old"), Leases()

    with pytest.raises(errors.Misconfigured):
        provider(wechat, store, leases).call(wechat.send)

    assert LEASE_NAME not in leases.held
    assert store.token == "old"


# The guard: no WeChat request starts that the invocation could not see the answer of.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


class SlowWeChat(WeChat):
    """WeChat whose API answers take ``seconds`` of the invocation's time each."""

    def __init__(self, current: str, clock: Clock, seconds: float) -> None:
        super().__init__(current)
        self._clock, self._seconds = clock, seconds

    def send(self, access_token: str) -> str:
        self._clock.now += self._seconds
        return super().send(access_token)


def deadline_guard(clock: Clock, millis_left: int, needs_seconds: float) -> Callable[[], None]:
    deadline = Deadline(clock)
    deadline.bind(Context(millis_left))

    def guard() -> None:
        if not deadline.allows(needs_seconds):
            raise errors.DeadlineReached("too little time left")

    return guard


def test_a_guard_that_refuses_stops_the_call_before_any_request() -> None:
    wechat = WeChat(current="old")
    store, leases, clock = TokenStore("old"), Leases(), Clock()

    with pytest.raises(errors.DeadlineReached):
        provider(wechat, store, leases).call(wechat.send, guard=deadline_guard(clock, 2_000, 5.0))

    assert wechat.tokens_seen == []
    assert wechat.stable_token_calls == 0


def test_a_guard_that_refuses_stops_the_first_refresh_before_stable_token() -> None:
    wechat = WeChat(current="first")
    store, leases, clock = TokenStore(), Leases(), Clock()

    with pytest.raises(errors.DeadlineReached):
        provider(wechat, store, leases).call(wechat.send, guard=deadline_guard(clock, 2_000, 5.0))

    assert (wechat.stable_token_calls, wechat.tokens_seen, store.token) == (0, [], None)
    assert LEASE_NAME not in leases.held


def test_the_guard_stops_a_heal_when_the_refused_call_used_up_the_time() -> None:
    clock = Clock()
    wechat = SlowWeChat(current="new", clock=clock, seconds=8.0)
    store, leases = TokenStore("old"), Leases()

    with pytest.raises(errors.DeadlineReached):
        provider(wechat, store, leases).call(wechat.send, guard=deadline_guard(clock, 12_000, 5.0))

    assert wechat.tokens_seen == ["old"]
    assert wechat.stable_token_calls == 0
    assert (store.token, store.writes) == ("old", 0)
    assert LEASE_NAME not in leases.held


def test_the_guard_stops_the_retry_even_when_ssm_already_holds_the_newer_token() -> None:
    clock = Clock()
    wechat = SlowWeChat(current="new", clock=clock, seconds=8.0)
    store, leases = TokenStore("new", cached="old"), Leases()

    with pytest.raises(errors.DeadlineReached):
        provider(wechat, store, leases).call(wechat.send, guard=deadline_guard(clock, 12_000, 5.0))

    assert wechat.tokens_seen == ["old"]


def test_a_guard_with_time_to_spare_lets_the_heal_through() -> None:
    clock = Clock()
    wechat = SlowWeChat(current="new", clock=clock, seconds=1.0)
    store, leases = TokenStore("old"), Leases()

    answer = provider(wechat, store, leases).call(wechat.send, guard=deadline_guard(clock, 20_000, 5.0))

    assert answer == "sent"
    assert wechat.tokens_seen == ["old", "new"]
    assert wechat.stable_token_calls == 1


# The scheduled refresher.


def test_the_refresher_leaves_ssm_alone_while_wechat_returns_the_same_token() -> None:
    wechat, store = WeChat(current="same"), TokenStore("same")

    result = TokenRefresher(wechat, store, lambda: SECRET).refresh()  # type: ignore[arg-type]

    assert result == RefreshResult(changed=False, expires_in=7200)
    assert store.writes == 0


def test_the_refresher_writes_a_new_token_with_its_expiry() -> None:
    wechat, store = WeChat(current="new"), TokenStore("old")

    result = TokenRefresher(wechat, store, lambda: SECRET).refresh()  # type: ignore[arg-type]

    assert result == RefreshResult(changed=True, expires_in=7200)
    assert (store.token, store.writes) == ("new", 1)
    assert store.parameter == StoredToken("new", NOW + 7200)


def test_the_refresher_writes_the_first_token_when_ssm_holds_none() -> None:
    wechat, store = WeChat(current="first"), TokenStore()

    result = TokenRefresher(wechat, store, lambda: SECRET).refresh()  # type: ignore[arg-type]

    assert result.changed
    assert store.token == "first"


def test_the_refresher_lets_wechat_errors_propagate_for_the_schedulers_retry() -> None:
    wechat, store = WeChat(current="new"), TokenStore("old")
    wechat.stable_token_error = WeChatApiError(-1, "system busy")

    with pytest.raises(WeChatApiError):
        TokenRefresher(wechat, store, lambda: SECRET).refresh()  # type: ignore[arg-type]

    assert (store.token, store.writes) == ("old", 0)


def test_a_refresh_never_writes_back_a_token_older_than_one_written_while_it_asked_wechat() -> None:
    """A force refresh stored a new token while this refresh's stable_token answer (the token the
    force refresh revoked) was on its way: writing it would put the revoked token back."""
    wechat, store = WeChat(current="revoked"), TokenStore("old")

    def force_refresh_elsewhere(secret: str) -> AccessToken:
        store.put("forced", 7200)
        return AccessToken("revoked", 7200)

    wechat.stable_token = force_refresh_elsewhere  # type: ignore[method-assign]
    result = TokenRefresher(wechat, store, lambda: SECRET).refresh()  # type: ignore[arg-type]

    assert result.changed is False
    assert (store.token, store.writes) == ("forced", 1)


class ForceState:
    """The state table's force-refresh bookkeeping: the spacing lease and the day's counter."""

    def __init__(self, used_today: int = 0) -> None:
        self.leases: dict[str, int] = {}
        self.used = used_today
        self.renewed = 0

    def acquire(self, name: str, ttl_seconds: int) -> bool:
        if name in self.leases:
            return False
        self.leases[name] = ttl_seconds
        return True

    def renew(self, name: str, ttl_seconds: int) -> None:
        self.leases[name] = ttl_seconds
        self.renewed += 1

    def tally(self, pk: str, *, ttl_seconds: int, limit: int) -> int | None:
        if self.used >= limit:
            return None
        self.used += 1
        return self.used

    def untally(self, pk: str) -> None:
        self.used -= 1


class ForcingWeChat(WeChat):
    def stable_token(self, secret: str, *, force: bool = False) -> AccessToken:  # type: ignore[override]
        if force and self.stable_token_error is None:
            self.current = f"forced-{self.stable_token_calls}"
        return super().stable_token(secret)


def forcer(wechat: WeChat, store: TokenStore, state: ForceState) -> TokenRefresher:
    return TokenRefresher(wechat, store, lambda: SECRET, lambda: state, clock=lambda: NOW)  # type: ignore[arg-type]


def test_a_force_refresh_stores_the_new_token_and_holds_the_spacing_from_wechats_answer() -> None:
    wechat, store, state = ForcingWeChat(current="leaked"), TokenStore("leaked"), ForceState()

    forced = forcer(wechat, store, state).force_refresh()
    again = pytest.raises(errors.RateLimited, forcer(wechat, store, state).force_refresh)

    assert forced.to_json() == {
        "forced": True,
        "changed": True,
        "expires_in": 7200,
        "forced_today": 1,
        "left_today": 19,
    }
    assert store.token == "forced-0" and state.renewed == 1
    assert again.value.code == "rate_limited" and state.used == 1 and wechat.stable_token_calls == 1


def test_a_force_refresh_that_never_reached_wechat_gives_the_days_count_back() -> None:
    wechat, store, state = ForcingWeChat(current="leaked"), TokenStore("leaked"), ForceState(used_today=5)
    wechat.stable_token_error = WeChatUnreachable("connect timeout")

    with pytest.raises(errors.WeChatUnavailable):
        forcer(wechat, store, state).force_refresh()

    assert state.used == 5 and store.token == "leaked"


def test_the_21st_force_refresh_of_a_day_is_refused_before_wechat() -> None:
    wechat, store, state = ForcingWeChat(current="leaked"), TokenStore("leaked"), ForceState(used_today=20)

    with pytest.raises(errors.QuotaExhausted):
        forcer(wechat, store, state).force_refresh()

    assert wechat.stable_token_calls == 0 and store.token == "leaked"
