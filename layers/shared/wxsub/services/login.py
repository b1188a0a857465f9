"""Log a mini-program user in: ``wx.login`` code → openid → a session token of ours.

A code can be exchanged once; a client that retries (a lost response, a double tap) would get
40163. So the first success is remembered for the code's 5-minute life under a hash of the code,
and a retry within that window gets the very same session. ``session_key`` is dropped at once:
it is never stored, returned or logged.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from wxsub import errors
from wxsub.observability import logger
from wxsub.services.wechat_errors import translate
from wxsub.sessions import Session, SessionSigner
from wxsub.stores.state import StateTable
from wxsub.wechat.api.auth import AuthApi, Code2Session
from wxsub.wechat.client import ErrorKind, WeChatApiError, WeChatError, WeChatUnreachable

CODE_LIFETIME_SECONDS = 300
_REPLAY_POLLS = 6
_REPLAY_POLL_SECONDS = 0.25

_LOGIN_ERRORS: dict[int, type[errors.WxsubError]] = {
    40029: errors.InvalidCode,
    40163: errors.CodeUsed,
    40226: errors.LoginBlocked,
}


@dataclass(frozen=True)
class LoginResult:
    token: str
    openid: str
    expires_in: int


class LoginService:
    def __init__(
        self,
        auth: AuthApi,
        state: StateTable,
        app_secret: Callable[[], str],
        signer: Callable[[], SessionSigner],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 3,
        retry_base_seconds: float = 0.2,
    ) -> None:
        self._auth = auth
        self._state = state
        self._app_secret = app_secret
        self._signer = signer
        self._clock = clock
        self._sleep = sleep
        self._attempts = max(1, attempts)
        self._retry_base_seconds = retry_base_seconds

    def login(self, code: str) -> LoginResult:
        pk = "login#" + hashlib.sha256(code.encode()).hexdigest()
        remembered = self._remembered(pk)
        if remembered:
            return remembered
        try:
            session = self._exchange(code)
        except WeChatError as exc:
            if getattr(exc, "errcode", None) == 40163:
                replay = self._await_replay(pk)
                if replay:
                    return replay
            raise translate(exc, _LOGIN_ERRORS) from None
        logger.debug("login code exchanged", openid=session.openid, unionid=session.unionid is not None)
        now = int(self._clock())
        token_id = secrets.token_hex(8)
        issued = self._signer().issue(session.openid, now, token_id)
        self._state.put_new(pk, CODE_LIFETIME_SECONDS, openid=session.openid, iat=now, jti=token_id)
        return self._result(issued, now)

    def _exchange(self, code: str) -> Code2Session:
        """code2Session, retried with back-off while WeChat is busy or unreachable.

        A busy answer (-1, 45011) or a refused connection spent nothing; a timeout may have spent
        the code, so it is not retried (a retry would only meet 40163).
        """
        for attempt in range(1, self._attempts + 1):
            try:
                return self._auth.code2session(self._app_secret(), code)
            except WeChatUnreachable:
                if attempt == self._attempts:
                    raise
            except WeChatApiError as exc:
                if exc.kind is not ErrorKind.RETRYABLE or attempt == self._attempts:
                    raise
            self._sleep(self._retry_base_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _remembered(self, pk: str) -> LoginResult | None:
        record = self._state.get(pk)
        if record is None:
            return None
        issued = self._signer().issue(str(record["openid"]), int(record["iat"]), str(record["jti"]))
        return self._result(issued, int(self._clock()))

    def _await_replay(self, pk: str) -> LoginResult | None:
        """A concurrent first exchange of the same code may still be writing its record."""
        for _ in range(_REPLAY_POLLS):
            found = self._remembered(pk)
            if found:
                return found
            self._sleep(_REPLAY_POLL_SECONDS)
        return None

    @staticmethod
    def _result(session: Session, now: int) -> LoginResult:
        return LoginResult(session.token, session.openid, session.expires_in(now))
