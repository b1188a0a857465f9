"""The non-HTTP triggers: schedules (EventBridge Scheduler), SQS and DynamoDB stream event sources.

A ScheduleV2 target receives exactly its ``Input`` (a classic ``Schedule`` without one receives
the scheduled event). A failed scheduled run is logged; the next tick is its retry, as Lambda's
asynchronous retries would be at this scale.

An SQS event source polls like Lambda's: batches up to ``BatchSize`` (gathered for up to
``MaximumBatchingWindowInSeconds``), deletes what succeeded, and leaves the rest to reappear
after the queue's visibility timeout (and to move to the DLQ at ``maxReceiveCount``). With
``ReportBatchItemFailures`` only the records named in ``batchItemFailures`` stay; a raised error,
or an answer naming an unknown record, fails the whole batch. Like Lambda with ``ScalingConfig:
MaximumConcurrency``, a source may run several pollers, each receiving and invoking its own batch.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from local.model import QueueSource, Schedule, StreamSource
from local.template import ACCOUNT_ID, TemplateError
from local.workers import LogSink, Outcome

InvokeFunction = Callable[[str, Any], Outcome]
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}


def schedule_event(schedule: Schedule, region: str) -> Any:
    """The payload the schedule's target receives."""
    if schedule.input is not None:
        try:
            return json.loads(schedule.input) if isinstance(schedule.input, str) else schedule.input
        except ValueError:
            raise TemplateError(f"{schedule.function}.{schedule.event}: Input is not JSON") from None
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{schedule.function}{schedule.event}"],
        "detail": {},
    }


def next_run(expression: str, after: datetime, timezone: str = "UTC") -> datetime | None:
    """When ``rate(...)``, ``cron(...)`` or ``at(...)`` fires next after ``after``; None for never."""
    if match := re.fullmatch(r"rate\((\d+)\s+(\w+)\)", expression.strip()):
        if match.group(2) not in _UNITS:
            raise TemplateError(f"unknown rate unit in {expression}")
        return after + timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if (when := at_time(expression, timezone)) is not None:
        return when if when > after else None
    if match := re.fullmatch(r"cron\((.+)\)", expression.strip()):
        return _cron_next(match.group(1).split(), after.astimezone(ZoneInfo(timezone)))
    raise TemplateError(f"schedule expression {expression!r} is not rate(), cron() or at()")


def at_time(expression: str, timezone: str = "UTC") -> datetime | None:
    """The moment ``at(yyyy-mm-ddThh:mm:ss)`` names, read in ``timezone``; None for rate() or cron()."""
    match = re.fullmatch(r"at\((.+)\)", expression.strip())
    if match is None:
        return None
    try:
        return datetime.fromisoformat(match.group(1)).replace(tzinfo=ZoneInfo(timezone))
    except ValueError:
        raise TemplateError(f"{expression!r} is not at(yyyy-mm-ddThh:mm:ss)") from None


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    if any(c in text for c in "LW#"):
        raise TemplateError(f"cron field {text!r}: L, W and # do not run locally")
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step = part.partition("/")
        if spec in ("*", "?"):
            start, end = low, high
        else:
            first, _, last = spec.partition("-")
            start = names.get(first.upper(), 0) if names and first.upper() in names else int(first)
            end_text = last or (str(high) if step else first)
            end = names[end_text.upper()] if names and end_text.upper() in names else int(end_text)
        values.update(range(start, end + 1, int(step or 1)))
    return values


def _cron_next(fields: list[str], after: datetime) -> datetime | None:
    if len(fields) != 6:
        raise TemplateError(f"cron() needs 6 fields, got {' '.join(fields)}")
    minutes, hours = _field(fields[0], 0, 59), _field(fields[1], 0, 23)
    days, months = _field(fields[2], 1, 31), _field(fields[3], 1, 12, _MONTHS)
    weekdays, years = _field(fields[4], 1, 7, _DAYS), _field(fields[5], 1970, 2199)
    candidate = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    limit = after + timedelta(days=366 * 5)
    while candidate < limit:
        weekday = candidate.isoweekday() % 7 + 1
        if candidate.year not in years or candidate.month not in months:
            candidate = (candidate.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
        elif candidate.day not in days or weekday not in weekdays:
            candidate = candidate.replace(hour=0, minute=0) + timedelta(days=1)
        elif candidate.hour not in hours:
            candidate = candidate.replace(minute=0) + timedelta(hours=1)
        elif candidate.minute not in minutes:
            candidate += timedelta(minutes=1)
        else:
            return candidate
    return None


class Scheduler:
    """One thread per enabled schedule, firing on its expression until :meth:`stop`."""

    def __init__(self, schedules: list[Schedule], invoke: InvokeFunction, log: LogSink, region: str) -> None:
        self.schedules = schedules
        self._invoke = invoke
        self._log = log
        self._region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run(self, schedule: Schedule) -> Outcome:
        outcome = self._invoke(schedule.function, schedule_event(schedule, self._region))
        status = "ok" if outcome.ok else f"failed: {outcome.error_type}: {outcome.error_message}"
        self._log(f"[scheduler] {schedule.function}.{schedule.event} ({schedule.expression}) {status}")
        return outcome

    def start(self) -> None:
        for schedule in self.schedules:
            if schedule.enabled:
                thread = threading.Thread(target=self._loop, args=(schedule,), daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _loop(self, schedule: Schedule) -> None:
        last = datetime.now(UTC)
        while (due := next_run(schedule.expression, last, schedule.timezone)) is not None:
            if self._stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
                return
            last = due
            self.run(schedule)


class QueuePoller:
    """Lambda's SQS event source mapping for one queue and function.

    ``concurrency`` pollers run at once, each with at most one batch in flight, as Lambda runs up
    to ``MaximumConcurrency`` invocations of one source; the queue's visibility timeout keeps
    them from taking the same message.
    """

    def __init__(
        self,
        source: QueueSource,
        sqs: Any,
        invoke: InvokeFunction,
        log: LogSink,
        region: str,
        *,
        concurrency: int = 1,
    ) -> None:
        self.source = source
        self.concurrency = max(1, concurrency)
        self._sqs = sqs
        self._invoke = invoke
        self._log = log
        self._region = region
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"poller-{source.function}-{i}", daemon=True)
            for i in range(self.concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _loop(self) -> None:
        """Poll until stopped, outliving errors as Lambda's poller does.

        A queue that :meth:`LocalStack.reset` is recreating is waited out without a log line.
        """
        while not self._stop.is_set():
            try:
                messages = self._receive()
                if messages:
                    self.deliver(messages)
            except self._sqs.exceptions.QueueDoesNotExist:
                self._stop.wait(0.2)
            except Exception as exc:
                if not self._stop.is_set():
                    self._log(f"[poller] {self.source.function}: {type(exc).__name__}: {exc}")
                    self._stop.wait(1)

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        window_ends = time.monotonic() + self.source.window_seconds
        while len(messages) < self.source.batch_size and not self._stop.is_set():
            answer = self._sqs.receive_message(
                QueueUrl=self.source.queue_url,
                MaxNumberOfMessages=min(10, self.source.batch_size - len(messages)),
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages.extend(answer.get("Messages", []))
            if messages and time.monotonic() >= window_ends:
                break
            if not messages and not self.source.window_seconds:
                break
        return messages

    def deliver(self, messages: list[dict[str, Any]]) -> list[str]:
        """Invoke the function with one batch; delete what succeeded; the ids left for redelivery."""
        event = {"Records": [self._record(m) for m in messages]}
        outcome = self._invoke(self.source.function, event)
        ids = [m["MessageId"] for m in messages]
        failed = self._failed(outcome, set(ids))
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        detail = "" if outcome.ok else f" ({outcome.error_type}: {outcome.error_message})"
        self._log(f"[poller] {self.source.function} batch of {len(ids)}: {len(failed)} failed{detail}")
        return [i for i in ids if i in failed]

    def _failed(self, outcome: Outcome, ids: set[str]) -> set[str]:
        if not outcome.ok:
            return ids
        if not self.source.report_failures or not outcome.result:
            return set()
        failures = outcome.result.get("batchItemFailures") if isinstance(outcome.result, dict) else None
        if not failures:
            return set()
        named = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
        if not named <= ids:
            name = self.source.function
            self._log(
                f"[poller] {name}: batchItemFailures names records not in the batch; the whole batch fails"
            )
            return ids
        return {i for i in named if i}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {}
        for name, value in (message.get("MessageAttributes") or {}).items():
            attribute: dict[str, Any] = {
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            if "StringValue" in value:
                attribute["stringValue"] = value["StringValue"]
            if "BinaryValue" in value:
                attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
            attributes[name] = attribute
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.source.queue_arn,
            "awsRegion": self._region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


class StreamPoller:
    """Lambda's DynamoDB stream event source for one table and function.

    One reader follows the stream's shard from ``StartingPosition``, gathers up to ``BatchSize``
    records for up to ``MaximumBatchingWindowInSeconds``, keeps those the ``FilterCriteria``
    patterns match (a record matching none is passed over, as Lambda does), and invokes the function.
    A failed batch is handed over again, the same records, up to ``MaximumRetryAttempts`` times
    (-1: until it succeeds), then passed over with a log line. Its reads are the stack's own (not
    counted by the local AWS's front): on AWS, Lambda's reads of a stream cost nothing.
    """

    POLL_SECONDS = 0.25  # Lambda reads a shard about four times a second
    MAX_BACKOFF_SECONDS = 5.0

    def __init__(self, source: StreamSource, streams: Any, invoke: InvokeFunction, log: LogSink) -> None:
        self.source = source
        self._streams = streams
        self._invoke = invoke
        self._log = log
        self._stop = threading.Event()
        self._renew = threading.Event()
        self._arn = source.stream_arn
        self._thread = threading.Thread(target=self._loop, name=f"stream-{source.function}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._renew.set()  # wakes a backing-off retry
        self._thread.join(timeout=5)

    def renew(self) -> None:
        """The table was made anew: read its new stream from ``StartingPosition``, dropping the old."""
        self._renew.set()

    def _loop(self) -> None:
        iterator: str | None = None
        pending: list[dict[str, Any]] = []
        first_at = 0.0
        while not self._stop.is_set():
            try:
                if self._renew.is_set():
                    self._renew.clear()
                    iterator, pending = None, []
                if iterator is None:
                    iterator = self._iterator()
                answer = self._streams.get_records(ShardIterator=iterator, Limit=self.source.batch_size)
                iterator = answer.get("NextShardIterator") or iterator
                fresh = [r for r in answer.get("Records", []) if self._wanted(r)]
                if fresh and not pending:
                    first_at = time.monotonic()
                pending.extend(fresh)
                due = pending and (
                    len(pending) >= self.source.batch_size
                    or time.monotonic() - first_at >= self.source.window_seconds
                )
                if due:
                    batch, pending = pending[: self.source.batch_size], pending[self.source.batch_size :]
                    self._deliver(batch)
                    first_at = time.monotonic()
                if not answer.get("Records"):
                    self._stop.wait(self.POLL_SECONDS)
            except Exception as exc:
                if not self._stop.is_set():
                    self._log(f"[stream] {self.source.function}: {type(exc).__name__}: {exc}")
                    iterator = None
                    self._stop.wait(1)

    def _iterator(self) -> str:
        arn = self.source.stream_arn
        stream = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]
        # the stream's own ARN names its label, new with every table: records of a table made anew
        # (LocalStack.reset) never share an eventSourceARN and sequence numbers with the old one's
        label = stream.get("StreamLabel")
        self._arn = f"{arn.rsplit('/stream/', 1)[0]}/stream/{label}" if label else arn
        shard = stream["Shards"][0]["ShardId"]
        position = self.source.starting_position
        answer = self._streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=position)
        return str(answer["ShardIterator"])

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(r) for r in batch]}
        attempt = 0
        while not self._stop.is_set() and not self._renew.is_set():
            outcome = self._invoke(self.source.function, event)
            if outcome.ok:
                self._log(f"[stream] {self.source.function} batch of {len(batch)}")
                return
            attempt += 1
            detail = f"{outcome.error_type}: {outcome.error_message}"
            if 0 <= self.source.retries < attempt:
                self._log(f"[stream] {self.source.function}: batch of {len(batch)} passed over ({detail})")
                return
            self._log(f"[stream] {self.source.function}: batch of {len(batch)} failed, again ({detail})")
            self._renew.wait(min(self.MAX_BACKOFF_SECONDS, 0.5 * 2**attempt))  # stop() sets it too

    def _wanted(self, record: dict[str, Any]) -> bool:
        if not self.source.filters:
            return True
        plain = self._record(record)
        return any(matches(pattern, plain) for pattern in self.source.filters)

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        change = dict(record.get("dynamodb") or {})
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = created.timestamp()
        return {**record, "dynamodb": change, "eventSourceARN": self._arn}


def matches(pattern: Any, value: Any) -> bool:
    """An event filter pattern against a record: nested objects, lists of allowed values, and
    ``{"exists": bool}`` (the subset the template uses; anything else never matches)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        for key, sub in pattern.items():
            if isinstance(sub, list) and any(isinstance(a, dict) and "exists" in a for a in sub):
                wanted = next(a["exists"] for a in sub if isinstance(a, dict) and "exists" in a)
                if (key in value) != bool(wanted):
                    return False
            elif key not in value or not matches(sub, value[key]):
                return False
        return True
    if isinstance(pattern, list):
        return any(not isinstance(a, dict) and a == value for a in pattern)
    return False
