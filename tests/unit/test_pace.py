"""Pacer: the AppID's send rate, reserved per batch in one-second buckets of the state table (moto)."""

from __future__ import annotations

from typing import Any

import pytest
from campaign_kit import T0, Clock

from wxsub.services.pace import MAX_SECONDS_AHEAD, Pacer
from wxsub.stores.state import StateTable


@pytest.fixture
def state(state_table: Any) -> StateTable:
    return StateTable(state_table)


def used(state: StateTable, second: int) -> int:
    item = state.get(f"pace#{second}")
    return 0 if item is None else int(item["used"])


def pacer(state: Any, rate: int, clock: Clock) -> Pacer:
    return Pacer(state, rate, clock=clock, sleep=clock.sleep)


def test_a_batch_within_the_rate_goes_in_the_current_second(state: StateTable) -> None:
    clock = Clock(T0 + 0.2)

    waited = pacer(state, 10, clock).reserve(10)

    assert waited == 0
    assert clock.slept == []
    assert used(state, T0) == 10


def test_a_full_second_sends_the_batch_to_the_next_one(state: StateTable) -> None:
    clock = Clock(T0 + 0.25)
    pacing = pacer(state, 10, clock)
    pacing.reserve(8)

    waited = pacing.reserve(5)

    assert waited == pytest.approx(0.75)
    assert clock.slept == [pytest.approx(0.75)]
    assert clock.now == T0 + 1
    assert (used(state, T0), used(state, T0 + 1)) == (8, 5)


def test_the_rate_is_shared_by_every_worker(state: StateTable) -> None:
    clock = Clock(T0 + 0.5)
    pacer(state, 10, clock).reserve(7)

    waited = pacer(state, 10, clock).reserve(4)

    assert waited == pytest.approx(0.5)
    assert (used(state, T0), used(state, T0 + 1)) == (7, 4)


def test_a_batch_larger_than_the_rate_is_split_a_rate_per_second(state: StateTable) -> None:
    clock = Clock(T0 + 0.5)

    waited = pacer(state, 10, clock).reserve(25)

    assert waited == pytest.approx(1.5)
    assert clock.slept == [pytest.approx(0.5), pytest.approx(1.0)]
    assert [used(state, T0 + i) for i in range(4)] == [10, 10, 5, 0]


def test_a_second_with_some_room_left_takes_a_batch_that_fits(state: StateTable) -> None:
    clock = Clock(T0)
    pacing = pacer(state, 10, clock)
    pacing.reserve(6)
    pacing.reserve(6)  # does not fit beside the first: next second

    waited = pacing.reserve(4)  # fits beside the first, in the current (now the next) second

    assert [used(state, T0 + i) for i in range(3)] == [6, 10, 0]
    assert waited == 0


def test_a_rate_below_one_still_sends_one_a_second(state: StateTable) -> None:
    clock = Clock(T0)

    pacer(state, 0, clock).reserve(2)

    assert [used(state, T0 + i) for i in range(3)] == [1, 1, 0]
    assert clock.slept == [1.0]


class Full:
    """Buckets that never have room (every worker of the AppID is ahead of this one)."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    def take(self, pk: str, n: int, *, limit: int, ttl_seconds: int) -> bool:
        self.tried.append(pk)
        return False


def test_no_room_within_the_horizon_is_a_timeout_and_nothing_waits() -> None:
    clock = Clock(T0)
    buckets = Full()

    with pytest.raises(TimeoutError):
        Pacer(buckets, 10, clock=clock, sleep=clock.sleep).reserve(3)

    assert clock.slept == []
    assert buckets.tried == [f"pace#{T0 + i}" for i in range(MAX_SECONDS_AHEAD)]
