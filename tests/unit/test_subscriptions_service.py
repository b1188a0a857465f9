"""SubscriptionService: the mini program's requestSubscribeMessage results feed the grant ledger."""

from __future__ import annotations

from typing import Any

import pytest

from wxsub import errors
from wxsub.services.subscriptions import SubscriptionService
from wxsub.stores.grants import Grant

T0 = 1_800_000_000
ALICE, BOB = "o-alice", "o-bob"
SHIPPED, REFUND, MEMBERSHIP = "tmpl-shipped", "tmpl-refund", "tmpl-membership"


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


class Ledger:
    """The grant ledger as reports see it: accepts add one-time grants or turn long-term on."""

    def __init__(self) -> None:
        self._grants: dict[tuple[str, str], Grant] = {}
        self.sources: list[str] = []
        self.expiries: dict[str, int | None] = {}

    def record_accept(
        self, openid: str, template_id: str, *, source: Any, at: int, long_term: bool, expires_at: int | None
    ) -> Grant:
        self.expiries[template_id] = expires_at
        grant = self._grant(openid, template_id)
        self.sources.append(source)
        return self._set(
            grant,
            one_time=grant.one_time + (0 if long_term else 1),
            long_term=grant.long_term or long_term,
            last_status="accept",
            updated_at=at,
        )

    def record_reject(
        self, openid: str, template_id: str, *, source: Any, at: int, expires_at: int | None
    ) -> Grant:
        self.expiries[template_id] = expires_at
        self.sources.append(source)
        return self._set(
            self._grant(openid, template_id), long_term=False, last_status="reject", updated_at=at
        )

    def for_user(self, openid: str) -> list[Grant]:
        return [grant for (owner, _), grant in sorted(self._grants.items()) if owner == openid]

    def _grant(self, openid: str, template_id: str) -> Grant:
        return self._grants.get((openid, template_id), Grant(openid, template_id))

    def _set(self, grant: Grant, **changes: Any) -> Grant:
        changed = Grant(**{**grant.to_json(), **changes})
        self._grants[grant.openid, grant.template_id] = changed
        return changed


class State:
    """The state table's counters, expiring by the clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[int, float]] = {}

    def count(self, pk: str, *, ttl_seconds: int, limit: int) -> bool:
        hits, expires_at = self._counters.get(pk, (0, self._clock() + ttl_seconds))
        if expires_at <= self._clock():
            hits, expires_at = 0, self._clock() + ttl_seconds
        if hits >= limit:
            return False
        self._counters[pk] = (hits + 1, expires_at)
        return True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def subscriptions(ledger: Ledger, clock: Clock, per_minute: int = 30) -> SubscriptionService:
    return SubscriptionService(
        ledger,
        State(clock),  # type: ignore[arg-type]
        is_long_term=lambda template_id: template_id == MEMBERSHIP,
        clock=clock,
        per_minute=per_minute,
    )


def one_time_left(grants: list[dict[str, Any]]) -> dict[str, int]:
    return {grant["template_id"]: grant["one_time"] for grant in grants}


def test_every_kind_of_accept_counts_as_an_accept(ledger: Ledger, clock: Clock) -> None:
    result = {
        "tmpl-a": "accept",
        "tmpl-b": "acceptWithAudio",
        "tmpl-c": "acceptWithAlert",
        "tmpl-d": "acceptWithForcePush",
    }

    grants = subscriptions(ledger, clock).report(ALICE, result)

    assert one_time_left(grants) == dict.fromkeys(result, 1)
    assert {grant["last_status"] for grant in grants} == {"accept"}
    assert {grant["updated_at"] for grant in grants} == {T0}
    assert set(ledger.sources) == {"report"}


def test_a_reject_is_recorded(ledger: Ledger, clock: Clock) -> None:
    service = subscriptions(ledger, clock)
    service.report(ALICE, {MEMBERSHIP: "accept"})
    clock.now += 60

    grants = service.report(ALICE, {MEMBERSHIP: "reject"})

    assert grants == [
        {
            "openid": ALICE,
            "template_id": MEMBERSHIP,
            "one_time": 0,
            "long_term": False,
            "last_status": "reject",
            "updated_at": T0 + 60,
        }
    ]


def test_errmsg_is_not_a_template(ledger: Ledger, clock: Clock) -> None:
    grants = subscriptions(ledger, clock).report(
        ALICE, {"errMsg": "requestSubscribeMessage:ok", SHIPPED: "accept"}
    )

    assert one_time_left(grants) == {SHIPPED: 1}


def test_ban_and_filter_change_no_grant(ledger: Ledger, clock: Clock) -> None:
    grants = subscriptions(ledger, clock).report(ALICE, {SHIPPED: "ban", REFUND: "filter"})

    assert grants == []
    assert ledger.sources == []


def test_an_accept_of_a_long_term_template_turns_it_on_without_a_one_time_grant(
    ledger: Ledger, clock: Clock
) -> None:
    grants = subscriptions(ledger, clock).report(ALICE, {MEMBERSHIP: "accept", SHIPPED: "accept"})

    by_template = {grant["template_id"]: (grant["one_time"], grant["long_term"]) for grant in grants}
    assert by_template == {MEMBERSHIP: (0, True), SHIPPED: (1, False)}


def test_each_report_adds_its_accepts_and_the_user_sees_only_their_own_grants(
    ledger: Ledger, clock: Clock
) -> None:
    service = subscriptions(ledger, clock)
    service.report(ALICE, {SHIPPED: "accept"})
    service.report(BOB, {REFUND: "accept"})

    grants = service.report(ALICE, {SHIPPED: "accept", REFUND: "reject"})

    assert one_time_left(grants) == {REFUND: 0, SHIPPED: 2}
    assert one_time_left(service.grants(BOB)) == {REFUND: 1}


def test_reports_past_the_per_minute_limit_are_rate_limited_and_count_nothing(
    ledger: Ledger, clock: Clock
) -> None:
    service = subscriptions(ledger, clock, per_minute=3)
    for _ in range(3):
        service.report(ALICE, {SHIPPED: "accept"})

    with pytest.raises(errors.RateLimited) as raised:
        service.report(ALICE, {SHIPPED: "accept"})

    assert (raised.value.status, raised.value.code) == (429, "rate_limited")
    assert one_time_left(service.grants(ALICE)) == {SHIPPED: 3}


def test_one_users_limit_leaves_other_users_alone(ledger: Ledger, clock: Clock) -> None:
    service = subscriptions(ledger, clock, per_minute=1)
    service.report(ALICE, {SHIPPED: "accept"})

    grants = service.report(BOB, {SHIPPED: "accept"})

    assert one_time_left(grants) == {SHIPPED: 1}


def test_a_rate_limited_user_may_report_again_the_next_minute(ledger: Ledger, clock: Clock) -> None:
    service = subscriptions(ledger, clock, per_minute=1)
    service.report(ALICE, {SHIPPED: "accept"})
    with pytest.raises(errors.RateLimited):
        service.report(ALICE, {SHIPPED: "accept"})
    clock.now += 60

    grants = service.report(ALICE, {SHIPPED: "accept"})

    assert one_time_left(grants) == {SHIPPED: 2}
