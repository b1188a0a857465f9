"""Deliveries: what each send became, settled by WeChat's sent events in whatever order they come."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from wxsub.stores.deliveries import Deliveries, Delivery

U, T = "o-user", "tmpl-1"
T0 = 1_700_000_000
MIN = 60
DAY = 86400


@dataclass(frozen=True)
class Request:
    openid: str = U
    template_id: str = T
    data: dict[str, str] = field(default_factory=lambda: {"thing1": "secret order", "time2": "2024-01-01"})
    page: str | None = "pages/order?id=1"
    miniprogram_state: str | None = "formal"
    lang: str | None = "zh_CN"


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deliveries(deliveries_table: Any, clock: Clock) -> Deliveries:
    return Deliveries(deliveries_table, clock=clock)


def event(deliveries: Deliveries, msgid: str, at: int, code: int = 0) -> Any:
    return deliveries.apply_sent_event(
        openid=U,
        template_id=T,
        msgid=msgid,
        error_code=code,
        error_status="success" if code == 0 else "system error",
        at=at,
    )


def fetch(deliveries: Deliveries, message_id: str) -> Delivery:
    delivery = deliveries.get(message_id)
    assert delivery is not None, message_id
    return delivery


def raw(table: Any, key: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"message_id": key}).get("Item")
    return None if item is None else dict(item)


# Recording.


def test_record_keeps_a_summary_without_the_data_values(
    deliveries: Deliveries, deliveries_table: Any
) -> None:
    deliveries.record("m1", Request(), "sent", msgid="1864323726461255680")
    item = raw(deliveries_table, "m1")
    assert item is not None
    assert item["data_keys"] == ["thing1", "time2"]
    assert "secret order" not in repr(item)
    assert (item["page"], item["state"], item["lang"]) == ("pages/order?id=1", "formal", "zh_CN")
    assert item["recipient"] == f"{U}#{T}"
    assert item["expires_at"] == T0 + 30 * DAY


def test_get_answers_the_recorded_delivery(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "sent", msgid="1864323726461255680")
    assert deliveries.get("m1") == Delivery(
        message_id="m1",
        status="sent",
        openid=U,
        template_id=T,
        msgid="1864323726461255680",
        errcode=None,
        error_status=None,
        created_at=T0,
        updated_at=T0,
    )


def test_a_refused_send_keeps_its_errcode(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(page=None, lang=None), "failed", errcode=43101)
    delivery = deliveries.get("m1")
    assert delivery is not None
    assert (delivery.status, delivery.errcode, delivery.msgid) == ("failed", 43101, None)


def test_get_of_an_unknown_id_is_none(deliveries: Deliveries) -> None:
    assert deliveries.get("nope") is None


def test_get_never_answers_with_a_bookkeeping_item(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "sent", msgid="42")
    assert deliveries.get("msgid#42") is None


def test_record_refuses_details_it_does_not_know(deliveries: Deliveries) -> None:
    with pytest.raises(TypeError, match="colour"):
        deliveries.record("m1", Request(), "sent", msgid="1", colour="red")


def test_to_json_keeps_the_msgid_a_string(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "sent", msgid="1864323726461255680")
    delivery = deliveries.get("m1")
    assert delivery is not None
    assert delivery.to_json() == {
        "message_id": "m1",
        "status": "sent",
        "openid": U,
        "template_id": T,
        "msgid": "1864323726461255680",
        "errcode": None,
        "error_status": None,
        "created_at": T0,
        "updated_at": T0,
    }


# Sent events by msgid.


def test_a_sent_event_delivers_the_message_with_its_msgid(deliveries: Deliveries, clock: Clock) -> None:
    deliveries.record("m1", Request(), "sent", msgid="100")
    clock.now += 3
    settled = event(deliveries, "100", at=T0 + 2)
    assert settled is not None
    seen = (settled.message_id, settled.status, settled.errcode, settled.updated_at)
    assert seen == ("m1", "delivered", 0, T0 + 3)
    assert deliveries.get("m1") == settled


def test_a_failed_sent_event_keeps_the_code(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "sent", msgid="100")
    settled = event(deliveries, "100", at=T0 + 2, code=10001)
    assert settled is not None
    assert (settled.status, settled.errcode, settled.error_status) == ("failed", 10001, "system error")


def test_applying_the_same_event_again_changes_nothing(deliveries: Deliveries, clock: Clock) -> None:
    deliveries.record("m1", Request(), "sent", msgid="100")
    first = event(deliveries, "100", at=T0 + 2)
    clock.now += 60
    assert event(deliveries, "100", at=T0 + 2) == first


def test_a_settled_delivery_is_not_changed_by_a_contradicting_event(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "sent", msgid="100")
    event(deliveries, "100", at=T0 + 2)
    again = event(deliveries, "100", at=T0 + 3, code=10001)
    assert again is not None
    assert again.status == "delivered"


def test_an_event_for_a_sent_delivery_does_not_settle_an_unknown_one(deliveries: Deliveries) -> None:
    deliveries.record("m-unknown", Request(), "unknown")
    deliveries.record("m-sent", Request(), "sent", msgid="100")
    event(deliveries, "100", at=T0 + 1)
    assert [fetch(deliveries, m).status for m in ("m-unknown", "m-sent")] == ["unknown", "delivered"]


# Events that arrive first.


def test_an_early_event_is_kept_and_applied_when_its_msgid_is_recorded(
    deliveries: Deliveries, deliveries_table: Any
) -> None:
    assert event(deliveries, "100", at=T0) is None
    parked = raw(deliveries_table, "msgid#100")
    assert parked is not None
    assert parked["status"] == "pending"
    assert parked["expires_at"] == T0 + DAY

    deliveries.record("m1", Request(), "sent", msgid="100")

    delivery = deliveries.get("m1")
    assert delivery is not None
    assert (delivery.status, delivery.msgid) == ("delivered", "100")
    assert (raw(deliveries_table, "msgid#100") or {}).get("delivery") == "m1"


def test_an_early_failed_event_is_applied_with_its_code(deliveries: Deliveries) -> None:
    event(deliveries, "100", at=T0, code=10001)
    deliveries.record("m1", Request(), "sent", msgid="100")
    delivery = deliveries.get("m1")
    assert delivery is not None
    assert (delivery.status, delivery.errcode) == ("failed", 10001)


def test_an_early_event_re_applied_after_the_match_changes_nothing(deliveries: Deliveries) -> None:
    event(deliveries, "100", at=T0)
    deliveries.record("m1", Request(), "sent", msgid="100")
    again = event(deliveries, "100", at=T0)
    assert again is not None
    assert (again.message_id, again.status) == ("m1", "delivered")


def test_a_delivery_whose_msgid_marker_was_never_written_is_still_found(
    deliveries: Deliveries, deliveries_table: Any
) -> None:
    """A writer that stopped between the two writes: the by_msgid index finds the delivery."""
    deliveries_table.put_item(
        Item={
            "message_id": "m1",
            "status": "sent",
            "openid": U,
            "template_id": T,
            "recipient": f"{U}#{T}",
            "msgid": "100",
            "created_at": T0,
            "updated_at": T0,
            "expires_at": T0 + 30 * DAY,
        }
    )
    settled = event(deliveries, "100", at=T0 + 1)
    assert settled is not None
    assert (settled.message_id, settled.status) == ("m1", "delivered")


# Unknown outcomes.


def test_an_event_with_an_unknown_msgid_settles_the_unknown_delivery(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "unknown")
    settled = event(deliveries, "100", at=T0 + 9 * MIN)
    assert settled is not None
    assert (settled.message_id, settled.status, settled.msgid) == ("m1", "delivered", "100")


def test_an_event_more_than_ten_minutes_away_does_not_settle_it(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "unknown")
    assert event(deliveries, "100", at=T0 + 11 * MIN) is None
    assert fetch(deliveries, "m1").status == "unknown"


def test_the_oldest_unknown_is_settled_first(deliveries: Deliveries, clock: Clock) -> None:
    deliveries.record("older", Request(), "unknown")
    clock.now += 30
    deliveries.record("newer", Request(), "unknown")
    assert event(deliveries, "100", at=T0 + 40).message_id == "older"
    assert event(deliveries, "101", at=T0 + 41).message_id == "newer"
    assert event(deliveries, "102", at=T0 + 42) is None


def test_an_unknown_for_another_user_or_template_is_left_alone(deliveries: Deliveries) -> None:
    deliveries.record("other-user", Request(openid="o-other"), "unknown")
    deliveries.record("other-template", Request(template_id="tmpl-2"), "unknown")
    assert event(deliveries, "100", at=T0) is None
    assert {fetch(deliveries, m).status for m in ("other-user", "other-template")} == {"unknown"}


def test_a_failed_event_settles_an_unknown_as_failed(deliveries: Deliveries) -> None:
    deliveries.record("m1", Request(), "unknown")
    settled = event(deliveries, "100", at=T0 + 5, code=10001)
    assert (settled.status, settled.errcode) == ("failed", 10001)


def test_an_event_that_settled_an_unknown_settles_nothing_else_when_re_applied(
    deliveries: Deliveries,
) -> None:
    deliveries.record("first", Request(), "unknown")
    deliveries.record("second", Request(), "unknown")
    event(deliveries, "100", at=T0 + 5)
    assert event(deliveries, "100", at=T0 + 5).message_id == "first"
    assert fetch(deliveries, "second").status == "unknown"


def test_an_event_before_its_unknown_delivery_is_matched_when_the_unknown_is_recorded(
    deliveries: Deliveries, clock: Clock, deliveries_table: Any
) -> None:
    """WeChat pushed the sent event while our call was still waiting to time out."""
    assert event(deliveries, "100", at=T0) is None
    clock.now += 5
    deliveries.record("m1", Request(), "unknown")
    delivery = fetch(deliveries, "m1")
    assert (delivery.status, delivery.msgid) == ("delivered", "100")
    assert (raw(deliveries_table, "msgid#100") or {}).get("delivery") == "m1"


def test_an_early_event_too_far_from_the_unknown_is_not_matched(deliveries: Deliveries, clock: Clock) -> None:
    event(deliveries, "100", at=T0)
    clock.now += 11 * MIN
    deliveries.record("m1", Request(), "unknown")
    assert fetch(deliveries, "m1").status == "unknown"


def test_each_early_event_settles_one_unknown(deliveries: Deliveries, clock: Clock) -> None:
    event(deliveries, "100", at=T0)
    event(deliveries, "101", at=T0 + 1)
    clock.now += 5
    deliveries.record("a", Request(), "unknown")
    deliveries.record("b", Request(), "unknown")
    deliveries.record("c", Request(), "unknown")
    assert [fetch(deliveries, m).msgid for m in "abc"] == ["100", "101", None]


def test_settle_expired_unknown_retries_then_returns_what_is_still_unknown(
    deliveries: Deliveries, deliveries_table: Any, clock: Clock
) -> None:
    """An event and an unknown that missed each other (a GSI lagging) meet on the sweep."""
    event(deliveries, "100", at=T0)
    for message_id in ("missed", "silent"):
        deliveries_table.put_item(
            Item={
                "message_id": message_id,
                "status": "unknown",
                "openid": U,
                "template_id": T if message_id == "missed" else "tmpl-2",
                "recipient": f"{U}#{T}" if message_id == "missed" else f"{U}#tmpl-2",
                "created_at": T0 + 1,
                "updated_at": T0 + 1,
                "expires_at": T0 + 30 * DAY,
            }
        )
    clock.now += 20 * MIN
    deliveries.record("recent", Request(template_id="tmpl-3"), "unknown")
    still = deliveries.settle_expired_unknown(older_than=T0 + 10 * MIN)
    assert [d.message_id for d in still] == ["silent"]
    assert fetch(deliveries, "missed").status == "delivered"


# Concurrency.


def test_parallel_events_and_unknowns_pair_one_to_one(deliveries_table: Any, atomic_dynamodb: None) -> None:
    """Ten unknown sends and ten sent events, all at once: every event settles exactly one.

    Each side writes, then looks for the other; with the index current (as moto's always is)
    one of any two always sees the other, so nothing is left for the sweep.
    """
    dynamodb = boto3.resource("dynamodb", region_name=deliveries_table.meta.client.meta.region_name)
    clock = Clock()
    start = threading.Barrier(20)

    def run(i: int) -> None:
        own = Deliveries(dynamodb.Table(deliveries_table.name), clock=clock)
        start.wait()
        if i % 2:
            own.record(f"m{i}", Request(), "unknown")
        else:
            event(own, f"{1000 + i}", at=T0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    deliveries = Deliveries(deliveries_table, clock=clock)
    msgids = [fetch(deliveries, f"m{i}").msgid or "" for i in range(1, 20, 2)]
    assert sorted(msgids) == sorted(f"{1000 + i}" for i in range(0, 20, 2))
