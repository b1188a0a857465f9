"""What the campaign tests share: a clock, a template's keyword rules, an event recorder, SQS helpers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wxsub import errors, keywords
from wxsub.stores.campaigns import Campaign, CampaignStore

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z, 16:00 in Beijing
TEMPLATE = "tmpl-order-shipped"
DATA = {"thing1": "Order shipped", "time2": "2026-11-24 10:30"}
_KEYWORDS = keywords.parse_content("{{thing1.DATA}}\n{{time2.DATA}}\n")


class Clock:
    """A clock tests move by hand; ``sleep`` moves it too."""

    def __init__(self, now: float = T0) -> None:
        self.now = float(now)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def check(template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]:
    """The registry's check for one known template (thing1, time2), with the real keyword rules."""
    if template_id != TEMPLATE:
        raise errors.UnknownTemplate(f"template {template_id} is not known")
    values, violations = keywords.validate(_KEYWORDS, data, fit=fit)
    if violations:
        raise keywords.violations_error(violations)
    return values


@dataclass
class StateEvent:
    campaign_id: str
    state: str
    previous: str | None
    counts: dict[str, Any]
    reason: str | None


@dataclass
class Events:
    """What a rule on the bus would receive: campaign state changes, in order."""

    seen: list[StateEvent] = field(default_factory=list)

    def campaign_state(
        self,
        campaign_id: str,
        state: str,
        *,
        previous: str | None,
        counts: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        self.seen.append(StateEvent(campaign_id, state, previous, dict(counts or {}), reason))

    def states(self, campaign_id: str) -> list[tuple[str | None, str]]:
        return [(e.previous, e.state) for e in self.seen if e.campaign_id == campaign_id]


def campaign(
    campaign_id: str,
    state: str = "expanding",
    *,
    audience: str = "granted",
    parts: int = 0,
    data: dict[str, str] | None = None,
    window: dict[str, str] | None = None,
    created_at: int = T0,
) -> Campaign:
    return Campaign(
        campaign_id=campaign_id,
        state=state,
        template_id=TEMPLATE,
        data=dict(DATA if data is None else data),
        audience=audience,
        parts=parts,
        created_at=created_at,
        updated_at=created_at,
        window=window,
    )


def running(store: CampaignStore, campaign_id: str, queued: int, **kwargs: Any) -> Campaign:
    """A campaign whose expansion queued ``queued`` messages in one page and is over."""
    assert store.create(campaign(campaign_id, **kwargs), [])
    assert store.page_done(campaign_id, 0, None, queued, last=True)
    moved = store.transition(campaign_id, "running", allowed=("expanding",))
    assert moved is not None
    return moved


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message on the queue, its body parsed; the queue is left empty."""
    bodies: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


_SEQUENCE = itertools.count(1)


def stream_record(
    campaign_id: str, old: str, new: str, *, error: str | None = None, message_id: str | None = None
) -> dict[str, Any]:
    """A DeliveriesTable stream record (Lambda's event shape) for one status change of a campaign send."""
    message_id = message_id or f"d-{next(_SEQUENCE)}"
    image: dict[str, Any] = {"message_id": {"S": message_id}, "campaign_id": {"S": campaign_id}}
    new_image = {**image, "status": {"S": new}}
    if error:
        new_image["answer"] = {"M": {"status": {"N": "422"}, "body": {"M": {"error": {"S": error}}}}}
    return {
        "eventName": "MODIFY",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/deliveries/stream/local",
        "dynamodb": {
            "Keys": {"message_id": {"S": message_id}},
            "OldImage": {**image, "status": {"S": old}},
            "NewImage": new_image,
            "SequenceNumber": str(next(_SEQUENCE)),
        },
    }
