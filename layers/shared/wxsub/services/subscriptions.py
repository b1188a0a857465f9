"""The mini program's own reports of ``wx.requestSubscribeMessage`` results, and the grants view.

A report names template ids a client chose, so it is bounded: a user holds grants for at most
:data:`MAX_TEMPLATES_PER_USER` templates (WeChat's own cap on an account's private templates), and
an id the registry does not know (even after a sync) is kept but expires after
:data:`UNKNOWN_TEMPLATE_SECONDS`, unless WeChat's own push about it, or a later report once the
registry knows it, keeps it: a template added in the console must not lose its accepts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wxsub import errors
from wxsub.stores.grants import is_accept
from wxsub.stores.state import StateTable

REPORTS_PER_MINUTE = 30
MAX_TEMPLATES_PER_USER = 50
UNKNOWN_TEMPLATE_SECONDS = 7 * 86400
KNOWN_STATUSES = ("accept", "reject", "ban", "filter")


class Ledger(Protocol):
    def record_accept(
        self, openid: str, template_id: str, *, source: Any, at: int, long_term: bool, expires_at: int | None
    ) -> Any: ...
    def record_reject(
        self, openid: str, template_id: str, *, source: Any, at: int, expires_at: int | None
    ) -> Any: ...
    def for_user(self, openid: str) -> list[Any]: ...


class SubscriptionService:
    def __init__(
        self,
        ledger: Ledger,
        state: StateTable,
        is_long_term: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
        per_minute: int = REPORTS_PER_MINUTE,
        recognises: Callable[[str], bool] = lambda template_id: True,
    ) -> None:
        self._recognises = recognises
        self._ledger = ledger
        self._state = state
        self._is_long_term = is_long_term
        self._clock = clock
        self._per_minute = per_minute

    def report(self, openid: str, result: Mapping[str, str]) -> list[dict[str, Any]]:
        """Counts each ``accept*`` of a requestSubscribeMessage result; ``errMsg`` and others are skipped."""
        now = int(self._clock())
        self._throttle(openid, now)
        answers = {t: s for t, s in result.items() if t != "errMsg" and (is_accept(s) or s == "reject")}
        self._bound(openid, answers)
        for template_id, status in answers.items():
            expires_at = None if self._recognises(template_id) else now + UNKNOWN_TEMPLATE_SECONDS
            if is_accept(status):
                long_term = self._is_long_term(template_id)
                self._ledger.record_accept(
                    openid, template_id, source="report", at=now, long_term=long_term, expires_at=expires_at
                )
            else:
                self._ledger.record_reject(
                    openid, template_id, source="report", at=now, expires_at=expires_at
                )
        return self.grants(openid)

    def _bound(self, openid: str, answers: Mapping[str, str]) -> None:
        held = {grant.template_id for grant in self._ledger.for_user(openid)}
        if len(held | set(answers)) > MAX_TEMPLATES_PER_USER:
            raise errors.TooManyTemplates(
                f"a user may hold grants for at most {MAX_TEMPLATES_PER_USER} templates (WeChat's cap on "
                f"an account's templates); this report would make {len(held | set(answers))}"
            )

    def grants(self, openid: str) -> list[dict[str, Any]]:
        return [grant.to_json() for grant in self._ledger.for_user(openid)]

    def _throttle(self, openid: str, now: int) -> None:
        window = now // 60
        if not self._state.count(
            f"rate#subscriptions#{openid}#{window}", ttl_seconds=120, limit=self._per_minute
        ):
            raise errors.RateLimited(
                f"more than {self._per_minute} subscription reports a minute from this user; slow down"
            )
