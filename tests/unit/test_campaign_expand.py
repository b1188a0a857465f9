"""Expander: the audience into SendQueue a page at a time, resumable, nothing lost and nothing counted twice.

The campaigns table, the grant ledger and both queues are moto's (in-process).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from campaign_kit import T0, TEMPLATE, Events, campaign, drain

from wxsub.services.expand import Expander, NotYet
from wxsub.stores.campaigns import CampaignStore
from wxsub.stores.grants import GrantLedger
from wxsub.stores.queues import Queue

REGION = "ap-east-1"
PARTS = [
    [{"openid": "o-a"}, {"openid": "o-b", "data": {"thing1": "For B"}}],
    [{"openid": "o-c"}, {"openid": "o-d"}],
    [{"openid": "o-e"}],
]
EVERYONE = ["o-a", "o-b", "o-c", "o-d", "o-e"]


@dataclass
class World:
    store: CampaignStore
    ledger: GrantLedger
    events: Events
    sqs: Any
    send_url: str
    expand_url: str

    def expander(self, pages_per_run: int = 5, page_size: int = 2, store: Any = None) -> Expander:
        return Expander(
            store or self.store,
            self.ledger,
            Queue(self.sqs, self.send_url),
            Queue(self.sqs, self.expand_url),
            self.events,
            pages_per_run=pages_per_run,
            page_size=page_size,
        )

    def queued(self) -> list[dict[str, Any]]:
        return drain(self.sqs, self.send_url)

    def steps(self) -> list[dict[str, Any]]:
        return drain(self.sqs, self.expand_url)

    def grant(self, openid: str, template_id: str = TEMPLATE) -> None:
        self.ledger.record_accept(openid, template_id, source="push", at=T0, long_term=False)


@pytest.fixture
def world(campaigns_table: Any, grants_table: Any) -> World:
    sqs = boto3.client("sqs", region_name=REGION)
    send_url = sqs.create_queue(QueueName="send")["QueueUrl"]
    expand_url = sqs.create_queue(QueueName="expand")["QueueUrl"]
    return World(
        CampaignStore(campaigns_table), GrantLedger(grants_table), Events(), sqs, send_url, expand_url
    )


def listed(world: World, campaign_id: str = "c1", state: str = "expanding") -> None:
    assert world.store.create(campaign(campaign_id, state, audience="list", parts=len(PARTS)), PARTS)


def openids(bodies: list[dict[str, Any]]) -> list[str]:
    return sorted(str(body["openid"]) for body in bodies)


class CrashesRecordingPage:
    """The campaign store, with the function stopping (a timeout, a crash) as it records ``page``."""

    def __init__(self, store: CampaignStore, page: int) -> None:
        self._store = store
        self._page = page
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def page_done(self, campaign_id: str, page: int, cursor: str | None, queued: int, *, last: bool) -> bool:
        if page == self._page and not self.crashed:
            self.crashed = True
            raise TimeoutError("Task timed out")
        return self._store.page_done(campaign_id, page, cursor, queued, last=last)


# a granted audience: everyone holding a grant for the template, from the ledger


def test_a_granted_audience_within_one_page_is_queued_and_the_campaign_runs(world: World) -> None:
    for openid in ["o-1", "o-2", "o-3"]:
        world.grant(openid)
    world.grant("o-spent")
    assert world.ledger.take("o-spent", TEMPLATE, long_term=False) is not None
    world.grant("o-other", "tmpl-other")
    world.store.create(campaign("c1"), [])

    world.expander(page_size=10).handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    assert world.queued() == [{"campaign_id": "c1", "openid": o} for o in ["o-1", "o-2", "o-3"]]
    assert got is not None and (got.state, got.expanded, got.counts["queued"]) == ("running", True, 3)
    assert world.events.states("c1") == [("expanding", "running")]
    assert world.steps() == []


def test_a_granted_audience_is_paged_through_the_ledger(world: World) -> None:
    for openid in EVERYONE:
        world.grant(openid)
    world.grant("o-spent")
    assert world.ledger.take("o-spent", TEMPLATE, long_term=False) is not None
    world.store.create(campaign("c1"), [])

    world.expander(pages_per_run=10, page_size=2).handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    assert openids(world.queued()) == EVERYONE
    assert got is not None and (got.state, got.counts["queued"]) == ("running", 5)


def test_a_granted_expansion_hands_the_ledger_cursor_to_its_next_step(world: World) -> None:
    for openid in EVERYONE:
        world.grant(openid)
    world.store.create(campaign("c1"), [])
    expander = world.expander(pages_per_run=2, page_size=2)

    expander.handle({"campaign_id": "c1", "page": 0})
    first, steps = openids(world.queued()), world.steps()
    expander.handle(steps[0])

    assert first == ["o-a", "o-b", "o-c", "o-d"]
    assert steps == [{"campaign_id": "c1", "page": 2, "cursor": "o-d"}]
    assert openids(world.queued()) == ["o-e"]


def test_a_granted_audience_with_nobody_is_done_at_once(world: World) -> None:
    world.grant("o-other", "tmpl-other")
    world.store.create(campaign("c1"), [])

    world.expander().handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    assert world.queued() == []
    assert got is not None and (got.state, got.expanded, got.counts["queued"]) == ("done", True, 0)
    assert world.events.states("c1") == [("expanding", "running"), ("running", "done")]


# an explicit audience: the campaign's stored parts


def test_a_listed_audience_is_queued_from_its_parts_with_each_recipients_data(world: World) -> None:
    listed(world)

    world.expander(pages_per_run=10).handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    queued = sorted(world.queued(), key=lambda body: body["openid"])
    assert queued[:2] == [
        {"campaign_id": "c1", "openid": "o-a"},
        {"campaign_id": "c1", "openid": "o-b", "data": {"thing1": "For B"}},
    ]
    assert openids(queued) == EVERYONE
    assert got is not None and (got.state, got.pages_done, got.counts["queued"]) == ("running", 3, 5)


def test_a_run_stops_after_its_pages_and_queues_the_next_step(world: World) -> None:
    listed(world)
    expander = world.expander(pages_per_run=2)

    expander.handle({"campaign_id": "c1", "page": 0})
    first, steps = openids(world.queued()), world.steps()
    middle = world.store.get("c1")
    expander.handle(steps[0])

    got = world.store.get("c1")
    assert first == ["o-a", "o-b", "o-c", "o-d"]
    assert steps == [{"campaign_id": "c1", "page": 2, "cursor": None}]
    assert middle is not None and (middle.state, middle.pages_done, middle.counts["queued"]) == (
        "expanding",
        2,
        4,
    )
    assert openids(world.queued()) == ["o-e"]
    assert got is not None and (got.state, got.counts["queued"]) == ("running", 5)


def test_the_next_step_is_queued_before_the_page_is_recorded_so_a_crash_loses_nobody(world: World) -> None:
    listed(world)
    crashing = CrashesRecordingPage(world.store, page=1)

    with pytest.raises(TimeoutError):
        world.expander(pages_per_run=2, store=crashing).handle({"campaign_id": "c1", "page": 0})
    steps_after_crash = world.steps()
    at_crash = world.store.get("c1")
    # SQS delivers the crashed step's message again; then the step it had queued
    world.expander(pages_per_run=2).handle({"campaign_id": "c1", "page": 0})
    world.expander(pages_per_run=2).handle(steps_after_crash[0])

    got = world.store.get("c1")
    queued = Counter(body["openid"] for body in world.queued())
    assert steps_after_crash == [{"campaign_id": "c1", "page": 2, "cursor": None}]
    assert at_crash is not None and (at_crash.pages_done, at_crash.counts["queued"]) == (1, 2)
    assert sorted(queued) == EVERYONE
    assert queued == {
        "o-a": 1,
        "o-b": 1,
        "o-c": 2,
        "o-d": 2,
        "o-e": 1,
    }  # page 1 again; sent once by message_id
    assert got is not None and (got.state, got.counts["queued"]) == ("running", 5)


def test_a_step_ahead_of_the_recorded_pages_is_not_yet_run(world: World) -> None:
    listed(world)

    with pytest.raises(NotYet):
        world.expander().handle({"campaign_id": "c1", "page": 2})

    got = world.store.get("c1")
    assert world.queued() == []
    assert got is not None and got.pages_done == 0


def test_a_stale_step_takes_over_from_the_recorded_pages(world: World) -> None:
    listed(world)
    expander = world.expander(pages_per_run=1)

    expander.handle({"campaign_id": "c1", "page": 0})
    expander.handle({"campaign_id": "c1", "page": 0})  # delivered again after its page was recorded
    expander.handle({"campaign_id": "c1", "page": 1})  # the first run's step, now stale too
    for step in world.steps():
        expander.handle(step)

    got = world.store.get("c1")
    assert sorted(body["openid"] for body in world.queued()) == EVERYONE
    assert got is not None and (got.state, got.counts["queued"]) == ("running", 5)


def test_a_step_for_an_expanded_campaign_does_nothing(world: World) -> None:
    listed(world)
    world.expander(pages_per_run=10).handle({"campaign_id": "c1", "page": 0})
    world.queued()

    world.expander().handle({"campaign_id": "c1", "page": 1})

    got = world.store.get("c1")
    assert world.queued() == []
    assert got is not None and got.counts["queued"] == 5


def test_a_cancelled_campaign_expands_nothing(world: World) -> None:
    listed(world, state="cancelled")

    world.expander().handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    assert world.queued() == [] and world.steps() == []
    assert got is not None and (got.state, got.pages_done, got.counts["queued"]) == ("cancelled", 0, 0)
    assert world.events.seen == []


def test_a_step_for_an_unknown_campaign_is_dropped(world: World) -> None:
    world.expander().handle({"campaign_id": "nope", "page": 0})

    assert world.queued() == [] and world.steps() == []


def test_a_scheduled_campaign_starts_expanding_when_its_step_arrives(world: World) -> None:
    listed(world, state="scheduled")

    world.expander(pages_per_run=10).handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    assert openids(world.queued()) == EVERYONE
    assert got is not None and got.state == "running"
    assert world.events.states("c1")[0] == ("scheduled", "expanding")


def test_the_events_of_a_scheduled_campaign_follow_its_states(world: World) -> None:
    listed(world, state="scheduled")

    world.expander(pages_per_run=10).handle({"campaign_id": "c1", "page": 0})

    assert world.events.states("c1") == [("scheduled", "expanding"), ("expanding", "running")]


def test_the_last_page_finds_the_campaign_done_when_workers_finished_first(world: World) -> None:
    assert world.store.create(campaign("c1", audience="list", parts=1), [PARTS[0]])
    world.store.count("c1", {"sent": 1, "skipped": 1}, {})  # workers were quicker than the recording

    world.expander().handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    assert got is not None and got.state == "done"
    assert world.events.states("c1") == [("expanding", "running"), ("running", "done")]


def test_the_last_page_leaves_a_campaign_with_held_recipients_running(world: World) -> None:
    assert world.store.create(campaign("c1", audience="list", parts=1), [PARTS[0]])
    world.store.count("c1", {"sent": 1}, {})
    world.store.hold("c1", [{"openid": "o-b"}])

    world.expander().handle({"campaign_id": "c1", "page": 0})

    got = world.store.get("c1")
    assert got is not None and got.state == "running"


# resume


def test_resume_queues_the_held_recipients_again_and_runs(world: World) -> None:
    listed(world)
    world.expander(pages_per_run=10).handle({"campaign_id": "c1", "page": 0})
    world.queued()
    world.store.transition("c1", "paused", allowed=("running",), reason="quota")
    world.store.hold("c1", [{"openid": "o-a"}, {"openid": "o-b", "data": {"thing1": "For B"}}])
    world.store.hold("c1", [{"openid": "o-c"}])

    world.expander().handle({"campaign_id": "c1", "resume": True})

    got = world.store.get("c1")
    assert sorted(world.queued(), key=lambda body: body["openid"]) == [
        {"campaign_id": "c1", "openid": "o-a"},
        {"campaign_id": "c1", "openid": "o-b", "data": {"thing1": "For B"}},
        {"campaign_id": "c1", "openid": "o-c"},
    ]
    assert got is not None and (got.state, got.pause_reason, got.counts["held"]) == ("running", None, 0)
    assert [world.store.part("c1", "held", n) for n in range(2)] == [[], []]
    assert world.steps() == []
    assert world.events.states("c1")[-1] == ("paused", "running")


def test_resume_of_a_campaign_paused_while_expanding_goes_on_from_its_recorded_page(world: World) -> None:
    listed(world)
    world.expander(pages_per_run=1).handle({"campaign_id": "c1", "page": 0})
    world.steps()
    world.store.transition("c1", "paused", allowed=("expanding",), reason="window")

    world.expander().handle({"campaign_id": "c1", "resume": True})

    got = world.store.get("c1")
    assert got is not None and got.state == "expanding"
    assert world.steps() == [{"campaign_id": "c1", "page": 1, "cursor": None}]


def test_resume_of_a_campaign_that_is_not_paused_does_nothing(world: World) -> None:
    listed(world)
    held = world.store.hold("c1", [{"openid": "o-a"}])

    world.expander().handle({"campaign_id": "c1", "resume": True})

    got = world.store.get("c1")
    assert not held, "only a paused campaign holds recipients"
    assert world.queued() == [] and world.steps() == []
    assert got is not None and (got.state, got.counts["held"]) == ("expanding", 0)


def test_resume_of_a_campaign_with_nothing_left_to_send_finishes_it(world: World) -> None:
    assert world.store.create(campaign("c1", audience="list", parts=1), [PARTS[0]])
    world.expander().handle({"campaign_id": "c1", "page": 0})
    world.queued()
    world.store.transition("c1", "paused", allowed=("running",), reason="quota")  # another campaign's 45009
    world.store.count("c1", {"sent": 2}, {})  # this campaign's last batch, counted while it was paused

    world.expander().handle({"campaign_id": "c1", "resume": True})

    got = world.store.get("c1")
    assert got is not None and got.state == "done"
