"""Unknown sends with no sent event: given up after the window, their grant given back."""

from __future__ import annotations

from typing import Any

from wxsub.services.send import SendRequest
from wxsub.services.settle import SettleUnknown
from wxsub.stores.deliveries import Deliveries
from wxsub.stores.grants import GrantLedger

T0 = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def _request(template_id: str = "tmpl-one-time") -> SendRequest:
    return SendRequest(openid="o-1", template_id=template_id, data={"thing1": "x"})


def test_an_unknown_send_without_event_fails_after_the_window_and_its_grant_returns(
    deliveries_table: Any, grants_table: Any
) -> None:
    clock = Clock()
    deliveries, ledger = Deliveries(deliveries_table, clock=clock), GrantLedger(grants_table)
    ledger.record_accept("o-1", "tmpl-one-time", source="push", at=T0, long_term=False)
    assert ledger.take("o-1", "tmpl-one-time", long_term=False)
    deliveries.record("m-1", _request(), "unknown")
    settle = SettleUnknown(deliveries, ledger, lambda _: False, clock=clock)

    early = settle.run()
    clock.now += 601
    late = settle.run()
    again = settle.run()

    assert (early, late, again) == (0, 1, 0)
    record = deliveries.get("m-1")
    assert record is not None
    assert (record.status, record.error_status) == ("failed", "no_sent_event")
    assert ledger.get("o-1", "tmpl-one-time").one_time == 1


def test_an_unknown_send_settled_by_its_event_is_left_alone(deliveries_table: Any, grants_table: Any) -> None:
    clock = Clock()
    deliveries, ledger = Deliveries(deliveries_table, clock=clock), GrantLedger(grants_table)
    deliveries.record("m-2", _request(), "unknown")
    deliveries.apply_sent_event(
        openid="o-1", template_id="tmpl-one-time", msgid="9" * 19, error_code=0, error_status="success", at=T0
    )
    clock.now += 601

    assert SettleUnknown(deliveries, ledger, lambda _: False, clock=clock).run() == 0
    record = deliveries.get("m-2")
    assert record is not None and record.status == "delivered"
    assert ledger.get("o-1", "tmpl-one-time").one_time == 0


def test_a_long_term_send_gives_nothing_back(deliveries_table: Any, grants_table: Any) -> None:
    clock = Clock()
    deliveries, ledger = Deliveries(deliveries_table, clock=clock), GrantLedger(grants_table)
    deliveries.record("m-3", _request("tmpl-long"), "unknown")
    clock.now += 601

    assert SettleUnknown(deliveries, ledger, lambda _: True, clock=clock).run() == 1
    assert ledger.get("o-1", "tmpl-long").one_time == 0
