"""Open sends with no sent event: given up after the window, a one-time grant given back with them."""

from __future__ import annotations

from typing import Any

import pytest

from wxsub.deadline import Deadline
from wxsub.services.send import SendRequest
from wxsub.services.settle import SettleUnknown
from wxsub.stores.deliveries import Deliveries
from wxsub.stores.grants import GrantLedger

T0 = 1_800_000_000
USER, ONE_TIME, LONG_TERM = "o-1", "tmpl-one-time", "tmpl-long"


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deliveries(deliveries_table: Any, clock: Clock) -> Deliveries:
    return Deliveries(deliveries_table, clock=clock, sleep=lambda seconds: None)


@pytest.fixture
def ledger(grants_table: Any) -> GrantLedger:
    return GrantLedger(grants_table)


def _request(template_id: str = ONE_TIME) -> SendRequest:
    return SendRequest(openid=USER, template_id=template_id, data={"thing1": "x"})


def open_send(
    deliveries: Deliveries, ledger: GrantLedger, message_id: str, *, template_id: str = ONE_TIME, status: str
) -> None:
    """A send as the send service leaves it: a one-time grant taken, then ``sending`` or ``unknown``."""
    ledger.record_accept(USER, template_id, source="report", at=T0, long_term=False)
    assert deliveries.begin(message_id, _request(template_id), one_time=True) is None
    assert ledger.take(USER, template_id, long_term=False) is not None
    if status == "unknown":
        assert deliveries.finish(message_id, "unknown", {"status": 504, "body": {"error": "outcome_unknown"}})


@pytest.mark.parametrize("status", ["unknown", "sending"])
def test_an_open_send_without_event_fails_after_the_window_and_its_grant_returns(
    status: str, deliveries: Deliveries, ledger: GrantLedger, clock: Clock
) -> None:
    open_send(deliveries, ledger, "m-1", status=status)
    settle = SettleUnknown(deliveries, ledger, clock=clock)

    early = settle.run()
    clock.now += 601
    late = settle.run()
    again = settle.run()

    assert (early, late, again) == (0, 1, 0)
    record = deliveries.get("m-1")
    assert record is not None
    assert (record.status, record.error_status) == ("failed", "no_sent_event")
    assert ledger.get(USER, ONE_TIME).one_time == 1


def test_an_unknown_send_settled_by_its_event_is_left_alone(
    deliveries: Deliveries, ledger: GrantLedger, clock: Clock
) -> None:
    open_send(deliveries, ledger, "m-2", status="unknown")
    deliveries.apply_sent_event(
        openid=USER, template_id=ONE_TIME, msgid="9" * 19, error_code=0, error_status="success", at=T0
    )
    clock.now += 601

    assert SettleUnknown(deliveries, ledger, clock=clock).run() == 0
    record = deliveries.get("m-2")
    assert record is not None and record.status == "delivered"
    assert ledger.get(USER, ONE_TIME).one_time == 0


def test_a_sending_send_whose_event_came_is_settled_by_it_not_given_up(
    deliveries: Deliveries, ledger: GrantLedger, clock: Clock
) -> None:
    """WeChat sent it, the function stopped before recording the answer; the event tells."""
    open_send(deliveries, ledger, "m-3", status="sending")
    deliveries.apply_sent_event(
        openid=USER, template_id=ONE_TIME, msgid="9" * 19, error_code=0, error_status="success", at=T0 + 1
    )
    clock.now += 601

    assert SettleUnknown(deliveries, ledger, clock=clock).run() == 0
    record = deliveries.get("m-3")
    assert record is not None and (record.status, record.msgid) == ("delivered", "9" * 19)
    assert ledger.get(USER, ONE_TIME).one_time == 0


def test_a_sent_event_that_overtook_its_send_is_matched_by_the_next_sweep(
    deliveries: Deliveries, ledger: GrantLedger, clock: Clock
) -> None:
    """The push came before the worker recorded WeChat's answer, and found nothing in its invocation."""
    ledger.record_accept(USER, ONE_TIME, source="report", at=T0, long_term=False)
    deliveries.apply_sent_event(
        openid=USER, template_id=ONE_TIME, msgid="7" * 19, error_code=0, error_status="success", at=T0
    )
    deliveries.begin("m-5", _request(), one_time=True)
    deliveries.finish("m-5", "sent", {"status": 200, "body": {"status": "sent"}}, msgid="7" * 19)
    settle = SettleUnknown(deliveries, ledger, clock=clock)

    settle.run()
    before_grace = deliveries.get("m-5")
    clock.now += 31
    settle.run()

    assert before_grace is not None and before_grace.status == "sent"
    record = deliveries.get("m-5")
    assert record is not None and (record.status, record.msgid) == ("delivered", "7" * 19)


def test_a_long_term_send_gives_nothing_back(
    deliveries: Deliveries, ledger: GrantLedger, clock: Clock
) -> None:
    ledger.record_accept(USER, LONG_TERM, source="push", at=T0, long_term=True)
    deliveries.begin("m-4", _request(LONG_TERM), one_time=False)
    deliveries.finish("m-4", "unknown", {"status": 504, "body": {"error": "outcome_unknown"}})
    clock.now += 601

    assert SettleUnknown(deliveries, ledger, clock=clock).run() == 1
    assert ledger.get(USER, LONG_TERM).one_time == 0


def test_a_send_made_without_a_grant_gives_nothing_back(
    deliveries: Deliveries, ledger: GrantLedger, clock: Clock
) -> None:
    """``ledger: ignore`` with no grant held: the sweep must not create one."""
    deliveries.begin("m-5", _request(), one_time=True)
    deliveries.without_grant("m-5")
    deliveries.finish("m-5", "unknown", {"status": 504, "body": {"error": "outcome_unknown"}})
    clock.now += 601

    assert SettleUnknown(deliveries, ledger, clock=clock).run() == 1
    assert ledger.get(USER, ONE_TIME).one_time == 0


def test_the_window_is_configurable(deliveries: Deliveries, ledger: GrantLedger, clock: Clock) -> None:
    open_send(deliveries, ledger, "m-6", status="unknown")
    clock.now += 61

    assert SettleUnknown(deliveries, ledger, window_seconds=60, clock=clock).run() == 1
    assert ledger.get(USER, ONE_TIME).one_time == 1


def test_the_sweep_stops_while_the_invocation_has_time_and_the_next_run_goes_on(
    deliveries: Deliveries, ledger: GrantLedger, clock: Clock
) -> None:
    for i in range(3):
        open_send(deliveries, ledger, f"m-{i}", status="unknown")
    clock.now += 601
    deadline = Deadline(clock)

    deadline.bind(Context(5_000))
    stopped = SettleUnknown(deliveries, ledger, clock=clock, deadline=deadline).run()
    deadline.bind(Context(60_000))
    finished = SettleUnknown(deliveries, ledger, clock=clock, deadline=deadline).run()

    assert (stopped, finished) == (0, 3)
    assert {deliveries.get(f"m-{i}").status for i in range(3)} == {"failed"}  # type: ignore[union-attr]
    assert ledger.get(USER, ONE_TIME).one_time == 3
