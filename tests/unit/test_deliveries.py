"""Deliveries: the write-ahead record of each send, settled by WeChat's sent events in whatever order."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from wxsub import errors
from wxsub.stores.deliveries import Deliveries, Delivery
from wxsub.stores.grants import GrantLedger

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


class Pauses:
    """Stands in for ``time.sleep`` in an event's rechecks: records each pause, runs ``during`` once."""

    def __init__(self) -> None:
        self.taken: list[float] = []
        self.during: Any = None

    def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        if self.during is not None:
            during, self.during = self.during, None
            during()


@pytest.fixture
def pauses() -> Pauses:
    return Pauses()


@pytest.fixture
def deliveries(deliveries_table: Any, clock: Clock, pauses: Pauses) -> Deliveries:
    return Deliveries(deliveries_table, clock=clock, sleep=pauses)


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


def answer(
    message_id: str, status: str, msgid: str | None = None, errcode: int | None = None
) -> dict[str, Any]:
    """What the send service would have answered the caller for ``status``."""
    if status == "sent":
        return {"status": 200, "body": {"status": "sent", "message_id": message_id, "msgid": msgid}}
    if status == "unknown":
        return {"status": 504, "body": {"error": "outcome_unknown", "message_id": message_id}}
    return {"status": 422, "body": {"error": "rejected_by_wechat", "errcode": errcode}}


def record(
    deliveries: Deliveries,
    message_id: str,
    request: Request,
    status: str,
    *,
    msgid: str | None = None,
    errcode: int | None = None,
    one_time: bool = False,
) -> None:
    """A send as the send service writes it: the ``sending`` record ahead, then its outcome."""
    assert deliveries.begin(message_id, request, one_time=one_time) is None
    assert deliveries.finish(
        message_id, status, answer(message_id, status, msgid, errcode), msgid=msgid, errcode=errcode
    )


# Recording.


def test_record_keeps_a_summary_without_the_data_values(
    deliveries: Deliveries, deliveries_table: Any
) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="1864323726461255680")
    item = raw(deliveries_table, "m1")
    assert item is not None
    assert item["data_keys"] == ["thing1", "time2"]
    assert "secret order" not in repr(item)
    assert (item["page"], item["state"], item["lang"]) == ("pages/order?id=1", "formal", "zh_CN")
    assert item["recipient"] == f"{U}#{T}"
    assert item["expires_at"] == T0 + 30 * DAY


def test_get_answers_the_recorded_delivery(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="1864323726461255680")
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
        answer=answer("m1", "sent", "1864323726461255680"),
    )


def test_a_refused_send_keeps_its_errcode(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(page=None, lang=None), "failed", errcode=43101)
    delivery = deliveries.get("m1")
    assert delivery is not None
    assert (delivery.status, delivery.errcode, delivery.msgid) == ("failed", 43101, None)


def test_get_of_an_unknown_id_is_none(deliveries: Deliveries) -> None:
    assert deliveries.get("nope") is None


def test_get_never_answers_with_a_bookkeeping_item(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="42")
    assert deliveries.get("msgid#42") is None


def test_to_json_keeps_the_msgid_a_string(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="1864323726461255680")
    delivery = deliveries.get("m1")
    assert delivery is not None
    expected = {
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
    assert delivery.to_json().items() >= expected.items()


# Sent events by msgid.


def test_a_sent_event_delivers_the_message_with_its_msgid(deliveries: Deliveries, clock: Clock) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="100")
    clock.now += 3
    settled = event(deliveries, "100", at=T0 + 2)
    assert settled is not None
    seen = (settled.message_id, settled.status, settled.errcode, settled.updated_at)
    assert seen == ("m1", "delivered", 0, T0 + 3)
    assert deliveries.get("m1") == settled


def test_a_failed_sent_event_keeps_the_code(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="100")
    settled = event(deliveries, "100", at=T0 + 2, code=10001)
    assert settled is not None
    assert (settled.status, settled.errcode, settled.error_status) == ("failed", 10001, "system error")


def test_applying_the_same_event_again_changes_nothing(deliveries: Deliveries, clock: Clock) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="100")
    first = event(deliveries, "100", at=T0 + 2)
    clock.now += 60
    assert event(deliveries, "100", at=T0 + 2) == first


def test_a_settled_delivery_is_not_changed_by_a_contradicting_event(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="100")
    event(deliveries, "100", at=T0 + 2)
    again = event(deliveries, "100", at=T0 + 3, code=10001)
    assert again is not None
    assert again.status == "delivered"


def test_an_event_for_a_sent_delivery_does_not_settle_an_unknown_one(deliveries: Deliveries) -> None:
    record(deliveries, "m-unknown", Request(), "unknown")
    record(deliveries, "m-sent", Request(), "sent", msgid="100")
    event(deliveries, "100", at=T0 + 1)
    assert [fetch(deliveries, m).status for m in ("m-unknown", "m-sent")] == ["unknown", "delivered"]


# Events that arrive first.


def test_an_early_event_is_kept_and_settled_by_the_sweep_once_its_msgid_is_recorded(
    deliveries: Deliveries, deliveries_table: Any, clock: Clock, pauses: Pauses
) -> None:
    assert event(deliveries, "100", at=T0) is None
    assert pauses.taken == [0.2, 1.0]  # it looked again within its own invocation first
    parked = raw(deliveries_table, "msgid#100")
    assert parked is not None
    assert (parked["status"], parked["expires_at"]) == ("pending", T0 + DAY)

    record(deliveries, "m1", Request(), "sent", msgid="100")
    assert fetch(deliveries, "m1").status == "sent"  # recording the send costs no look for events
    clock.now += MIN

    assert deliveries.settle_parked(older_than=int(clock.now) - 30) == 1

    delivery = fetch(deliveries, "m1")
    assert (delivery.status, delivery.msgid) == ("delivered", "100")
    claimed = raw(deliveries_table, "msgid#100") or {}
    assert claimed.get("delivery") == "m1"
    assert "unsettled" not in claimed and "event" not in claimed
    assert deliveries.settle_parked(older_than=int(clock.now)) == 0


def test_an_event_that_overtakes_its_send_by_less_than_its_rechecks_settles_it(
    deliveries: Deliveries, pauses: Pauses
) -> None:
    """WeChat's push arrived while the worker was still writing the outcome WeChat had answered."""
    pauses.during = lambda: record(deliveries, "m1", Request(), "sent", msgid="100")
    settled = event(deliveries, "100", at=T0)
    assert settled is not None
    assert (settled.message_id, settled.status) == ("m1", "delivered")
    assert pauses.taken == [0.2]


def test_the_sweep_leaves_a_parked_event_older_than_the_settle_window(
    deliveries: Deliveries, clock: Clock
) -> None:
    event(deliveries, "100", at=T0)
    record(deliveries, "m1", Request(), "sent", msgid="100")
    clock.now += 11 * MIN
    assert deliveries.settle_parked(older_than=int(clock.now) - 30) == 0
    assert fetch(deliveries, "m1").status == "sent"


def test_an_early_failed_event_is_applied_with_its_code(deliveries: Deliveries) -> None:
    event(deliveries, "100", at=T0, code=10001)
    record(deliveries, "m1", Request(), "sent", msgid="100")
    deliveries.settle_parked(older_than=T0 + 30)
    delivery = deliveries.get("m1")
    assert delivery is not None
    assert (delivery.status, delivery.errcode) == ("failed", 10001)


def test_an_early_event_re_applied_after_the_match_changes_nothing(deliveries: Deliveries) -> None:
    event(deliveries, "100", at=T0)
    record(deliveries, "m1", Request(), "sent", msgid="100")
    deliveries.settle_parked(older_than=T0 + 30)
    again = event(deliveries, "100", at=T0)
    assert again is not None
    assert (again.message_id, again.status) == ("m1", "delivered")


def test_a_repeated_event_that_settled_the_send_first_unparks_the_early_one(
    deliveries: Deliveries, deliveries_table: Any
) -> None:
    event(deliveries, "100", at=T0)
    record(deliveries, "m1", Request(), "sent", msgid="100")
    assert fetch(deliveries, "m1").status == "sent"
    assert event(deliveries, "100", at=T0).status == "delivered"  # WeChat's retry of the push
    assert deliveries.settle_parked(older_than=T0 + 30) == 1
    assert "unsettled" not in (raw(deliveries_table, "msgid#100") or {})
    assert deliveries.settle_parked(older_than=T0 + 30) == 0


def test_a_sent_event_finds_its_delivery_by_msgid_alone(
    deliveries: Deliveries, deliveries_table: Any
) -> None:
    """A delivery written by an earlier version or by hand: only its msgid ties it to the event."""
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
    record(deliveries, "m1", Request(), "unknown")
    settled = event(deliveries, "100", at=T0 + 9 * MIN)
    assert settled is not None
    assert (settled.message_id, settled.status, settled.msgid) == ("m1", "delivered", "100")


def test_an_event_more_than_ten_minutes_away_does_not_settle_it(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "unknown")
    assert event(deliveries, "100", at=T0 + 11 * MIN) is None
    assert fetch(deliveries, "m1").status == "unknown"


def test_the_oldest_unknown_is_settled_first(deliveries: Deliveries, clock: Clock) -> None:
    record(deliveries, "older", Request(), "unknown")
    clock.now += 30
    record(deliveries, "newer", Request(), "unknown")
    assert event(deliveries, "100", at=T0 + 40).message_id == "older"
    assert event(deliveries, "101", at=T0 + 41).message_id == "newer"
    assert event(deliveries, "102", at=T0 + 42) is None


def test_an_unknown_for_another_user_or_template_is_left_alone(deliveries: Deliveries) -> None:
    record(deliveries, "other-user", Request(openid="o-other"), "unknown")
    record(deliveries, "other-template", Request(template_id="tmpl-2"), "unknown")
    assert event(deliveries, "100", at=T0) is None
    assert {fetch(deliveries, m).status for m in ("other-user", "other-template")} == {"unknown"}


def test_a_failed_event_settles_an_unknown_as_failed(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "unknown")
    settled = event(deliveries, "100", at=T0 + 5, code=10001)
    assert (settled.status, settled.errcode) == ("failed", 10001)


def test_an_event_that_settled_an_unknown_settles_nothing_else_when_re_applied(
    deliveries: Deliveries,
) -> None:
    record(deliveries, "first", Request(), "unknown")
    record(deliveries, "second", Request(), "unknown")
    event(deliveries, "100", at=T0 + 5)
    assert event(deliveries, "100", at=T0 + 5).message_id == "first"
    assert fetch(deliveries, "second").status == "unknown"


def test_an_event_before_its_unknown_delivery_is_matched_when_the_unknown_is_recorded(
    deliveries: Deliveries, clock: Clock, deliveries_table: Any
) -> None:
    """WeChat pushed the sent event while our call was still waiting to time out."""
    assert event(deliveries, "100", at=T0) is None
    clock.now += 5
    record(deliveries, "m1", Request(), "unknown")
    delivery = fetch(deliveries, "m1")
    assert (delivery.status, delivery.msgid) == ("delivered", "100")
    assert (raw(deliveries_table, "msgid#100") or {}).get("delivery") == "m1"


def test_an_early_event_too_far_from_the_unknown_is_not_matched(deliveries: Deliveries, clock: Clock) -> None:
    event(deliveries, "100", at=T0)
    clock.now += 11 * MIN
    record(deliveries, "m1", Request(), "unknown")
    assert fetch(deliveries, "m1").status == "unknown"


def test_each_early_event_settles_one_unknown(deliveries: Deliveries, clock: Clock) -> None:
    event(deliveries, "100", at=T0)
    event(deliveries, "101", at=T0 + 1)
    clock.now += 5
    record(deliveries, "a", Request(), "unknown")
    record(deliveries, "b", Request(), "unknown")
    record(deliveries, "c", Request(), "unknown")
    assert [fetch(deliveries, m).msgid for m in "abc"] == ["100", "101", None]


def test_an_event_older_than_an_unknown_send_beyond_the_skew_does_not_settle_it(
    deliveries: Deliveries, clock: Clock
) -> None:
    """A send written after the event cannot be what the event reports (60 s of clock skew allowed)."""
    clock.now += 5 * MIN
    record(deliveries, "m1", Request(), "unknown")
    assert event(deliveries, "100", at=T0 + 5 * MIN - 61) is None
    assert fetch(deliveries, "m1").status == "unknown"


def test_an_event_up_to_a_minute_older_than_an_unknown_send_settles_it(
    deliveries: Deliveries, clock: Clock
) -> None:
    clock.now += 5 * MIN
    record(deliveries, "m1", Request(), "unknown")
    settled = event(deliveries, "100", at=T0 + 5 * MIN - 60)
    assert settled is not None
    assert (settled.message_id, settled.status, settled.msgid) == ("m1", "delivered", "100")


def test_an_old_event_passes_over_a_newer_unknown_and_settles_the_one_it_can_report(
    deliveries: Deliveries, clock: Clock
) -> None:
    record(deliveries, "before", Request(), "unknown")
    clock.now += 3 * MIN
    record(deliveries, "after", Request(), "unknown")
    settled = event(deliveries, "100", at=T0 + 10)
    assert settled is not None
    assert settled.message_id == "before"
    assert fetch(deliveries, "after").status == "unknown"


def test_a_parked_event_more_than_a_minute_older_than_the_unknown_send_is_not_matched(
    deliveries: Deliveries, clock: Clock
) -> None:
    event(deliveries, "100", at=T0)
    clock.now += 61
    record(deliveries, "m1", Request(), "unknown")
    assert fetch(deliveries, "m1").status == "unknown"


# The write-ahead record.


def test_begin_writes_a_sending_record_before_the_call(deliveries: Deliveries) -> None:
    assert deliveries.begin("m1", Request(), one_time=True) is None
    delivery = fetch(deliveries, "m1")
    assert (delivery.status, delivery.answer, delivery.grant) == ("sending", None, "one_time")


def test_a_second_begin_finds_the_first_attempts_record(deliveries: Deliveries) -> None:
    deliveries.begin("m1", Request(), one_time=False)
    found = deliveries.begin("m1", Request(), one_time=False)
    assert found is not None
    assert (found.message_id, found.status) == ("m1", "sending")


def test_a_begin_after_the_outcome_finds_the_answer_given(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="100")
    found = deliveries.begin("m1", Request(), one_time=False)
    assert found is not None
    assert (found.status, found.answer) == ("sent", answer("m1", "sent", "100"))


def test_a_begin_retried_by_the_sdk_after_its_answer_was_lost_is_its_own(
    deliveries: Deliveries, deliveries_table: Any
) -> None:
    """DynamoDB wrote the record but the answer never arrived: the retry must not look like a rival."""
    client = deliveries_table.meta.client
    attempts_made: list[int] = []

    def lose_the_first_answer(attempts: int, **_: Any) -> int | None:
        attempts_made.append(attempts)
        return 0 if attempts == 1 else None

    client.meta.events.register("needs-retry.dynamodb.PutItem", lose_the_first_answer)
    try:
        found = deliveries.begin("m1", Request(), one_time=True)
    finally:
        client.meta.events.unregister("needs-retry.dynamodb.PutItem", lose_the_first_answer)

    assert attempts_made[:2] == [1, 2], "the fault was not injected"
    assert found is None
    assert fetch(deliveries, "m1").status == "sending"


def test_a_record_begun_without_a_grant_has_nothing_to_give_back(deliveries: Deliveries) -> None:
    deliveries.begin("m1", Request(), one_time=True)
    deliveries.without_grant("m1")
    assert fetch(deliveries, "m1").grant is None


def test_finish_settles_only_a_sending_record(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "sent", msgid="100")
    assert deliveries.finish("m1", "failed", answer("m1", "failed", errcode=47003), errcode=47003) is False
    delivery = fetch(deliveries, "m1")
    assert (delivery.status, delivery.msgid, delivery.errcode) == ("sent", "100", None)


def test_finish_of_a_record_never_begun_is_false(deliveries: Deliveries) -> None:
    assert deliveries.finish("m1", "sent", answer("m1", "sent", "100"), msgid="100") is False
    assert deliveries.get("m1") is None


def test_an_unknown_send_keeps_its_grant_mark_and_a_settled_one_drops_it(deliveries: Deliveries) -> None:
    record(deliveries, "unknown", Request(), "unknown", one_time=True)
    record(deliveries, "sent", Request(), "sent", msgid="100", one_time=True)
    record(deliveries, "failed", Request(), "failed", errcode=47003, one_time=True)
    assert [fetch(deliveries, m).grant for m in ("unknown", "sent", "failed")] == ["one_time", None, None]


def test_release_deletes_a_record_that_never_reached_wechat(deliveries: Deliveries) -> None:
    deliveries.begin("m1", Request(), one_time=False)
    assert deliveries.release("m1") is True
    assert deliveries.get("m1") is None
    assert deliveries.begin("m1", Request(), one_time=False) is None


def test_release_leaves_a_record_with_an_outcome_alone(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "unknown")
    assert deliveries.release("m1") is False
    assert fetch(deliveries, "m1").status == "unknown"


# Binding an Idempotency-Key to a message_id.


def ids(*values: str) -> Any:
    pending = list(values)
    return lambda: pending.pop(0)


def test_a_key_is_bound_to_the_first_message_id_it_was_given(deliveries: Deliveries) -> None:
    assert deliveries.bind("order-1", "fp", ids("m1")) == "m1"
    assert deliveries.bind("order-1", "fp", ids("m2")) == "m1"
    assert deliveries.bound("order-1") == "m1"


def test_a_key_bound_to_another_request_is_refused(deliveries: Deliveries) -> None:
    deliveries.bind("order-1", "fp", ids("m1"))
    with pytest.raises(errors.IdempotencyKeyReused):
        deliveries.bind("order-1", "other", ids("m2"))
    assert deliveries.bound("order-1") == "m1"


def test_a_key_is_bound_for_a_day(deliveries: Deliveries, clock: Clock) -> None:
    deliveries.bind("order-1", "fp", ids("m1"))
    clock.now += DAY
    assert deliveries.bound("order-1") is None
    assert deliveries.bind("order-1", "other", ids("m2")) == "m2"


def test_a_key_never_bound_is_bound_to_nothing(deliveries: Deliveries) -> None:
    assert deliveries.bound("order-1") is None


def test_the_key_binding_is_no_delivery(deliveries: Deliveries, deliveries_table: Any) -> None:
    deliveries.bind("order-1", "fp", ids("m1"))
    assert [deliveries.get(item["message_id"]) for item in deliveries_table.scan()["Items"]] == [None]


# Grants given back with the record, in one transaction.


@pytest.fixture
def ledger(grants_table: Any) -> GrantLedger:
    ledger = GrantLedger(grants_table)
    ledger.record_accept(U, T, source="report", at=T0, long_term=False)
    return ledger


def test_a_refused_send_gives_its_grant_back_with_its_outcome_exactly_once(
    deliveries: Deliveries, ledger: GrantLedger
) -> None:
    deliveries.begin("m1", Request(), one_time=True)
    assert ledger.take(U, T, long_term=False) is not None
    refused = answer("m1", "failed", errcode=47003)

    first = deliveries.finish("m1", "failed", refused, errcode=47003, give_back=ledger.give_back(U, T))
    again = deliveries.finish("m1", "failed", refused, errcode=47003, give_back=ledger.give_back(U, T))

    assert (first, again) == (True, False)
    assert ledger.get(U, T).one_time == 1
    assert (fetch(deliveries, "m1").status, fetch(deliveries, "m1").errcode) == ("failed", 47003)


def test_a_released_send_gives_its_grant_back_exactly_once(
    deliveries: Deliveries, ledger: GrantLedger
) -> None:
    deliveries.begin("m1", Request(), one_time=True)
    assert ledger.take(U, T, long_term=False) is not None

    first = deliveries.release("m1", ledger.give_back(U, T))
    again = deliveries.release("m1", ledger.give_back(U, T))

    assert (first, again) == (True, False)
    assert ledger.get(U, T).one_time == 1
    assert deliveries.get("m1") is None


def test_no_grant_comes_back_for_a_send_that_already_has_an_outcome(
    deliveries: Deliveries, ledger: GrantLedger
) -> None:
    deliveries.begin("m1", Request(), one_time=True)
    assert ledger.take(U, T, long_term=False) is not None
    record(deliveries, "m2", Request(), "sent", msgid="100")
    deliveries.finish("m1", "sent", answer("m1", "sent", "101"), msgid="101")

    assert deliveries.release("m1", ledger.give_back(U, T)) is False
    assert deliveries.give_up("m1", "no_sent_event", ledger.give_back(U, T)) is False
    assert ledger.get(U, T).one_time == 0


# The sweep's view: unsettled sends through the sparse index.


def test_unsettled_lists_old_sending_and_unknown_records_only(deliveries: Deliveries, clock: Clock) -> None:
    deliveries.begin("sending", Request(), one_time=False)
    record(deliveries, "unknown", Request(), "unknown")
    record(deliveries, "sent", Request(), "sent", msgid="100")
    record(deliveries, "failed", Request(), "failed", errcode=47003)
    deliveries.bind("order-1", "fp", ids("m-key"))
    clock.now += 5 * MIN
    record(deliveries, "recent", Request(), "unknown")

    old = deliveries.unsettled(older_than=T0 + MIN)

    assert sorted(d.message_id for d in old) == ["sending", "unknown"]


def test_unsettled_spans_every_shard(deliveries: Deliveries) -> None:
    message_ids = [f"m{i}" for i in range(64)]
    for message_id in message_ids:
        record(deliveries, message_id, Request(), "unknown")

    assert sorted(d.message_id for d in deliveries.unsettled(older_than=T0 + 1)) == sorted(message_ids)


def test_a_send_leaves_the_unsettled_index_once_settled(deliveries: Deliveries, clock: Clock) -> None:
    record(deliveries, "by-event", Request(), "unknown")
    record(deliveries, "given-up", Request(openid="o-other"), "unknown")
    event(deliveries, "100", at=T0 + 1)
    assert deliveries.give_up("given-up", "no_sent_event") is True
    clock.now += 20 * MIN

    assert list(deliveries.unsettled(older_than=T0 + 10 * MIN)) == []


def test_give_up_fails_an_unknown_send_with_its_reason_and_gives_its_grant_back(
    deliveries: Deliveries, ledger: GrantLedger
) -> None:
    deliveries.begin("m1", Request(), one_time=True)
    assert ledger.take(U, T, long_term=False) is not None
    deliveries.finish("m1", "unknown", answer("m1", "unknown"))

    first = deliveries.give_up("m1", "no_sent_event", ledger.give_back(U, T))
    again = deliveries.give_up("m1", "no_sent_event", ledger.give_back(U, T))

    assert (first, again) == (True, False)
    delivery = fetch(deliveries, "m1")
    assert (delivery.status, delivery.error_status, delivery.grant) == ("failed", "no_sent_event", None)
    assert ledger.get(U, T).one_time == 1


def test_give_up_leaves_a_send_its_event_settled(deliveries: Deliveries) -> None:
    record(deliveries, "m1", Request(), "unknown")
    event(deliveries, "100", at=T0 + 1)
    assert deliveries.give_up("m1", "no_sent_event") is False
    assert fetch(deliveries, "m1").status == "delivered"


def test_retry_match_settles_an_unknown_with_an_event_it_missed(
    deliveries: Deliveries, deliveries_table: Any, clock: Clock
) -> None:
    """An event and an unknown that missed each other (a GSI lagging) meet on the sweep."""
    event(deliveries, "100", at=T0 + 1)
    deliveries.begin("missed", Request(), one_time=False)
    deliveries_table.update_item(  # the outcome written while the index had not seen the event yet
        Key={"message_id": "missed"},
        UpdateExpression="SET #s = :unknown",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":unknown": "unknown"},
    )
    record(deliveries, "silent", Request(template_id="tmpl-2"), "unknown")
    clock.now += 20 * MIN

    settled = [deliveries.retry_match(d) for d in deliveries.unsettled(older_than=T0 + 10 * MIN)]

    assert sorted(settled) == [False, True]
    assert (fetch(deliveries, "missed").status, fetch(deliveries, "missed").msgid) == ("delivered", "100")
    assert fetch(deliveries, "silent").status == "unknown"


def test_a_sending_record_whose_writer_stopped_is_settled_by_the_event_of_its_send(
    deliveries: Deliveries, clock: Clock
) -> None:
    """The function stopped between WeChat's answer and the outcome write; WeChat's event still came."""
    deliveries.begin("m1", Request(), one_time=True)
    assert event(deliveries, "100", at=T0 + 2) is None
    clock.now += 20 * MIN

    (stale,) = deliveries.unsettled(older_than=T0 + 10 * MIN)

    assert deliveries.retry_match(stale) is True
    delivery = fetch(deliveries, "m1")
    assert (delivery.status, delivery.msgid) == ("delivered", "100")


def test_a_sending_record_with_no_event_becomes_unknown_for_the_sweep_to_give_up(
    deliveries: Deliveries, clock: Clock
) -> None:
    deliveries.begin("m1", Request(), one_time=True)
    clock.now += 20 * MIN

    (stale,) = deliveries.unsettled(older_than=T0 + 10 * MIN)

    assert deliveries.retry_match(stale) is False
    assert fetch(deliveries, "m1").status == "unknown"
    assert deliveries.give_up("m1", "no_sent_event") is True
    assert fetch(deliveries, "m1").status == "failed"


def test_retry_match_of_a_sending_record_finished_meanwhile_counts_it_settled(
    deliveries: Deliveries, clock: Clock
) -> None:
    deliveries.begin("m1", Request(), one_time=False)
    clock.now += 20 * MIN
    (stale,) = deliveries.unsettled(older_than=T0 + 10 * MIN)
    deliveries.finish("m1", "sent", answer("m1", "sent", "100"), msgid="100")

    assert deliveries.retry_match(stale) is True
    assert fetch(deliveries, "m1").status == "sent"


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
            record(own, f"m{i}", Request(), "unknown")
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
