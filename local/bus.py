"""The template's EventBridge buses in moto, and a tap that shows every event put on them.

moto delivers ``PutEvents`` on a custom bus to the SQS targets of the bus's rules, synchronously
within the request. So, locally only, each bus gets a catch-all rule whose target is a private
queue (the tap, ``local-bus-tap-<LogicalId>``, not in the template); :class:`BusTap` drains it into
a list the stack keeps and logs one ``[events] <detail-type> <detail>`` line per event. Once
``put_events`` has returned, the next :meth:`BusTap.events` holds its events.

The tap's requests are internal to the stack (see :data:`local.aws_front.INTERNAL_HEADER`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from local.model import EventBus
from local.template import ACCOUNT_ID
from local.workers import LogSink

TAP_RULE = "local-bus-tap"
# matches every event: each has a string source
CATCH_ALL = json.dumps({"source": [{"prefix": ""}]})
DRAIN_SECONDS = 0.5
DETAIL_CHARACTERS = 300


def tap_queue_name(bus: EventBus) -> str:
    return f"local-bus-tap-{bus.logical_id}"[:80]


class BusTap:
    """Every event put on the template's buses since the start or the last :meth:`clear`."""

    def __init__(self, buses: list[EventBus], events: Any, sqs: Any, log: LogSink) -> None:
        self.buses = buses
        self._events = events
        self._sqs = sqs
        self._log = log
        self._taps: dict[str, str] = {}  # bus logical id -> tap queue URL
        self._seen: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def create(self) -> BusTap:
        """Create each bus in moto (``default`` exists already) with its tap rule and queue."""
        for bus in self.buses:
            if bus.name != "default":
                self._events.create_event_bus(Name=bus.name)
            url = self._sqs.create_queue(QueueName=tap_queue_name(bus))["QueueUrl"]
            arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._events.put_rule(Name=TAP_RULE, EventBusName=bus.name, EventPattern=CATCH_ALL)
            self._events.put_targets(
                Rule=TAP_RULE,
                EventBusName=bus.name,
                Targets=[{"Id": "tap", "Arn": arn["Attributes"]["QueueArn"]}],
            )
            self._taps[bus.logical_id] = url
        return self

    def start(self) -> None:
        """Drain the taps every :data:`DRAIN_SECONDS`, so events are logged as they happen."""
        if self._taps:
            self._thread = threading.Thread(target=self._loop, name="bus-tap", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def events(self, bus: str | None = None) -> list[dict[str, Any]]:
        """The events seen, oldest first; ``bus`` (a logical id or name) keeps one bus's."""
        wanted = {b.logical_id for b in self.buses if bus in (None, b.logical_id, b.name)}
        with self._lock:
            self._drain()
            return [event for logical_id, event in self._seen if logical_id in wanted]

    def clear(self) -> None:
        """Forget every event seen, and any still in the taps."""
        with self._lock:
            self._drain()
            self._seen.clear()

    def _loop(self) -> None:
        last_error = ""
        while not self._stop.wait(DRAIN_SECONDS):
            try:
                with self._lock:
                    self._drain()
                last_error = ""
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error and not self._stop.is_set():
                    self._log(f"[events] draining the bus tap: {error}")
                last_error = error

    def _drain(self) -> None:
        """Move what the taps hold into the list; the caller holds the lock."""
        for logical_id, url in self._taps.items():
            while messages := self._receive(url):
                for message in messages:
                    event = _event(message["Body"])
                    self._seen.append((logical_id, event))
                    self._log(line(event))

    def _receive(self, url: str) -> list[dict[str, Any]]:
        """Up to 10 messages of a tap, deleted from it."""
        messages: list[dict[str, Any]] = self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self._sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        return messages


def _event(body: str) -> dict[str, Any]:
    """The event as EventBridge delivers it; moto leaves out ``account``, which is put back."""
    event: dict[str, Any] = json.loads(body)
    event.setdefault("account", ACCOUNT_ID)
    return event


def line(event: dict[str, Any]) -> str:
    """``[events] <detail-type> <detail as compact JSON>``, the detail cut at a readable length."""
    detail = json.dumps(event.get("detail"), ensure_ascii=False, separators=(",", ":"))
    if len(detail) > DETAIL_CHARACTERS:
        detail = detail[: DETAIL_CHARACTERS - 1] + "…"
    return f"[events] {event.get('detail-type')} {detail}"
