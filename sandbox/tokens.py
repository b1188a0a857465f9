"""Access tokens: the ``/cgi-bin/token`` family and the ``/cgi-bin/stable_token`` family.

The two families are isolated (wechat-api.md §2.1): fetching one never affects the other.

* ``/cgi-bin/token``: every fetch issues a new token and caps each earlier one of the family at
  ``now + overlap`` (the 5-minute old/new overlap).
* ``/cgi-bin/stable_token`` normal mode: the same token while more than ``window`` seconds remain,
  then a new one; the old stays valid until its own expiry, so old and new overlap.
  Force-refresh mode invalidates every earlier stable token at once and issues a new one; a force
  refresh less than 30 s after the previous one refreshes nothing (the current token is returned,
  as in normal mode); the 21st force refresh of a day (UTC+8) answers 45009.

With the real 7200 s lifetime ``window`` and ``overlap`` are 300 s. A shorter configured lifetime
scales both down to ``min(300, lifetime / 2)``, so tests can watch a rotation in seconds.

A token is checked in this order: unknown → 40014, past its expiry → 42001, superseded or
invalidated → 40001.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.errors import WeChatError

CLASSIC = "token"
STABLE = "stable"
FORCE_SPACING = 30.0
FORCE_PER_DAY = 20
_CHINA_OFFSET = 8 * 3600


@dataclass
class Token:
    value: str
    family: str
    issued_at: float
    expires_at: float
    invalid_after: float | None = None

    def errcode(self, now: float) -> int:
        if now >= self.expires_at:
            return 42001
        if self.invalid_after is not None and now >= self.invalid_after:
            return 40001
        return 0

    def cap(self, at: float) -> None:
        if self.invalid_after is None or at < self.invalid_after:
            self.invalid_after = at


def _new_value() -> str:
    return f"{secrets.randbelow(90) + 10}_{secrets.token_urlsafe(96)}"


class TokenBook:
    """All access tokens ever issued; the caller holds the state lock."""

    def __init__(self, now: Callable[[], float], lifetime: float) -> None:
        self._now = now
        self.lifetime = lifetime
        self._tokens: dict[str, Token] = {}
        self._latest_stable: Token | None = None
        self._forces: list[float] = []

    @property
    def window(self) -> float:
        return min(300.0, self.lifetime / 2)

    def expires_in(self, token: Token) -> int:
        return max(0, math.ceil(token.expires_at - self._now()))

    def fetch_classic(self) -> Token:
        now = self._now()
        for token in self._tokens.values():
            if token.family == CLASSIC:
                token.cap(now + self.window)
        return self._issue(CLASSIC, now)

    def fetch_stable(self, force: bool) -> Token:
        now = self._now()
        if force and self._force_allowed(now):
            for token in self._tokens.values():
                if token.family == STABLE:
                    token.cap(now)
            self._latest_stable = self._issue(STABLE, now)
            return self._latest_stable
        current = self._latest_stable
        if current is None or current.errcode(now) or current.expires_at - now <= self.window:
            current = self._latest_stable = self._issue(STABLE, now)
        return current

    def check(self, value: str) -> Token:
        token = self._tokens.get(value)
        if token is None:
            raise WeChatError(40014)
        errcode = token.errcode(self._now())
        if errcode:
            raise WeChatError(errcode)
        return token

    def invalidate_all(self) -> None:
        now = self._now()
        for token in self._tokens.values():
            token.cap(now)

    def _force_allowed(self, now: float) -> bool:
        if self._forces and now - self._forces[-1] < FORCE_SPACING:
            return False
        today = (now + _CHINA_OFFSET) // 86400
        if sum(1 for at in self._forces if (at + _CHINA_OFFSET) // 86400 == today) >= FORCE_PER_DAY:
            raise WeChatError(45009)
        self._forces.append(now)
        return True

    def _issue(self, family: str, now: float) -> Token:
        token = Token(_new_value(), family, now, now + self.lifetime)
        self._tokens[token.value] = token
        return token
