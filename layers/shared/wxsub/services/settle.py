"""Settle sends whose outcome stayed open: no sent event came within the window.

A send left ``unknown`` (no clean answer) or ``sending`` (its function stopped after the
write-ahead record) keeps its one-time grant consumed until WeChat's sent event says what
happened (DESIGN.md, send rules). When no event comes, the send most likely never reached the
user (WeChat pushes a sent event for every message it accepted), so the delivery becomes
``failed`` with the reason ``no_sent_event`` and the grant is given back in the same transaction.
If the push was only lost, that over-counts by one, which the next send heals (43101 sets the
grant to 0); keeping it consumed would lose a message the user asked for.

First, sent events that arrived before the send they report was recorded (and found nothing in
their own invocation) are matched to it now. Then the sweep reads the sparse index of unsettled
sends, oldest first, and stops while the invocation still has time: what it leaves is the oldest
work of the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from wxsub.deadline import Deadline
from wxsub.observability import logger, metrics
from wxsub.stores.deliveries import ONE_TIME_GRANT, PARKED_GRACE_SECONDS, Delivery

NO_SENT_EVENT = "no_sent_event"
SETTLE_WINDOW_SECONDS = 600
STOP_MARGIN_SECONDS = 10.0


class UnsettledDeliveries(Protocol):
    def settle_parked(self, older_than: int) -> int: ...
    def unsettled(self, older_than: int) -> Iterator[Delivery]: ...
    def retry_match(self, delivery: Delivery) -> bool: ...
    def give_up(self, message_id: str, reason: str, give_back: Mapping[str, Any] | None = None) -> bool: ...


class GrantReturns(Protocol):
    def give_back(self, openid: str, template_id: str) -> dict[str, Any]: ...


class SettleUnknown:
    def __init__(
        self,
        deliveries: UnsettledDeliveries,
        grants: GrantReturns,
        window_seconds: int = SETTLE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        deadline: Deadline | None = None,
        after_give_up: Callable[[Delivery], None] | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._grants = grants
        self._window = window_seconds
        self._clock = clock
        self._deadline = deadline or Deadline()
        self._after_give_up = after_give_up

    def run(self) -> int:
        """Gives up on every open send older than the window that no event settles; returns how many."""
        matched = self._deliveries.settle_parked(int(self._clock()) - PARKED_GRACE_SECONDS)
        if matched:
            logger.info("sent events that overtook their send were matched", count=matched)
        given_up = 0
        for delivery in self._deliveries.unsettled(int(self._clock()) - self._window):
            if not self._deadline.allows(STOP_MARGIN_SECONDS):
                logger.info("sweep stopped before the function's timeout; the next run goes on")
                break
            if self._deliveries.retry_match(delivery):
                continue
            give_back = None
            if delivery.grant == ONE_TIME_GRANT:
                give_back = self._grants.give_back(delivery.openid, delivery.template_id)
            if self._deliveries.give_up(delivery.message_id, NO_SENT_EVENT, give_back):
                given_up += 1
                if self._after_give_up is not None:
                    self._after_give_up(delivery)
        if given_up:
            logger.info("open sends settled without a sent event", count=given_up)
            metrics.add_metric(name="UnknownSendsGivenUp", unit="Count", value=given_up)
        return given_up
