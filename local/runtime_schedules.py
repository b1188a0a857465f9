"""EventBridge Scheduler schedules created at run time: moto stores them but never fires them.

:class:`RuntimeSchedules` polls moto's Scheduler (every group) and fires each ENABLED one-time
``at(...)`` schedule once it is due, in its ``ScheduleExpressionTimezone``: the target's
``Input`` (``{}`` without one) goes to a queue of the stack (``SendMessage``) or to a function
of the stack (invoked asynchronously, as Scheduler invokes Lambda). Afterwards the schedule is
deleted when its ``ActionAfterCompletion`` is ``DELETE``, else remembered so it never fires twice.
A failed delivery is logged, not retried. A target outside the stack, and recurring
``rate()``/``cron()`` schedules, are logged once and skipped.

Only schedules in moto are polled. The template's ``Schedule``/``ScheduleV2`` events are not
created in moto (:class:`local.events.Scheduler` runs them), so nothing fires twice.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.events import InvokeFunction, at_time
from local.model import Description, Function, Queue
from local.template import TemplateError
from local.workers import LogSink

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Targets:
    """What a runtime schedule may deliver to: the stack's queues and functions, by ARN."""

    queues: Mapping[str, Queue]
    functions: Mapping[str, Function]

    @classmethod
    def of(cls, description: Description, region: str, account: str) -> Targets:
        prefix = f"arn:aws:lambda:{region}:{account}:function:"
        return cls(
            queues={queue.arn: queue for queue in description.queues},
            functions={prefix + fn.name: fn for fn in description.functions.values()},
        )

    def function(self, arn: str) -> Function | None:
        """The function an ARN names, with or without a ``:version`` or ``:alias`` qualifier."""
        parts = arn.split(":")
        return self.functions.get(":".join(parts[:7]))


class RuntimeSchedules:
    """A thread that fires the one-time schedules functions create in moto's Scheduler."""

    def __init__(
        self,
        scheduler: Any,
        sqs: Any,
        targets: Targets,
        invoke: InvokeFunction,
        log: LogSink,
        *,
        interval: float = POLL_SECONDS,
    ) -> None:
        self._scheduler = scheduler
        self._sqs = sqs
        self._targets = targets
        self._invoke = invoke
        self._log = log
        self._interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # ARN -> (LastModificationDate, GetSchedule answer): a schedule is read again once changed
        self._details: dict[str, tuple[Any, dict[str, Any]]] = {}
        # schedules fired or skipped, keyed so that one recreated or given a new time fires again
        self._done: set[tuple[Any, ...]] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="runtime-schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def poll(self, now: datetime | None = None) -> list[str]:
        """Fire every due schedule not fired yet; the names fired."""
        now = now or datetime.now(UTC)
        fired = []
        with self._lock:
            listed = list(self._list())
            self._forget_all_but({summary["Arn"] for summary in listed})
            for summary in listed:
                if summary.get("State") != "ENABLED":
                    continue
                detail = self._detail(summary)
                if detail is not None and self._due(detail, now):
                    fired.append(summary["Name"])
        return fired

    def reset(self) -> None:
        """Delete every runtime schedule (the groups stay) and forget what fired."""
        with self._lock:
            for summary in list(self._list()):
                self._delete(summary)
            self._details.clear()
            self._done.clear()

    def _loop(self) -> None:
        """Poll until stopped, outliving errors (logging each kind once in a row)."""
        last_error = ""
        while not self._stop.wait(self._interval):
            try:
                self.poll()
                last_error = ""
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error and not self._stop.is_set():
                    self._log(f"[scheduler] polling runtime schedules: {error}")
                last_error = error

    def _list(self) -> Iterator[dict[str, Any]]:
        for page in self._scheduler.get_paginator("list_schedules").paginate():
            yield from page.get("Schedules", [])

    def _detail(self, summary: dict[str, Any]) -> dict[str, Any] | None:
        """The whole schedule (a listing leaves out its expression and Input); None once deleted."""
        cached = self._details.get(summary["Arn"])
        if cached is None or cached[0] != summary.get("LastModificationDate"):
            try:
                detail = self._scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
            except self._scheduler.exceptions.ResourceNotFoundException:
                return None
            cached = self._details[summary["Arn"]] = (summary.get("LastModificationDate"), detail)
        return cached[1]

    def _forget_all_but(self, arns: set[str]) -> None:
        self._details = {arn: value for arn, value in self._details.items() if arn in arns}
        self._done = {key for key in self._done if key[0] in arns}

    def _due(self, detail: dict[str, Any], now: datetime) -> bool:
        """Fire ``detail`` when its time has come; whether it fired."""
        key = _key(detail)
        if key in self._done:
            return False
        try:
            when = at_time(detail["ScheduleExpression"], detail.get("ScheduleExpressionTimezone") or "UTC")
        except (TemplateError, KeyError, ValueError) as exc:
            self._skip(key, f"{detail['Name']}: {exc}")
            return False
        if when is None:
            self._skip(key, f"{detail['Name']} ({detail['ScheduleExpression']}): only at() fires locally")
            return False
        if when > now:
            return False
        self._done.add(key)
        if self._fire(detail) and detail.get("ActionAfterCompletion") == "DELETE":
            self._delete(detail)
        return True

    def _skip(self, key: tuple[Any, ...], why: str) -> None:
        self._done.add(key)
        self._log(f"[scheduler] skipped runtime schedule {why}")

    def _fire(self, detail: dict[str, Any]) -> bool:
        """Deliver the schedule's Input; False when its target is not the stack's."""
        name, target = detail["Name"], detail["Target"]
        arn, body = target["Arn"], target.get("Input") or "{}"
        queue, fn = self._targets.queues.get(arn), self._targets.function(arn)
        if queue is not None:
            self._log(f"[scheduler] fired {name} → {queue.logical_id}")
            self._send(name, queue, body, target.get("SqsParameters") or {})
        elif fn is not None:
            self._log(f"[scheduler] fired {name} → {fn.logical_id}")
            self._invoke_later(name, fn, body)
        else:
            self._log(f"[scheduler] skipped {name}: its target {arn} is not in this stack")
            return False
        return True

    def _send(self, name: str, queue: Queue, body: str, parameters: Mapping[str, Any]) -> None:
        extra = {}
        if queue.name.endswith(".fifo"):
            extra = {"MessageGroupId": parameters.get("MessageGroupId", name)}
            extra["MessageDeduplicationId"] = uuid.uuid4().hex
        try:
            self._sqs.send_message(QueueUrl=queue.url, MessageBody=body, **extra)
        except Exception as exc:
            self._log(f"[scheduler] {name} → {queue.logical_id} failed: {type(exc).__name__}: {exc}")

    def _invoke_later(self, name: str, fn: Function, body: str) -> None:
        """Invoke without waiting, as Scheduler invokes Lambda (asynchronously)."""
        try:
            payload = json.loads(body)
        except ValueError:
            self._log(f"[scheduler] {name} → {fn.logical_id} failed: its Input is not JSON")
            return

        def run() -> None:
            outcome = self._invoke(fn.logical_id, payload)
            if not outcome.ok:
                error = f"{outcome.error_type}: {outcome.error_message}"
                self._log(f"[scheduler] {name} → {fn.logical_id} failed: {error}")

        threading.Thread(target=run, name=f"schedule-{name}", daemon=True).start()

    def _delete(self, schedule: Mapping[str, Any]) -> None:
        with contextlib.suppress(self._scheduler.exceptions.ResourceNotFoundException):
            self._scheduler.delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])


def _key(detail: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        detail["Arn"],
        detail.get("CreationDate"),
        detail.get("ScheduleExpression"),
        detail.get("ScheduleExpressionTimezone"),
    )
