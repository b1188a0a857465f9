"""CampaignService: validation before anything is queued, starting now or on a schedule, keys, cancel, resume.

The store, ExpandQueue and the one-time schedules are moto's (in-process); the template's keyword
rules are the real ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from campaign_kit import DATA, T0, TEMPLATE, Clock, Events, check, drain

from wxsub import errors
from wxsub.services.campaigns import (
    CampaignService,
    CampaignSpec,
    Recipient,
    Window,
    schedule_name,
)
from wxsub.stores.campaigns import CampaignStore
from wxsub.stores.queues import OneTimeSchedules, Queue

REGION = "ap-east-1"
HOUR = 3600
OPEN_NOW = Window("09:00", "21:00", "Asia/Shanghai")  # T0 is 16:00 in Beijing
MORNINGS = Window("09:00", "12:00", "Asia/Shanghai")  # closed at T0; opens at 09:00 tomorrow
TOMORROW_9 = T0 + 17 * HOUR


@dataclass
class World:
    service: CampaignService
    store: CampaignStore
    clock: Clock
    events: Events
    sqs: Any
    scheduler: Any
    expand_url: str

    def expand_messages(self) -> list[dict[str, Any]]:
        return drain(self.sqs, self.expand_url)

    def schedule(self, campaign_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.scheduler.get_schedule(Name=schedule_name(campaign_id, "start"))
        except self.scheduler.exceptions.ResourceNotFoundException:
            return None
        return found


@pytest.fixture
def world(campaigns_table: Any) -> World:
    clock = Clock()
    sqs = boto3.client("sqs", region_name=REGION)
    scheduler = boto3.client("scheduler", region_name=REGION)
    url = sqs.create_queue(QueueName="expand")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    store = CampaignStore(campaigns_table, clock=clock)
    events = Events()
    schedules = OneTimeSchedules(scheduler, arn, "arn:aws:iam::123456789012:role/start-campaigns")
    service = CampaignService(
        store, check, Queue(sqs, url), schedules, events, max_recipients=1200, clock=clock
    )
    return World(service, store, clock, events, sqs, scheduler, url)


def spec(audience: Any = "granted", **kwargs: Any) -> CampaignSpec:
    return CampaignSpec(template_id=TEMPLATE, data=kwargs.pop("data", DATA), audience=audience, **kwargs)


def listed(*openids: str) -> tuple[Recipient, ...]:
    return tuple(Recipient(openid) for openid in openids)


# validation: nothing stored, nothing queued


def test_a_recipient_whose_merged_data_breaks_a_rule_is_named_and_nothing_is_queued(world: World) -> None:
    audience = (
        Recipient("o-0"),
        Recipient("o-1", {"thing1": "Your parcel"}),
        Recipient("o-2", {"thing1": "A parcel name far longer than twenty"}),
    )

    with pytest.raises(errors.InvalidData) as refused:
        world.service.create(spec(audience))

    body = refused.value.body()
    assert refused.value.status == 422
    assert (body["error"], body["recipient"], body["openid"]) == ("invalid_data", 2, "o-2")
    assert [v["keyword"] for v in body["violations"]] == ["thing1"]
    assert body["violations"][0]["problem"] == "too_long"
    assert "recipient 2 (o-2)" in body["message"]
    assert world.expand_messages() == []
    assert world.events.seen == []


def test_shared_data_is_checked_for_a_granted_audience(world: World) -> None:
    with pytest.raises(errors.InvalidData) as refused:
        world.service.create(spec("granted", data={"thing1": "Order shipped"}))

    violations = refused.value.body()["violations"]
    assert [(v["keyword"], v["problem"]) for v in violations] == [("time2", "missing")]
    assert world.expand_messages() == []


def test_bad_shared_data_is_refused_at_the_first_recipient_without_data_of_its_own(world: World) -> None:
    audience = (Recipient("o-0", {"thing1": "Mine"}), Recipient("o-1"), Recipient("o-2"))

    with pytest.raises(errors.InvalidData) as refused:
        world.service.create(spec(audience, data={"thing1": "x" * 21, "time2": "10:30"}))

    assert (refused.value.details["recipient"], refused.value.details["openid"]) == (1, "o-1")


def test_recipient_data_is_merged_over_shared_data_before_it_is_checked(world: World) -> None:
    audience = (Recipient("o-0", {"thing1": "Fixed"}), Recipient("o-1", {"thing1": "Also fixed"}))

    created = world.service.create(spec(audience, data={"thing1": "x" * 21, "time2": "10:30"}))

    assert created.state == "expanding"
    assert world.store.part(created.campaign_id, "part", 0) == [
        {"openid": "o-0", "data": {"thing1": "Fixed"}},
        {"openid": "o-1", "data": {"thing1": "Also fixed"}},
    ]


def test_an_unknown_template_is_refused(world: World) -> None:
    with pytest.raises(errors.UnknownTemplate):
        world.service.create(CampaignSpec(template_id="tmpl-nobody-knows", data=DATA, audience="granted"))

    assert world.expand_messages() == []


def test_an_empty_audience_is_refused_naming_the_field(world: World) -> None:
    with pytest.raises(errors.InvalidCampaign) as refused:
        world.service.create(spec(()))

    assert refused.value.status == 422
    assert refused.value.body()["field"] == "audience"


def test_more_users_than_the_maximum_are_refused_but_duplicates_count_once(world: World) -> None:
    too_many = listed(*(f"o-{i}" for i in range(1201)))
    at_most = listed(*(f"o-{i}" for i in range(1200)), "o-0", "o-1")

    with pytest.raises(errors.InvalidCampaign) as refused:
        world.service.create(spec(too_many))
    accepted = world.service.create(spec(at_most))

    assert refused.value.details["field"] == "audience"
    assert "1201" in refused.value.message
    assert accepted.state == "expanding"


@pytest.mark.parametrize(
    ("send_at", "message"),
    [(T0 - 61, "in the past"), (T0 + 30 * 86400 + 1, "more than 30 days ahead")],
)
def test_a_send_at_in_the_past_or_too_far_ahead_is_refused(world: World, send_at: int, message: str) -> None:
    with pytest.raises(errors.InvalidCampaign) as refused:
        world.service.create(spec(send_at=send_at))

    assert refused.value.details == {"field": "send_at"}
    assert message in refused.value.message
    assert world.expand_messages() == []


def test_a_send_at_a_moment_ago_starts_now(world: World) -> None:
    created = world.service.create(spec(send_at=T0 - 30))

    assert created.state == "expanding"
    assert world.expand_messages() == [{"campaign_id": created.campaign_id, "page": 0}]


def test_a_send_at_thirty_days_ahead_is_accepted(world: World) -> None:
    created = world.service.create(spec(send_at=T0 + 30 * 86400))

    assert created.state == "scheduled"


# the explicit audience is stored in parts, once per openid


def test_duplicate_openids_are_queued_once_keeping_the_first_data(world: World) -> None:
    audience = (
        Recipient("o-a", {"thing1": "first"}),
        Recipient("o-b"),
        Recipient("o-a", {"thing1": "second"}),
    )

    created = world.service.create(spec(audience))

    assert created.parts == 1
    assert world.store.part(created.campaign_id, "part", 0) == [
        {"openid": "o-a", "data": {"thing1": "first"}},
        {"openid": "o-b"},
    ]


def test_an_explicit_audience_is_stored_in_parts_of_500(world: World) -> None:
    created = world.service.create(spec(listed(*(f"o-{i:04}" for i in range(1100)))))

    sizes = [len(world.store.part(created.campaign_id, "part", n)) for n in range(4)]
    assert created.parts == 3
    assert sizes == [500, 500, 100, 0]
    assert world.store.part(created.campaign_id, "part", 2)[-1] == {"openid": "o-1099"}
    stored = world.store.get(created.campaign_id)
    assert stored is not None and (stored.audience, stored.parts) == ("list", 3)


# starting: now, at send_at, or when the window opens


def test_a_campaign_without_send_at_starts_expanding_now(world: World) -> None:
    created = world.service.create(spec(page="pages/order", lang="en_US", miniprogram_state="trial"))

    stored = world.store.get(created.campaign_id)
    assert stored is not None and stored.to_json() == created.to_json()
    assert (stored.page, stored.lang, stored.miniprogram_state) == ("pages/order", "en_US", "trial")
    assert (created.state, created.audience, created.send_at) == ("expanding", "granted", None)
    assert world.expand_messages() == [{"campaign_id": created.campaign_id, "page": 0}]
    assert world.schedule(created.campaign_id) is None
    assert world.events.states(created.campaign_id) == [(None, "expanding")]
    assert world.store.active() == [created.campaign_id]


def test_a_campaign_with_send_at_is_scheduled_to_start_then(world: World) -> None:
    created = world.service.create(spec(send_at=T0 + 2 * HOUR))

    schedule = world.schedule(created.campaign_id)
    assert (created.state, created.send_at) == ("scheduled", T0 + 2 * HOUR)
    assert world.expand_messages() == []
    assert schedule is not None
    assert schedule["ScheduleExpression"] == "at(2027-01-15T10:00:00)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert json.loads(schedule["Target"]["Input"]) == {"campaign_id": created.campaign_id, "page": 0}
    assert world.events.states(created.campaign_id) == [(None, "scheduled")]
    assert world.store.active() == []


def test_a_campaign_whose_window_is_closed_is_scheduled_for_its_opening(world: World) -> None:
    created = world.service.create(spec(window=MORNINGS))

    schedule = world.schedule(created.campaign_id)
    assert (created.state, created.send_at) == ("scheduled", TOMORROW_9)
    assert created.window == {"start": "09:00", "end": "12:00", "tz": "Asia/Shanghai"}
    assert schedule is not None and schedule["ScheduleExpression"] == "at(2027-01-16T01:00:00)"
    assert world.expand_messages() == []


def test_a_campaign_whose_window_is_open_starts_now(world: World) -> None:
    created = world.service.create(spec(window=OPEN_NOW))

    assert created.state == "expanding"
    assert world.expand_messages() == [{"campaign_id": created.campaign_id, "page": 0}]


def test_a_send_at_outside_the_window_moves_to_the_window_opening(world: World) -> None:
    created = world.service.create(spec(send_at=T0 + 6 * HOUR, window=OPEN_NOW))  # 22:00 in Beijing

    schedule = world.schedule(created.campaign_id)
    assert (created.state, created.send_at) == ("scheduled", TOMORROW_9)
    assert schedule is not None and schedule["ScheduleExpression"] == "at(2027-01-16T01:00:00)"


# Idempotency-Key


def test_the_same_idempotency_key_returns_the_same_campaign(world: World) -> None:
    first = world.service.create(spec(listed("o-1", "o-2")), key="promo-1")
    world.clock.now += 5
    again = world.service.create(spec(listed("o-1", "o-2")), key="promo-1")

    assert again.campaign_id == first.campaign_id
    assert world.expand_messages() == [{"campaign_id": first.campaign_id, "page": 0}]
    assert len(world.events.seen) == 1


def test_the_same_idempotency_key_with_another_campaign_is_refused(world: World) -> None:
    world.service.create(spec(listed("o-1")), key="promo-1")

    with pytest.raises(errors.IdempotencyKeyReused):
        world.service.create(spec(listed("o-1", "o-2")), key="promo-1")

    assert len(world.expand_messages()) == 1


def test_without_a_key_every_request_is_a_new_campaign(world: World) -> None:
    first = world.service.create(spec(listed("o-1")))
    second = world.service.create(spec(listed("o-1")))

    assert first.campaign_id != second.campaign_id


def test_a_retry_with_the_key_after_send_at_passed_returns_the_campaign(world: World) -> None:
    first = world.service.create(spec(listed("o-1"), send_at=T0 + 30), key="promo-1")
    world.clock.now += 120

    again = world.service.create(spec(listed("o-1"), send_at=T0 + 30), key="promo-1")

    assert again.campaign_id == first.campaign_id


# get, cancel, resume


def test_get_of_an_unknown_campaign_is_not_found(world: World) -> None:
    with pytest.raises(errors.NotFound) as missing:
        world.service.get("0123abcd")

    assert missing.value.status == 404


def test_cancel_stops_a_campaign_once(world: World) -> None:
    created = world.service.create(spec(listed("o-1")))

    cancelled = world.service.cancel(created.campaign_id)
    again = world.service.cancel(created.campaign_id)

    assert (cancelled.state, again.state) == ("cancelled", "cancelled")
    assert world.service.get(created.campaign_id).state == "cancelled"
    assert world.events.states(created.campaign_id) == [(None, "expanding"), ("expanding", "cancelled")]
    assert world.store.active() == []


def test_cancelling_a_scheduled_campaign_deletes_its_schedule(world: World) -> None:
    created = world.service.create(spec(send_at=T0 + HOUR))
    assert world.schedule(created.campaign_id) is not None

    cancelled = world.service.cancel(created.campaign_id)

    assert cancelled.state == "cancelled"
    assert world.schedule(created.campaign_id) is None


def test_a_finished_campaign_stays_done_when_cancelled(world: World) -> None:
    created = world.service.create(spec(listed("o-1")))
    world.store.transition(created.campaign_id, "done", allowed=("expanding",))

    answer = world.service.cancel(created.campaign_id)

    assert answer.state == "done"
    assert world.events.states(created.campaign_id) == [(None, "expanding")]


def test_cancel_of_an_unknown_campaign_is_not_found(world: World) -> None:
    with pytest.raises(errors.NotFound):
        world.service.cancel("0123abcd")


def test_resume_puts_a_paused_campaign_back_on_the_expand_queue(world: World) -> None:
    created = world.service.create(spec(listed("o-1")))
    world.expand_messages()
    world.store.transition(created.campaign_id, "paused", allowed=("expanding",), reason="quota")

    answer = world.service.resume(created.campaign_id)

    assert answer.campaign_id == created.campaign_id
    assert world.expand_messages() == [{"campaign_id": created.campaign_id, "resume": True}]


@pytest.mark.parametrize("state", ["expanding", "done", "cancelled"])
def test_only_a_paused_campaign_can_be_resumed(world: World, state: str) -> None:
    created = world.service.create(spec(listed("o-1")))
    world.expand_messages()
    if state != "expanding":
        world.store.transition(created.campaign_id, state, allowed=("expanding",))

    with pytest.raises(errors.CampaignNotPaused) as refused:
        world.service.resume(created.campaign_id)

    assert refused.value.status == 409
    assert refused.value.body()["error"] == "campaign_not_paused"
    assert refused.value.details == {"state": state}
    assert world.expand_messages() == []


def test_resume_of_an_unknown_campaign_is_not_found(world: World) -> None:
    with pytest.raises(errors.NotFound):
        world.service.resume("0123abcd")
