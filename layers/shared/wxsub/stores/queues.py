"""SQS queues and EventBridge Scheduler one-time schedules, behind small classes."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

_SQS_BATCH = 10
_BATCH_ATTEMPTS = 5


class Queue:
    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self.url = url

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        self._client.send_message(QueueUrl=self.url, MessageBody=_json(body), DelaySeconds=delay_seconds)

    def send_all(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        """``SendMessageBatch`` ten at a time; entries SQS refused are sent again, then it raises."""
        for start in range(0, len(bodies), _SQS_BATCH):
            entries = [
                {"Id": str(i), "MessageBody": _json(body)}
                for i, body in enumerate(bodies[start : start + _SQS_BATCH])
            ]
            for attempt in range(_BATCH_ATTEMPTS):
                answer = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
                failed = {f["Id"] for f in answer.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
                time.sleep(0.05 * (attempt + 1))
            if entries:
                raise RuntimeError(f"SQS refused {len(entries)} messages after {_BATCH_ATTEMPTS} attempts")

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        """A received message reappears after ``seconds`` instead of the queue's visibility timeout."""
        self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43200))
        )


class OneTimeSchedules:
    """EventBridge Scheduler ``at()`` schedules that put a message on one queue, then delete themselves."""

    def __init__(self, client: Any, queue_arn: str, role_arn: str) -> None:
        self._client = client
        self._queue_arn = queue_arn
        self._role_arn = role_arn

    def at(self, name: str, when: int, payload: Mapping[str, Any]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
        try:
            self._client.create_schedule(
                Name=name,
                ScheduleExpression=f"at({stamp})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={"Arn": self._queue_arn, "RoleArn": self._role_arn, "Input": _json(payload)},
            )
        except self._client.exceptions.ConflictException:
            return  # a retry of the same step: the schedule is already there

    def cancel(self, name: str) -> None:
        try:
            self._client.delete_schedule(Name=name)
        except self._client.exceptions.ResourceNotFoundException:
            return


def _json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
