"""The access token: the refresher that owns it, and the healing a sender does on a token error.

DESIGN.md, token rules: the scheduled refresher is the only regular writer and writes SSM only
when the token changed. A sender that meets 40001/40014/42001 re-reads SSM bypassing its cache
and retries once; only when SSM still holds the failing token does it refresh itself, single
flight through a short DynamoDB lease, while other senders wait for the new value.
``force_refresh`` is never used.
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
from wxsub.wechat.client import ErrorKind, WeChatApiError, WeChatError

T = TypeVar("T")

LEASE_NAME = "access-token-refresh"
LEASE_SECONDS = 10
_WAIT_POLLS = 20
_WAIT_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class RefreshResult:
    changed: bool
    expires_in: int


class TokenRefresher:
    def __init__(self, auth: AuthApi, store: TokenStore, app_secret: Callable[[], str]) -> None:
        self._auth = auth
        self._store = store
        self._app_secret = app_secret

    def refresh(self) -> RefreshResult:
        """Ask stable_token (normal mode) and write SSM only if the token differs from the stored one."""
        fresh = self._auth.stable_token(self._app_secret())
        stored = self._store.get(force=True)
        if stored is not None and stored.access_token == fresh.access_token:
            return RefreshResult(changed=False, expires_in=fresh.expires_in)
        self._store.put(fresh.access_token, fresh.expires_in)
        return RefreshResult(changed=True, expires_in=fresh.expires_in)


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
