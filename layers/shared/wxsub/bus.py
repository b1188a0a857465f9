"""Events out: message status and campaign state changes on the stack's EventBridge bus.

A product backend routes them with rules instead of polling. Events are buffered and put ten at a
time when the invocation flushes (PutEvents takes at most ten entries), so a batch of sends costs
one request per ten events. Publishing is best effort by design: the delivery record and the
campaign item are the truth, and a send never fails because its event could not be put. A failed
put is logged and counted (``EventsNotPut``).

Shapes (``source`` is ``wxsub``; see the README for the JSON schemas):

* ``Message status changed``: ``{"message_id", "status", "openid", "template_id", "msgid",
  "errcode", "error_status", "campaign_id", "at"}`` with status ``sent``, ``delivered``,
  ``failed`` or ``unknown``;
* ``Campaign state changed``: ``{"campaign_id", "state", "previous", "reason", "counts", "at"}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wxsub.observability import logger, metrics

SOURCE = "wxsub"
MESSAGE_STATUS = "Message status changed"
CAMPAIGN_STATE = "Campaign state changed"
_BATCH = 10


class MessageEvents(Protocol):
    """Where services announce a message's status change."""

    def message_status(
        self,
        *,
        message_id: str,
        status: str,
        openid: str,
        template_id: str,
        msgid: str | None = None,
        errcode: int | None = None,
        error_status: str | None = None,
        campaign_id: str | None = None,
    ) -> None: ...


class CampaignEvents(Protocol):
    """Where services announce a campaign's state change."""

    def campaign_state(
        self,
        campaign_id: str,
        state: str,
        *,
        previous: str | None,
        counts: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None: ...


class EventBus:
    def __init__(self, client: Any, bus_name: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._bus = bus_name
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def message_status(
        self,
        *,
        message_id: str,
        status: str,
        openid: str,
        template_id: str,
        msgid: str | None = None,
        errcode: int | None = None,
        error_status: str | None = None,
        campaign_id: str | None = None,
    ) -> None:
        self.emit(
            MESSAGE_STATUS,
            {
                "message_id": message_id,
                "status": status,
                "openid": openid,
                "template_id": template_id,
                "msgid": msgid,
                "errcode": errcode,
                "error_status": error_status,
                "campaign_id": campaign_id,
                "at": int(self._clock()),
            },
        )

    def campaign_state(
        self,
        campaign_id: str,
        state: str,
        *,
        previous: str | None,
        counts: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        self.emit(
            CAMPAIGN_STATE,
            {
                "campaign_id": campaign_id,
                "state": state,
                "previous": previous,
                "reason": reason,
                "counts": dict(counts or {}),
                "at": int(self._clock()),
            },
        )

    def emit(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, ensure_ascii=False, separators=(",", ":")),
            "EventBusName": self._bus,
        }
        with self._lock:
            self._pending.append(entry)

    def flush(self) -> int:
        """Puts every buffered event; returns how many could not be put (logged, never raised)."""
        with self._lock:
            pending, self._pending = self._pending, []
        lost = 0
        for start in range(0, len(pending), _BATCH):
            entries = pending[start : start + _BATCH]
            try:
                answer = self._client.put_events(Entries=entries)
                lost += int(answer.get("FailedEntryCount", 0))
            except Exception as exc:  # best effort: the records are the truth
                logger.warning("events not put", error=type(exc).__name__, count=len(entries))
                lost += len(entries)
        if lost:
            metrics.add_metric(name="EventsNotPut", unit="Count", value=lost)
        return lost


class NoEvents(EventBus):
    """Where a function has no bus configured: events go nowhere."""

    def __init__(self) -> None:
        super().__init__(None, "")

    def emit(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        return None

    def flush(self) -> int:
        return 0
