"""The mini program's own reports of ``wx.requestSubscribeMessage`` results, and the grants view."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wxsub import errors
from wxsub.services.push import is_accept
from wxsub.stores.state import StateTable

REPORTS_PER_MINUTE = 30
KNOWN_STATUSES = ("accept", "reject", "ban", "filter")


class Ledger(Protocol):
    def record_accept(
        self, openid: str, template_id: str, *, source: Any, at: int, long_term: bool
    ) -> Any: ...
    def record_reject(self, openid: str, template_id: str, *, source: Any, at: int) -> Any: ...
    def for_user(self, openid: str) -> list[Any]: ...


class SubscriptionService:
    def __init__(
        self,
        ledger: Ledger,
        state: StateTable,
        is_long_term: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
        per_minute: int = REPORTS_PER_MINUTE,
    ) -> None:
        self._ledger = ledger
        self._state = state
        self._is_long_term = is_long_term
        self._clock = clock
        self._per_minute = per_minute

    def report(self, openid: str, result: Mapping[str, str]) -> list[dict[str, Any]]:
        """Counts each ``accept*`` of a requestSubscribeMessage result; ``errMsg`` and others are skipped."""
        now = int(self._clock())
        self._throttle(openid, now)
        for template_id, status in result.items():
            if template_id == "errMsg":
                continue
            if is_accept(status):
                long_term = self._is_long_term(template_id)
                self._ledger.record_accept(openid, template_id, source="report", at=now, long_term=long_term)
            elif status == "reject":
                self._ledger.record_reject(openid, template_id, source="report", at=now)
        return self.grants(openid)

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
