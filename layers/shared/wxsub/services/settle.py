"""Settle sends whose outcome stayed unknown: no sent event came within the window.

A timed-out send keeps its one-time grant consumed until WeChat's sent event says what
happened (DESIGN.md, send rules). When no event comes, the send most likely never reached the
user (WeChat pushes a sent event for every message it accepted), so the delivery becomes
``failed`` with the reason ``no_sent_event`` and the grant is given back. If the push was only
lost, that over-counts by one, which the next send heals (43101 sets the grant to 0); keeping
it consumed would lose a message the user asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from wxsub.observability import logger, metrics

NO_SENT_EVENT = "no_sent_event"
SETTLE_WINDOW_SECONDS = 600


class UnknownDeliveries(Protocol):
    def settle_expired_unknown(self, older_than: int) -> list[Any]: ...
    def give_up(self, message_id: str, reason: str) -> bool: ...


class Restorer(Protocol):
    def restore(self, openid: str, template_id: str) -> None: ...


class SettleUnknown:
    def __init__(
        self,
        deliveries: UnknownDeliveries,
        grants: Restorer,
        is_long_term: Callable[[str], bool],
        window_seconds: int = SETTLE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._deliveries = deliveries
        self._grants = grants
        self._is_long_term = is_long_term
        self._window = window_seconds
        self._clock = clock

    def run(self) -> int:
        """Gives up on every unknown delivery older than the window; returns how many."""
        given_up = 0
        for delivery in self._deliveries.settle_expired_unknown(int(self._clock()) - self._window):
            if not self._deliveries.give_up(delivery.message_id, NO_SENT_EVENT):
                continue
            if not self._is_long_term(delivery.template_id):
                self._grants.restore(delivery.openid, delivery.template_id)
            given_up += 1
        if given_up:
            logger.info("unknown sends settled without a sent event", count=given_up)
            metrics.add_metric(name="UnknownSendsGivenUp", unit="Count", value=given_up)
        return given_up
