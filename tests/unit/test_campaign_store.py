"""CampaignStore on moto: the campaign item, its parts and held recipients, keys, states and counters."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from campaign_kit import DATA, T0, TEMPLATE, Clock, campaign

from wxsub import errors
from wxsub.stores.campaigns import Campaign, CampaignStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(campaigns_table: Any, clock: Clock) -> CampaignStore:
    return CampaignStore(campaigns_table, clock=clock)


def test_a_created_campaign_reads_back_with_every_field_and_zero_counts(store: CampaignStore) -> None:
    created = Campaign(
        campaign_id="c1",
        state="scheduled",
        template_id=TEMPLATE,
        data=DATA,
        audience="list",
        parts=2,
        created_at=T0,
        updated_at=T0,
        page="pages/order?id=1",
        miniprogram_state="trial",
        lang="en_US",
        send_at=T0 + 3600,
        window={"start": "09:00", "end": "21:00", "tz": "Asia/Shanghai"},
    )

    assert store.create(created, [[{"openid": "o-1"}], [{"openid": "o-2", "data": {"thing1": "x"}}]])
    got = store.get("c1")

    assert got is not None
    assert replace(got, counts={}) == created
    assert set(got.counts.values()) == {0} and got.failed == {}
    assert got.to_json()["counts"] == {
        "queued": 0,
        "sent": 0,
        "skipped": 0,
        "unknown": 0,
        "delivered": 0,
        "cancelled": 0,
        "held": 0,
        "failed": 0,
    }
    assert got.to_json()["send_at"] == "2027-01-15T09:00:00Z"
    assert store.part("c1", "part", 0) == [{"openid": "o-1"}]
    assert store.part("c1", "part", 1) == [{"openid": "o-2", "data": {"thing1": "x"}}]


def test_creating_the_same_campaign_twice_keeps_the_first(store: CampaignStore) -> None:
    assert store.create(campaign("c1", data={"thing1": "first", "time2": "10:30"}), [])

    again = store.create(campaign("c1", data={"thing1": "second", "time2": "10:30"}), [])

    got = store.get("c1")
    assert again is False
    assert got is not None and got.data["thing1"] == "first"


def test_an_unknown_campaign_is_none_and_has_no_parts(store: CampaignStore) -> None:
    assert store.get("nope") is None
    assert store.part("nope", "part", 0) == []


def test_an_idempotency_key_binds_once_and_refuses_another_request(store: CampaignStore) -> None:
    first = store.bind_key("promo-1", "fingerprint-a", "c1")
    retry = store.bind_key("promo-1", "fingerprint-a", "c2")

    with pytest.raises(errors.IdempotencyKeyReused) as refused:
        store.bind_key("promo-1", "fingerprint-b", "c3")

    assert (first, retry) == ("c1", "c1")
    assert refused.value.status == 422
    assert store.bind_key("promo-2", "fingerprint-b", "c3") == "c3"


def test_a_transition_happens_only_from_an_allowed_state(store: CampaignStore, clock: Clock) -> None:
    store.create(campaign("c1", "expanding"), [])
    clock.now += 5

    refused = store.transition("c1", "done", allowed=("running",))
    paused = store.transition("c1", "paused", allowed=("expanding", "running"), reason="quota")
    running = store.transition("c1", "running", allowed=("paused",))

    assert refused is None
    assert paused is not None and (paused.state, paused.pause_reason) == ("paused", "quota")
    assert paused.updated_at == T0 + 5
    assert running is not None and (running.state, running.pause_reason) == ("running", None)
    stored = store.get("c1")
    assert stored is not None and stored.state == "running"


def test_a_transition_of_an_unknown_campaign_is_none(store: CampaignStore) -> None:
    assert store.transition("nope", "cancelled", allowed=("running",)) is None
    assert store.get("nope") is None


def test_only_expanding_running_and_paused_campaigns_are_active(store: CampaignStore) -> None:
    for i, state in enumerate(["scheduled", "expanding", "running", "paused", "done", "cancelled"]):
        store.create(campaign(f"c-{state}", state, created_at=T0 + i), [])

    assert sorted(store.active()) == ["c-expanding", "c-paused", "c-running"]


def test_a_campaign_leaves_and_rejoins_the_active_index_with_its_state(store: CampaignStore) -> None:
    store.create(campaign("c1", "scheduled"), [])
    assert store.active() == []

    store.transition("c1", "expanding", allowed=("scheduled",))
    assert store.active() == ["c1"]

    store.transition("c1", "cancelled", allowed=("expanding",))
    assert store.active() == []


def test_the_active_index_is_read_past_its_first_page(store: CampaignStore, campaigns_table: Any) -> None:
    # a query reads at most 1 MB of items per page: large items force several pages
    big = "x" * 350_000
    for i in range(5):
        campaigns_table.put_item(
            Item={
                "pk": f"campaign#c{i}",
                "campaign_id": f"c{i}",
                "active": "1",
                "created_at": T0 + i,
                "pad": big,
            }
        )

    assert sorted(store.active()) == [f"c{i}" for i in range(5)]


def test_a_page_is_recorded_once_and_its_queued_counted_once(store: CampaignStore) -> None:
    store.create(campaign("c1", audience="list", parts=2), [])

    first = store.page_done("c1", 0, None, 500, last=False)
    replayed = store.page_done("c1", 0, None, 500, last=False)
    ahead = store.page_done("c1", 2, None, 7, last=True)
    last = store.page_done("c1", 1, None, 3, last=True)

    got = store.get("c1")
    assert (first, replayed, ahead, last) == (True, False, False, True)
    assert got is not None
    assert got.counts["queued"] == 503
    assert (got.pages_done, got.expanded) == (2, True)


def test_a_page_with_a_cursor_records_where_the_next_page_starts(store: CampaignStore) -> None:
    store.create(campaign("c1"), [])

    recorded = store.page_done("c1", 0, "o-500", 500, last=False)

    got = store.get("c1")
    assert recorded
    assert got is not None and (got.pages_done, got.cursor, got.counts["queued"]) == (1, "o-500", 500)


def test_count_adds_counters_and_failure_reasons(store: CampaignStore, clock: Clock) -> None:
    store.create(campaign("c1"), [])

    store.count("c1", {"sent": 3, "skipped": 1, "unknown": 0}, {"invalid_openid": 1})
    clock.now += 1
    after = store.count("c1", {"sent": 2, "cancelled": 1}, {"invalid_openid": 1, "invalid_data": 2})

    assert after.counts["sent"] == 5
    assert after.counts["skipped"] == 1
    assert after.counts["cancelled"] == 1
    assert after.failed == {"invalid_openid": 2, "invalid_data": 2}
    assert after.processed() == 5 + 1 + 1 + 4
    assert after.updated_at == T0 + 1
    assert after.to_json()["counts"]["failed"] == 4
    assert store.get("c1") == after


def test_count_with_nothing_to_add_only_touches_the_time(store: CampaignStore, clock: Clock) -> None:
    store.create(campaign("c1"), [])
    clock.now += 9

    after = store.count("c1", {"sent": 0}, {})

    assert after.counts["sent"] == 0 and after.failed == {}
    assert after.updated_at == T0 + 9


def test_held_recipients_are_kept_in_numbered_parts(store: CampaignStore) -> None:
    store.create(campaign("c1", "paused"), [])

    store.hold("c1", [{"openid": "o-1"}, {"openid": "o-2", "data": {"thing1": "mine"}}])
    store.hold("c1", [{"openid": "o-3"}])

    got = store.get("c1")
    assert got is not None and (got.held_parts, got.counts["held"]) == (2, 3)
    assert store.part("c1", "held", 0) == [{"openid": "o-1"}, {"openid": "o-2", "data": {"thing1": "mine"}}]
    assert store.part("c1", "held", 1) == [{"openid": "o-3"}]

    store.drop_part("c1", "held", 0)

    assert store.part("c1", "held", 0) == []
    assert store.part("c1", "held", 1) == [{"openid": "o-3"}]
