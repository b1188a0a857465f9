"""A campaign send the sweep gave up on (no sent event) is queued once more, under a new message_id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from campaign_kit import Events, campaign, drain, running

from wxsub.services.campaigns import CampaignResends, message_id_for
from wxsub.stores.campaigns import CampaignStore
from wxsub.stores.queues import Queue


@dataclass(frozen=True)
class GivenUp:
    """The delivery the sweep just failed with no_sent_event."""

    message_id: str
    openid: str
    campaign_id: str | None
    grant: str | None = "one_time"


@dataclass
class World:
    store: CampaignStore
    events: Events
    sqs: Any
    url: str

    def resends(self) -> CampaignResends:
        return CampaignResends(self.store, Queue(self.sqs, self.url), self.events)


@pytest.fixture
def world(campaigns_table: Any) -> World:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="send")["QueueUrl"]
    return World(CampaignStore(campaigns_table), Events(), sqs, url)


def test_a_first_send_given_up_is_queued_again_and_the_done_campaign_reopens(world: World) -> None:
    running(world.store, "c1", queued=1)
    world.store.count("c1", {"unknown": 1}, {})
    world.store.transition("c1", "done", allowed=("running",))
    first = message_id_for("c1", "o-a")

    world.resends()(GivenUp(first, "o-a", "c1"))

    queued = drain(world.sqs, world.url)
    got = world.store.get("c1")
    assert queued == [{"campaign_id": "c1", "openid": "o-a", "retry_of": first}]
    assert message_id_for("c1", "o-a", first) != first
    assert got is not None and (got.state, got.counts["unknown"]) == ("running", 0)
    assert world.events.states("c1")[-1] == ("done", "running")


def test_a_resend_given_up_again_counts_failed_and_is_not_queued(world: World) -> None:
    running(world.store, "c1", queued=1)
    world.store.count("c1", {"unknown": 1}, {})
    retry = message_id_for("c1", "o-a", message_id_for("c1", "o-a"))

    world.resends()(GivenUp(retry, "o-a", "c1"))

    got = world.store.get("c1")
    assert drain(world.sqs, world.url) == []
    assert got is not None and got.counts["unknown"] == 0 and got.failed == {"no_sent_event": 1}


def test_a_long_term_send_is_never_resent_since_wechat_would_deliver_it_again(world: World) -> None:
    running(world.store, "c1", queued=1)
    world.store.count("c1", {"unknown": 1}, {})

    world.resends()(GivenUp(message_id_for("c1", "o-a"), "o-a", "c1", grant=None))

    got = world.store.get("c1")
    assert drain(world.sqs, world.url) == []
    assert got is not None and got.failed == {"no_sent_event": 1}


def test_a_cancelled_campaign_resends_nothing(world: World) -> None:
    running(world.store, "c1", queued=1)
    world.store.transition("c1", "cancelled", allowed=("running",))

    world.resends()(GivenUp(message_id_for("c1", "o-a"), "o-a", "c1"))

    assert drain(world.sqs, world.url) == []


def test_a_recipients_own_data_goes_with_the_resend(world: World) -> None:
    rows = [{"openid": "o-a"}, {"openid": "o-b", "data": {"thing1": "For B"}}]
    assert world.store.create(campaign("c1", audience="list", parts=1), [rows])

    world.resends()(GivenUp(message_id_for("c1", "o-b"), "o-b", "c1"))

    assert drain(world.sqs, world.url)[0]["data"] == {"thing1": "For B"}


def test_a_send_that_was_not_a_campaigns_is_left_alone(world: World) -> None:
    world.resends()(GivenUp("0123abcd", "o-a", None))

    assert drain(world.sqs, world.url) == []
