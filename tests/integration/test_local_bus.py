"""The template's event bus exists in the local AWS, and every event put on it can be read back."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from wx_flows import aws_client

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
BUS = "wxsub-local-events"


def _put(stack: LocalStack, bus: str, detail_type: str, detail: dict[str, object], **entry: object) -> None:
    answer = aws_client(stack, "events").put_events(
        Entries=[
            {
                "Source": "fixture.test",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": bus,
                **entry,
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0


def test_events_put_on_the_bus_by_name_or_arn_come_back_in_order(fixture_stack: LocalStack) -> None:
    run = uuid.uuid4().hex[:8]
    arn = next(b.arn for b in fixture_stack.description.event_buses if b.name == BUS)

    _put(fixture_stack, BUS, "campaign.started", {"run": run, "n": 1})
    _put(fixture_stack, arn, "campaign.finished", {"run": run, "n": 2}, Time=datetime(2026, 1, 2, tzinfo=UTC))
    _put(fixture_stack, "default", "elsewhere", {"run": run, "n": 3})

    mine = [e for e in fixture_stack.bus_events() if e["detail"].get("run") == run]
    assert [(e["source"], e["detail-type"], e["detail"]) for e in mine] == [
        ("fixture.test", "campaign.started", {"run": run, "n": 1}),
        ("fixture.test", "campaign.finished", {"run": run, "n": 2}),
    ]
    assert mine[1]["time"] == "2026-01-02T00:00:00Z"
    assert {"id", "time", "account", "region", "resources"} <= set(mine[0])
    assert mine == [e for e in fixture_stack.bus_events("EventBus") if e["detail"].get("run") == run]


def test_an_event_a_function_puts_is_seen_and_logged(fixture_stack: LocalStack) -> None:
    run = uuid.uuid4().hex[:8]

    assert fixture_stack.invoke(
        "PublishFunction", {"detail_type": "fixture.published", "detail": {"run": run}}
    ) == {"failed": 0}

    assert [e["detail"] for e in fixture_stack.bus_events() if e["detail-type"] == "fixture.published"][
        -1
    ] == {"run": run}
    assert f'[events] fixture.published {{"run":"{run}"}}' in fixture_stack.logs()


def test_reset_empties_the_bus_events(fixture_stack: LocalStack) -> None:
    _put(fixture_stack, BUS, "before.reset", {"n": 1})

    fixture_stack.reset()
    _put(fixture_stack, BUS, "after.reset", {"n": 2})

    assert [e["detail-type"] for e in fixture_stack.bus_events()] == ["after.reset"]


def test_the_stacks_own_polling_is_not_counted_as_aws_requests(fixture_stack: LocalStack) -> None:
    fixture_stack.reset_aws_requests()

    time.sleep(1.2)  # the runtime-schedule poller and the bus tap ran at least twice
    _put(fixture_stack, BUS, "counted", {"n": 1})
    fixture_stack.bus_events()

    counted = fixture_stack.aws_requests()
    assert counted.count("scheduler") == 0
    assert counted.count("events") == counted.count("events", "PutEvents") == 1
