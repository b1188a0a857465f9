"""EventBus: events buffered per invocation, put ten at a time, best effort; the Announcer's events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from campaign_kit import T0, Clock

from wxsub.bus import CAMPAIGN_STATE, MESSAGE_STATUS, SOURCE, EventBus, NoEvents
from wxsub.services.announce import Announcer

REGION = "ap-east-1"


class EventBridge:
    """PutEvents as EventBridge answers it: ``fail`` entries of a request refused, or the call raising."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.fail = fail
        self.error = error

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(Entries)
        if self.error is not None:
            raise self.error
        return {"FailedEntryCount": min(self.fail, len(Entries)), "Entries": [{} for _ in Entries]}

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for request in self.requests for e in request]


def emit(bus: EventBus, n: int) -> None:
    for i in range(n):
        bus.campaign_state(f"c{i}", "running", previous="expanding", counts={"queued": i})


def test_events_wait_for_the_flush() -> None:
    client = EventBridge()
    bus = EventBus(client, "wxsub-events", clock=Clock())

    emit(bus, 3)

    assert client.requests == []
    assert bus.flush() == 0
    assert [len(r) for r in client.requests] == [3]


def test_events_are_put_ten_at_a_time_and_the_buffer_empties() -> None:
    client = EventBridge()
    bus = EventBus(client, "wxsub-events", clock=Clock())
    emit(bus, 23)

    lost = bus.flush()
    again = bus.flush()

    assert (lost, again) == (0, 0)
    assert [len(r) for r in client.requests] == [10, 10, 3]
    assert [d["campaign_id"] for d in client.details()] == [f"c{i}" for i in range(23)]


def test_an_entry_has_the_documented_envelope_and_shape() -> None:
    client = EventBridge()
    bus = EventBus(client, "wxsub-events", clock=Clock())

    bus.campaign_state("c1", "paused", previous="running", counts={"sent": 3}, reason="quota")
    bus.message_status(
        message_id="m-1",
        status="sent",
        openid="o-中文",
        template_id="tmpl",
        msgid="1700827132819554304",
        campaign_id="c1",
    )
    bus.flush()

    state, status = client.requests[0]
    assert {k: state[k] for k in ("Source", "DetailType", "EventBusName")} == {
        "Source": SOURCE,
        "DetailType": CAMPAIGN_STATE,
        "EventBusName": "wxsub-events",
    }
    assert json.loads(state["Detail"]) == {
        "campaign_id": "c1",
        "state": "paused",
        "previous": "running",
        "reason": "quota",
        "counts": {"sent": 3},
        "at": T0,
    }
    assert status["DetailType"] == MESSAGE_STATUS
    assert "o-中文" in status["Detail"]  # not \\u-escaped
    assert json.loads(status["Detail"]) == {
        "message_id": "m-1",
        "status": "sent",
        "openid": "o-中文",
        "template_id": "tmpl",
        "msgid": "1700827132819554304",
        "errcode": None,
        "error_status": None,
        "campaign_id": "c1",
        "at": T0,
    }


def test_entries_eventbridge_refused_are_counted() -> None:
    bus = EventBus(EventBridge(fail=2), "wxsub-events", clock=Clock())
    emit(bus, 12)

    assert bus.flush() == 4  # two refused in each request


@pytest.mark.parametrize("error", [RuntimeError("endpoint unreachable"), TimeoutError("read timeout")])
def test_a_put_that_fails_is_counted_and_never_raises(error: Exception) -> None:
    client = EventBridge(error=error)
    bus = EventBus(client, "wxsub-events", clock=Clock())
    emit(bus, 15)

    lost = bus.flush()

    assert lost == 15
    assert [len(r) for r in client.requests] == [10, 5]  # the second request is still tried


def test_a_bus_with_nothing_buffered_puts_nothing() -> None:
    client = EventBridge()

    assert EventBus(client, "wxsub-events").flush() == 0
    assert client.requests == []


def test_no_events_goes_nowhere() -> None:
    bus = NoEvents()

    bus.campaign_state("c1", "running", previous="expanding")
    bus.message_status(message_id="m", status="sent", openid="o", template_id="t")

    assert bus.flush() == 0


def test_events_reach_a_rule_on_eventbridge(aws: Any) -> None:
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name="wxsub-events")
    url = sqs.create_queue(QueueName="campaign-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="campaigns",
        EventBusName="wxsub-events",
        EventPattern=json.dumps({"source": [SOURCE], "detail-type": [CAMPAIGN_STATE]}),
    )
    events.put_targets(Rule="campaigns", EventBusName="wxsub-events", Targets=[{"Id": "q", "Arn": arn}])
    bus = EventBus(events, "wxsub-events", clock=Clock())

    bus.campaign_state("c1", "done", previous="running", counts={"sent": 2})
    bus.message_status(message_id="m-1", status="sent", openid="o-a", template_id="tmpl")
    lost = bus.flush()

    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert lost == 0
    assert [json.loads(m["Body"])["detail"]["state"] for m in received] == ["done"]


@dataclass
class Settled:
    message_id: str
    status: str
    openid: str = "o-a"
    template_id: str = "tmpl"
    msgid: str | None = "1"
    errcode: int | None = None
    error_status: str | None = None
    campaign_id: str | None = "c1"


def test_each_settled_send_is_announced_on_the_bus() -> None:
    client = EventBridge()
    bus = EventBus(client, "wxsub-events")
    announce = Announcer(bus)

    announce(Settled("m-1", "delivered"))
    announce(Settled("m-3", "failed", errcode=43101, error_status="failed:user block"))
    announce(Settled("m-4", "delivered", campaign_id=None))
    bus.flush()

    assert [(d["message_id"], d["status"], d.get("campaign_id")) for d in client.details()] == [
        ("m-1", "delivered", "c1"),
        ("m-3", "failed", "c1"),
        ("m-4", "delivered", None),
    ]
