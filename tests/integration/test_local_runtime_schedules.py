"""Schedules a function creates at run time in EventBridge Scheduler fire at their time, once.

moto stores such schedules but never fires them; the local stack polls them and delivers.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from wx_flows import aws_client

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
ACCOUNT = "123456789012"


def _eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)
    return value


def _in_two_seconds() -> datetime:
    """A whole second 2-3 s from now: at() has a resolution of one second."""
    return (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)


def _at(when: datetime, timezone: str = "UTC") -> str:
    return f"at({when.astimezone(ZoneInfo(timezone)).strftime('%Y-%m-%dT%H:%M:%S')})"


def _schedule(stack: LocalStack, name: str, expression: str, target_arn: str, **options: Any) -> None:
    role = stack.description.functions["EchoFunction"].environment["SCHEDULER_ROLE_ARN"]
    target = {"Arn": target_arn, "RoleArn": role}
    if "Input" in options:
        target["Input"] = options.pop("Input")
    aws_client(stack, "scheduler").create_schedule(
        Name=name,
        ScheduleExpression=expression,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        **options,
    )


def _exists(stack: LocalStack, name: str, group: str = "default") -> bool:
    scheduler = aws_client(stack, "scheduler")
    try:
        scheduler.get_schedule(Name=name, GroupName=group)
    except scheduler.exceptions.ResourceNotFoundException:
        return False
    return True


def _queue(stack: LocalStack) -> tuple[Any, str, str]:
    queue = next(q for q in stack.description.queues if q.logical_id == "ScheduledQueue")
    return aws_client(stack, "sqs"), queue.url, queue.arn


def _received(sqs: Any, url: str, run: str, seconds: float) -> list[dict[str, Any]]:
    """The messages of ``run`` that reach the queue within ``seconds``, each with SentTimestamp."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["SentTimestamp"]
        )
        for message in answer.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if json.loads(message["Body"]).get("run") == run:
                found.append(message)
    return found


def _ticks(stack: LocalStack, run: str) -> list[dict[str, str]]:
    answer = aws_client(stack, "dynamodb").query(
        TableName="wxsub-local-EventsTable",
        IndexName="by-kind",
        KeyConditionExpression="kind = :k",
        ExpressionAttributeValues={":k": {"S": "tick"}},
    )
    items = [{k: v["S"] for k, v in item.items()} for item in answer["Items"]]
    return [item for item in items if json.loads(item["event"]).get("run") == run]


def test_an_at_schedule_to_a_queue_fires_once_at_its_time_and_is_deleted(fixture_stack: LocalStack) -> None:
    # Given a one-time schedule 2 s ahead, written in Shanghai time, deleted after completion
    run, name = uuid.uuid4().hex[:8], f"to-queue-{uuid.uuid4().hex[:8]}"
    sqs, url, arn = _queue(fixture_stack)
    due = _in_two_seconds()
    _schedule(
        fixture_stack,
        name,
        _at(due, "Asia/Shanghai"),
        arn,
        Input=json.dumps({"run": run}),
        ScheduleExpressionTimezone="Asia/Shanghai",
        ActionAfterCompletion="DELETE",
    )

    # When its time passes
    messages = _received(sqs, url, run, seconds=(due - datetime.now(UTC)).total_seconds() + 3)

    # Then its Input reached the queue once, not before its time and soon after it
    assert [json.loads(m["Body"]) for m in messages] == [{"run": run}]
    sent = int(messages[0]["Attributes"]["SentTimestamp"]) / 1000
    assert due.timestamp() <= sent < due.timestamp() + 1.5
    _eventually(lambda: not _exists(fixture_stack, name))
    assert f"[scheduler] fired {name} → ScheduledQueue" in fixture_stack.logs()


def test_an_at_schedule_to_a_function_in_another_group_invokes_it_once_and_stays(
    fixture_stack: LocalStack,
) -> None:
    # Given a one-time schedule 2 s ahead in a group of its own, targeting a function by ARN
    run, name = uuid.uuid4().hex[:8], f"to-function-{uuid.uuid4().hex[:8]}"
    group = f"group-{uuid.uuid4().hex[:8]}"
    aws_client(fixture_stack, "scheduler").create_schedule_group(Name=group)
    due = _in_two_seconds()
    function = f"arn:aws:lambda:{fixture_stack.region}:{ACCOUNT}:function:wxsub-local-TickFunction"
    _schedule(fixture_stack, name, _at(due), function, Input=json.dumps({"run": run}), GroupName=group)

    # When its time passes
    (tick,) = _eventually(lambda: _ticks(fixture_stack, run))

    # Then the function got exactly the Input, at its time, and only once
    assert json.loads(tick["event"]) == {"run": run}
    assert float(tick["at"]) >= due.timestamp()
    time.sleep(1.5)
    assert len(_ticks(fixture_stack, run)) == 1
    assert _exists(fixture_stack, name, group)  # ActionAfterCompletion NONE keeps it


def test_disabled_future_and_foreign_schedules_do_not_fire(fixture_stack: LocalStack) -> None:
    run = uuid.uuid4().hex[:8]
    sqs, url, arn = _queue(fixture_stack)
    now = datetime.now(UTC).replace(microsecond=0)
    foreign = f"foreign-{run}"
    _schedule(
        fixture_stack, f"disabled-{run}", _at(now), arn, Input=json.dumps({"run": run}), State="DISABLED"
    )
    _schedule(
        fixture_stack, f"later-{run}", _at(now + timedelta(hours=1)), arn, Input=json.dumps({"run": run})
    )
    _schedule(fixture_stack, foreign, _at(now), f"arn:aws:sqs:us-east-1:{ACCOUNT}:not-in-this-stack")

    assert _received(sqs, url, run, seconds=2) == []
    skipped = [line for line in fixture_stack.logs() if line.startswith(f"[scheduler] skipped {foreign}")]
    assert len(skipped) == 1  # logged once, not at every poll


def test_reset_deletes_the_runtime_schedules(fixture_stack: LocalStack) -> None:
    _, _, arn = _queue(fixture_stack)
    _schedule(
        fixture_stack, f"pending-{uuid.uuid4().hex[:8]}", _at(datetime.now(UTC) + timedelta(hours=1)), arn
    )

    fixture_stack.reset()

    assert aws_client(fixture_stack, "scheduler").list_schedules()["Schedules"] == []
