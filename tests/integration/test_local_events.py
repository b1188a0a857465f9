"""Schedules, SQS and DynamoDB stream event sources, driven as AWS drives them, observed through moto."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from wx_flows import aws_client

from local.events import QueuePoller, StreamPoller, matches
from local.model import QueueSource, StreamSource
from local.stack import LocalStack
from local.workers import Outcome

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
INPUT = {"job": "tick", "source": "fixture.schedule"}


def _items(stack: LocalStack, kind: str) -> list[dict[str, str]]:
    answer = aws_client(stack, "dynamodb").query(
        TableName="wxsub-local-EventsTable",
        IndexName="by-kind",
        KeyConditionExpression="kind = :k",
        ExpressionAttributeValues={":k": {"S": kind}},
    )
    return [{k: v["S"] for k, v in item.items()} for item in answer["Items"]]


def _eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def test_scheduled_functions_ran_once_at_start_with_exactly_their_input(fixture_stack: LocalStack) -> None:
    ticks = _items(fixture_stack, "tick")

    assert len(ticks) >= 1
    assert all(json.loads(tick["event"]) == INPUT for tick in ticks)


def test_run_schedule_invokes_now_with_the_input(fixture_stack: LocalStack) -> None:
    before = len(_items(fixture_stack, "tick"))

    result = fixture_stack.run_schedule("TickFunction")

    assert result == {"ticked": True, "event": INPUT}
    assert len(_items(fixture_stack, "tick")) == before + 1


def test_the_schedule_dead_letter_queue_sam_would_create_exists(fixture_stack: LocalStack) -> None:
    urls = aws_client(fixture_stack, "sqs").list_queues()["QueueUrls"]

    assert any(url.endswith("/wxsub-local-TickFunctionEveryQueue") for url in urls)


def test_only_the_failed_records_of_a_batch_are_redelivered(fixture_stack: LocalStack) -> None:
    # Given messages of which two fail their first (and second) delivery
    run = uuid.uuid4().hex[:8]
    bodies = {f"{run}-ok1": 0, f"{run}-ok2": 0, f"{run}-ok3": 0, f"{run}-fail1": 1, f"{run}-fail2": 2}
    sqs = aws_client(fixture_stack, "sqs")
    queue = sqs.get_queue_url(QueueName="wxsub-local-WorkQueue")["QueueUrl"]

    # When they are queued together
    sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"id": k, "fail": n})}
            for i, (k, n) in enumerate(bodies.items())
        ],
    )

    # Then each is delivered until it succeeds, and a succeeded record never comes back
    def deliveries() -> Counter[str]:
        return Counter(
            d["message"] for d in _items(fixture_stack, "delivery") if d["message"].startswith(run)
        )

    _eventually(lambda: deliveries()[f"{run}-fail2"] == 3)
    time.sleep(2.5)
    assert deliveries() == {
        f"{run}-ok1": 1,
        f"{run}-ok2": 1,
        f"{run}-ok3": 1,
        f"{run}-fail1": 2,
        f"{run}-fail2": 3,
    }
    assert all(int(d["batch"]) <= 5 for d in _items(fixture_stack, "delivery"))


def test_a_record_that_always_fails_moves_to_the_dead_letter_queue(fixture_stack: LocalStack) -> None:
    sqs = aws_client(fixture_stack, "sqs")
    queue = sqs.get_queue_url(QueueName="wxsub-local-WorkQueue")["QueueUrl"]
    dead = sqs.get_queue_url(QueueName="wxsub-local-WorkDeadLetters")["QueueUrl"]
    poison = f"poison-{uuid.uuid4().hex[:8]}"

    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"id": poison, "fail": 99}))

    found: list[dict[str, Any]] = []

    def in_dead_letters() -> bool:
        found.extend(sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10).get("Messages", []))
        return any(json.loads(m["Body"])["id"] == poison for m in found)

    _eventually(in_dead_letters)
    attempts = [d for d in _items(fixture_stack, "delivery") if d["message"] == poison]
    assert len(attempts) == 3  # maxReceiveCount


def test_a_source_with_maximum_concurrency_3_runs_three_batches_at_once(fixture_stack: LocalStack) -> None:
    # Given a source with BatchSize 1 and MaximumConcurrency 3, whose function takes 1 s a batch
    run = uuid.uuid4().hex[:8]
    sqs = aws_client(fixture_stack, "sqs")
    queue = sqs.get_queue_url(QueueName="wxsub-local-BatchQueue")["QueueUrl"]

    # When three messages are queued together
    sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"id": f"{run}-{i}", "run": run})} for i in range(3)
        ],
    )

    # Then three batches ran in three execution environments, each started before any ended
    def batches() -> list[dict[str, str]]:
        return [b for b in _items(fixture_stack, "batch") if b["run"] == run]

    _eventually(lambda: len(batches()) == 3)
    started = [float(b["started"]) for b in batches()]
    ended = [float(b["ended"]) for b in batches()]
    assert max(started) < min(ended)
    assert len({b["pid"] for b in batches()}) == 3
    assert max(ended) - min(started) < 2.5


def test_pollers_per_source_follow_maximum_concurrency_capped_by_the_stack(fixture_stack: LocalStack) -> None:
    sources = {s.function: s for s in fixture_stack.description.queue_sources}

    assert fixture_stack.queue_concurrency(sources["BatchFunction"]) == 3
    assert fixture_stack.queue_concurrency(sources["WorkerFunction"]) == 1
    assert (
        fixture_stack.queue_concurrency(dataclasses.replace(sources["BatchFunction"], max_concurrency=50))
        == 4
    )


def _poller(stack: LocalStack, queue_url: str, outcome: Outcome) -> QueuePoller:
    source = QueueSource(
        function="Scratch",
        event="Test",
        queue_url=queue_url,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:scratch",
        batch_size=10,
        window_seconds=0,
        report_failures=True,
        enabled=True,
    )
    return QueuePoller(
        source, aws_client(stack, "sqs"), lambda _fn, _event: outcome, lambda _line: None, stack.region
    )


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(False, None, "RuntimeError", "raised"),
        Outcome(True, {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}),
        Outcome(True, {"batchItemFailures": [{"itemIdentifier": ""}]}),
    ],
    ids=["raised", "unknown-identifier", "empty-identifier"],
)
def test_a_raise_or_an_invalid_answer_fails_the_whole_batch(
    fixture_stack: LocalStack, outcome: Outcome
) -> None:
    sqs = aws_client(fixture_stack, "sqs")
    queue = sqs.create_queue(
        QueueName=f"scratch-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "1"}
    )["QueueUrl"]
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)])
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]

    failed = _poller(fixture_stack, queue, outcome).deliver(messages)

    assert sorted(failed) == sorted(m["MessageId"] for m in messages)
    time.sleep(1.2)
    again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(again) == len(messages)


def test_an_empty_answer_or_empty_failures_deletes_the_batch(fixture_stack: LocalStack) -> None:
    sqs = aws_client(fixture_stack, "sqs")
    queue = sqs.create_queue(
        QueueName=f"scratch-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "1"}
    )["QueueUrl"]
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)])
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]

    failed = _poller(fixture_stack, queue, Outcome(True, {"batchItemFailures": []})).deliver(messages)

    assert failed == []
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []) == []


def test_after_a_reset_the_tables_and_queues_are_empty_and_still_served(fixture_stack: LocalStack) -> None:
    sqs = aws_client(fixture_stack, "sqs")
    queue = sqs.get_queue_url(QueueName="wxsub-local-WorkQueue")["QueueUrl"]
    lines_before = len(fixture_stack.logs())

    fixture_stack.reset()

    assert _items(fixture_stack, "delivery") == []
    ticks = [json.loads(t["event"]) for t in _items(fixture_stack, "tick")]
    # the schedule ran again (and, when its minute came round meanwhile, on its own too)
    assert ticks and all(tick == INPUT for tick in ticks)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"id": "after-reset"}))
    _eventually(lambda: [d["message"] for d in _items(fixture_stack, "delivery")] == ["after-reset"])
    assert not [
        line for line in fixture_stack.logs()[lines_before:] if "[poller]" in line and "Error" in line
    ]


# -- DynamoDB stream event sources ---------------------------------------------------------------


def test_a_stream_source_hands_over_the_filtered_changes_and_a_failed_batch_again_unchanged(
    fixture_stack: LocalStack,
) -> None:
    dynamodb = aws_client(fixture_stack, "dynamodb")
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    arn = dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["TableArn"]
    source = StreamSource(
        function="Counter",
        event="Changes",
        stream_arn=f"{arn}/stream/local",
        batch_size=100,
        window_seconds=1,
        starting_position="TRIM_HORIZON",
        filters=({"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"tag": {"S": [{"exists": True}]}}}},),
        retries=-1,
        enabled=True,
    )
    handed: list[dict[str, Any]] = []

    def invoke(function: str, event: dict[str, Any]) -> Outcome:
        handed.append(event)
        ok = len(handed) > 1  # the first hand-over fails
        return Outcome(ok, {} if ok else None, None if ok else "RuntimeError", None if ok else "first try")

    poller = StreamPoller(source, aws_client(fixture_stack, "dynamodbstreams"), invoke, lambda _line: None)
    poller.start()
    try:
        for pk, tag in (("a", "x"), ("b", None), ("c", "y")):
            item = {"pk": {"S": pk}, "n": {"N": "1"}, **({"tag": {"S": tag}} if tag else {})}
            dynamodb.put_item(TableName=name, Item=item)  # INSERT: passed over
            dynamodb.update_item(
                TableName=name,
                Key={"pk": {"S": pk}},
                UpdateExpression="SET n = :two",
                ExpressionAttributeValues={":two": {"N": "2"}},
            )
        deadline = time.monotonic() + 10
        while len(handed) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        poller.stop()

    assert len(handed) >= 2
    first, again = handed[0], handed[1]
    assert again == first
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in first["Records"]]
    assert keys == ["a", "c"]
    record = first["Records"][0]
    assert record["eventName"] == "MODIFY"
    assert (
        record["eventSourceARN"].startswith(f"{arn}/stream/")
        and record["eventSourceARN"] != source.stream_arn
    )
    assert record["dynamodb"]["OldImage"]["n"] == {"N": "1"} and record["dynamodb"]["NewImage"]["n"] == {
        "N": "2"
    }
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float)


@pytest.mark.parametrize(
    ("pattern", "value", "matched"),
    [
        ({"a": ["x"]}, {"a": "x"}, True),
        ({"a": ["x"]}, {"a": "y"}, False),
        ({"a": {"b": [{"exists": True}]}}, {"a": {"b": 1}}, True),
        ({"a": {"b": [{"exists": True}]}}, {"a": {}}, False),
        ({"a": {"b": [{"exists": False}]}}, {"a": {}}, True),
        ({"a": ["x"]}, {}, False),
        ({"a": [{"prefix": "x"}]}, {"a": "xy"}, False),  # not supported locally: never matches
    ],
)
def test_a_filter_pattern_matches_as_lambda_filters(pattern: Any, value: Any, matched: bool) -> None:
    assert matches(pattern, value) is matched
