"""The access token: the refresher that owns it, and the healing a sender does on a token error.

DESIGN.md, token rules: the scheduled refresher is the only regular writer and writes SSM only
when the token changed. A sender that meets 40001/40014/42001 re-reads SSM bypassing its cache
and retries once; only when SSM still holds the failing token does it refresh itself, single
flight through a short DynamoDB lease, while other senders wait for the new value.
``force_refresh`` is used only when an operator asks for it (``wxsub token force-refresh``, which
invokes the refresher): at most 20 a day (China time, as WeChat counts) and 30 s apart, both
checked in the state table before WeChat is called, since WeChat itself silently refreshes nothing
inside 30 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from wxsub import errors
from wxsub.observability import logger
from wxsub.services.wechat_errors import translate
from wxsub.stores.parameters import StoredToken, TokenStore
from wxsub.stores.state import StateTable
from wxsub.wechat.api.auth import AuthApi
from wxsub.wechat.client import ErrorKind, WeChatApiError, WeChatError, WeChatUnreachable

T = TypeVar("T")

LEASE_NAME = "access-token-refresh"
LEASE_SECONDS = 10
_WAIT_POLLS = 20
_WAIT_POLL_SECONDS = 0.25
FORCE_PER_DAY = 20  # WeChat's limit on force refreshes a day; the 21st answers 45009
FORCE_SPACING_SECONDS = 30  # WeChat refreshes nothing when force refreshes come closer
FORCE_LEASE = "access-token-force-refresh"
_CHINA_OFFSET = 8 * 3600


def force_counter(now: float) -> str:
    """The state item counting one China day's force refreshes."""
    return f"force-refresh#{int((now + _CHINA_OFFSET) // 86400)}"


@dataclass(frozen=True)
class RefreshResult:
    changed: bool
    expires_in: int


@dataclass(frozen=True)
class ForcedRefresh:
    changed: bool  # False: WeChat answered with the stored token (another force refresh within 30 s)
    expires_in: int
    forced_today: int

    def to_json(self) -> dict[str, object]:
        return {
            "forced": True,
            "changed": self.changed,
            "expires_in": self.expires_in,
            "forced_today": self.forced_today,
            "left_today": FORCE_PER_DAY - self.forced_today,
        }


class TokenRefresher:
    def __init__(
        self,
        auth: AuthApi,
        store: TokenStore,
        app_secret: Callable[[], str],
        state: Callable[[], StateTable] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth = auth
        self._store = store
        self._app_secret = app_secret
        self._state = state
        self._clock = clock

    def refresh(self) -> RefreshResult:
        """Ask stable_token (normal mode) and write SSM only if the token differs from the stored one.

        The stored token is read before and after WeChat's answer: if it changed meanwhile, someone
        else wrote (a force refresh, whose new token WeChat's answer here may predate), so this
        answer is not written over it: that would put back a token the force refresh revoked.
        """
        before = self._store.get(force=True)
        fresh = self._auth.stable_token(self._app_secret())
        stored = self._store.get(force=True)
        if stored is not None and stored.access_token == fresh.access_token:
            return RefreshResult(changed=False, expires_in=fresh.expires_in)
        if _token(stored) != _token(before):
            logger.info("the access token was written during this refresh; keeping that one")
            return RefreshResult(changed=False, expires_in=fresh.expires_in)
        self._store.put(fresh.access_token, fresh.expires_in)
        return RefreshResult(changed=True, expires_in=fresh.expires_in)

    def force_refresh(self) -> ForcedRefresh:
        """Invalidate the current token and store a new one: an operator's answer to a leaked token.

        Refused (429) within 30 s of the previous force refresh, when WeChat would refresh nothing,
        and after 20 in a China day, when WeChat answers 45009. The spacing is taken first, so a
        refused daily count never spends a refresh.
        """
        assert self._state is not None, "force_refresh needs the state table"
        state = self._state()
        now = self._clock()
        # the lease counts whole seconds: one more keeps two force refreshes a full 30 s apart
        if not state.acquire(FORCE_LEASE, FORCE_SPACING_SECONDS + 1):
            raise errors.RateLimited(
                f"the last force refresh was less than {FORCE_SPACING_SECONDS} s ago, and WeChat refreshes "
                "nothing inside that spacing; wait up to 30 s and try again",
                retry_after_seconds=FORCE_SPACING_SECONDS,
            )
        forced_today = state.tally(force_counter(now), ttl_seconds=2 * 86400, limit=FORCE_PER_DAY)
        if forced_today is None:
            raise errors.QuotaExhausted(
                f"the {FORCE_PER_DAY} force refreshes WeChat allows a day (China time) are used; "
                "the next is possible after midnight UTC+8"
            )
        try:
            fresh = self._auth.stable_token(self._app_secret(), force=True)
        except WeChatUnreachable as exc:  # the request never left: the day's count is given back
            _quietly(lambda: state.untally(force_counter(now)))
            raise translate(exc) from None
        except WeChatError as exc:  # it may have reached WeChat
            _quietly(lambda: state.renew(FORCE_LEASE, FORCE_SPACING_SECONDS + 1))
            raise translate(exc) from None
        stored = self._store.get(force=True)
        changed = stored is None or stored.access_token != fresh.access_token
        if changed:
            self._store.put(fresh.access_token, fresh.expires_in)
        # WeChat counts its 30 s from the call, which came later than the lease was taken
        _quietly(lambda: state.renew(FORCE_LEASE, FORCE_SPACING_SECONDS + 1))
        logger.warning("access token force-refreshed", changed=changed, forced_today=forced_today)
        return ForcedRefresh(changed, fresh.expires_in, forced_today)


def _quietly(step: Callable[[], None]) -> None:
    """A bookkeeping write whose failure must not hide the outcome it follows; logged instead."""
    try:
        step()
    except Exception as exc:  # any failure here is only logged
        logger.warning("force-refresh bookkeeping failed", error=type(exc).__name__)


def _token(stored: StoredToken | None) -> str | None:
    return None if stored is None else stored.access_token


class TokenProvider:
    """Runs a WeChat call with the current token, healing a token error once.

    Failures of the refresh itself surface as product errors, so a ``WeChatError`` that
    escapes :meth:`call` always comes from ``fn``'s own request.
    """

    def __init__(
        self,
        store: TokenStore,
        refresher: TokenRefresher,
        state: StateTable,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._refresher = refresher
        self._state = state
        self._sleep = sleep

    def call(self, fn: Callable[[str], T], guard: Callable[[], None] = lambda: None) -> T:
        """``fn(token)``, healed once on a token error.

        ``guard`` runs before every WeChat request this makes (``fn`` and a refresh) and may raise
        to stop it, e.g. when the invocation has too little time left to see the answer.
        """
        token = self._current(guard)
        guard()
        try:
            return fn(token.access_token)
        except WeChatApiError as exc:
            if exc.kind is not ErrorKind.TOKEN:
                raise
            logger.warning("access token refused; healing", errcode=exc.errcode)
        healed = self._heal(token, guard)
        guard()
        return fn(healed.access_token)

    def _current(self, guard: Callable[[], None]) -> StoredToken:
        token = self._store.get()
        if token is None:
            token = self._refresh_single_flight(None, guard)
        return token

    def _heal(self, failing: StoredToken, guard: Callable[[], None]) -> StoredToken:
        reread = self._store.get(force=True)
        if reread is not None and reread.access_token != failing.access_token:
            return reread
        return self._refresh_single_flight(failing.access_token, guard)

    def _refresh_single_flight(self, failing: str | None, guard: Callable[[], None]) -> StoredToken:
        guard()
        if self._state.acquire(LEASE_NAME, LEASE_SECONDS):
            try:
                self._refresher.refresh()
            except WeChatError as exc:
                raise translate(exc) from None
            finally:
                self._state.release(LEASE_NAME)
            fresh = self._store.get(force=True)
            if fresh is not None:
                return fresh
        for _ in range(_WAIT_POLLS):
            self._sleep(_WAIT_POLL_SECONDS)
            fresh = self._store.get(force=True)
            if fresh is not None and fresh.access_token != failing:
                return fresh
        raise errors.WeChatUnavailable("no valid WeChat access token is available yet; try again")
