"""CountDeliveries' tally: which status changes on the DeliveriesTable stream are campaign progress."""

from __future__ import annotations

from typing import Any

import pytest
from campaign_kit import Events, running, stream_record

from wxsub.services.tally import DeliveryTally, batch_time, batch_token, tally, transition
from wxsub.stores.campaigns import CampaignStore


@pytest.mark.parametrize(
    ("old", "new", "error", "counted"),
    [
        ("sending", "sent", None, ("count", "sent")),
        ("sending", "unknown", None, ("count", "unknown")),
        ("sending", "failed", "invalid_openid", ("failed", "invalid_openid")),
        ("sending", "failed", "no_grant", ("count", "skipped")),  # WeChat's 43101, as the ledger's own
        ("sending", "failed", None, ("failed", "rejected")),
        ("sent", "delivered", None, ("count", "delivered")),
        ("unknown", "delivered", None, ("count", "delivered")),
        ("sent", "failed", None, None),  # a failed sent event: the send stays counted sent
        ("unknown", "failed", None, None),  # the sweep's give-up: counted by the resend rule
        ("sending", "unknown", None, ("count", "unknown")),  # also the sweep's, for a stopped worker
        ("sent", "sent", None, None),
    ],
)
def test_each_status_change_counts_as_the_campaign_reports_it(
    old: str, new: str, error: str | None, counted: tuple[str, str] | None
) -> None:
    record = stream_record("c1", old, new, error=error)
    images = {
        side: {
            k: next(iter(v.values())) for k, v in record["dynamodb"][f"{side}Image"].items() if k != "answer"
        }
        for side in ("Old", "New")
    }
    if error:
        images["New"]["answer"] = {"status": 422, "body": {"error": error}}
    assert transition(images["Old"], images["New"]) == counted


def test_a_batch_is_counted_per_campaign_and_only_for_campaign_changes() -> None:
    records = [
        stream_record("c1", "sending", "sent"),
        stream_record("c1", "sending", "sent"),
        stream_record("c2", "sending", "failed", error="invalid_openid"),
        stream_record("c1", "sent", "delivered"),
        {**stream_record("c1", "sending", "sent"), "eventName": "INSERT"},
        {"eventName": "REMOVE", "dynamodb": {"OldImage": {"campaign_id": {"S": "c1"}}}},
        {"eventName": "MODIFY", "dynamodb": {"NewImage": {"status": {"S": "sent"}}}},  # a single send
    ]

    counted = tally(records)

    assert {cid: (dict(t.counts), dict(t.failed)) for cid, t in counted.items()} == {
        "c1": ({"sent": 2, "delivered": 1}, {}),
        "c2": ({}, {"invalid_openid": 1}),
    }


def test_a_batch_has_one_token_and_time_however_often_it_is_handed_over() -> None:
    first = [stream_record("c1", "sending", "sent"), stream_record("c1", "sent", "delivered")]
    for record, at in zip(first, (1_796_000_000.2, 1_796_000_003.9), strict=True):
        record["dynamodb"]["ApproximateCreationDateTime"] = at
    again = [dict(r) for r in first]
    other = [stream_record("c1", "sending", "sent")]

    assert batch_token(again) == batch_token(first) != batch_token(other)
    assert len(batch_token(first)) == 32
    assert batch_time(again) == batch_time(first) == 1_796_000_003
    assert batch_time(other) == 0


def test_applying_a_batch_adds_its_counts_and_finishes_a_complete_campaign(campaigns_table: Any) -> None:
    store = CampaignStore(campaigns_table)
    events = Events()
    running(store, "c1", queued=2)
    running(store, "c2", queued=5)

    DeliveryTally(store, events).apply(
        [
            stream_record("c1", "sending", "sent"),
            stream_record("c1", "sending", "failed", error="invalid_openid"),
            stream_record("c2", "sending", "sent"),
            stream_record("gone", "sending", "sent"),  # a campaign deleted by hand: left out
        ]
    )

    c1, c2 = store.get("c1"), store.get("c2")
    assert c1 is not None and c2 is not None
    assert (c1.state, c1.counts["sent"], c1.failed) == ("done", 1, {"invalid_openid": 1})
    assert (c2.state, c2.counts["sent"]) == ("running", 1)
    assert [(e.campaign_id, e.state) for e in events.seen] == [("c1", "done")]
    assert store.get("gone") is None
