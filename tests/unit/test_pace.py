"""Pacer: each worker keeps its share of the AppID's rate, so all of them together keep the rate."""

from __future__ import annotations

import threading

import pytest
from campaign_kit import T0, Clock

from wxsub.services.pace import MAX_WAIT_SECONDS, Pacer


def pacer(rate: int, clock: Clock, workers: int = 1) -> Pacer:
    return Pacer(rate, workers, clock=clock, sleep=clock.sleep)


def test_a_batch_within_the_share_goes_at_once() -> None:
    clock = Clock(T0)

    assert pacer(10, clock).reserve(10) == 0
    assert clock.slept == []


def test_a_batch_beyond_what_is_left_waits_for_the_bucket_to_refill() -> None:
    clock = Clock(T0)
    pacing = pacer(10, clock)
    pacing.reserve(8)

    waited = pacing.reserve(5)  # 2 left, 3 more come in 0.3 s

    assert waited == pytest.approx(0.3)
    assert clock.now == pytest.approx(T0 + 0.3)


def test_each_worker_holds_the_rate_over_the_concurrency() -> None:
    clock = Clock(T0)
    pacing = pacer(200, clock, workers=5)
    assert pacing.share == 40

    sends = 0
    while clock.now < T0 + 10:
        pacing.reserve(10)
        sends += 10
    # one second's share at the start, then 40 a second: never more than the share allows
    assert sends <= 40 + 40 * 10


def test_the_workers_together_stay_within_the_rate() -> None:
    """Five workers, each reserving batches of 10 as fast as they can, for 20 s of a shared clock."""
    clock = Clock(T0)
    workers = [pacer(200, clock, workers=5) for _ in range(5)]
    sent_by_second: dict[int, int] = {}
    for _ in range(400):
        for worker in workers:
            before = clock.now
            worker.reserve(10)
            second = int(max(before, clock.now) - T0)
            sent_by_second[second] = sent_by_second.get(second, 0) + 10
        if clock.now >= T0 + 20:
            break
    steady = [sent_by_second.get(s, 0) for s in range(1, 19)]
    assert max(steady) <= 200
    assert sum(steady) / len(steady) >= 180  # and they use it


def test_an_idle_worker_refills_only_to_one_second_of_its_share() -> None:
    clock = Clock(T0)
    pacing = pacer(10, clock)
    clock.now += 3600

    assert pacing.reserve(10) == 0
    assert pacing.reserve(10) == pytest.approx(1.0)


def test_a_rate_below_the_concurrency_still_sends_at_its_share() -> None:
    clock = Clock(T0)
    pacing = pacer(1, clock, workers=5)  # 0.2 a second for this worker

    pacing.reserve(1)
    waited = pacing.reserve(1)

    assert waited == pytest.approx(5.0)


def test_a_batch_that_would_wait_too_long_is_refused_and_reserves_nothing() -> None:
    clock = Clock(T0)
    pacing = pacer(1, clock)

    with pytest.raises(TimeoutError):
        pacing.reserve(int(MAX_WAIT_SECONDS) + 5)
    assert pacing.reserve(1) == 0  # the refused batch took nothing from the bucket


def test_threads_of_one_worker_share_its_bucket() -> None:
    clock = Clock(T0)
    lock = threading.Lock()

    def sleep(seconds: float) -> None:  # threads wait in turn on the shared hand-moved clock
        with lock:
            clock.slept.append(seconds)

    pacing = Pacer(10, 1, clock=clock, sleep=sleep)
    threads = [threading.Thread(target=pacing.reserve, args=(5,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 20 sends from a bucket of 10 at 10/s: the last five are due one second on
    assert sorted(clock.slept) == [pytest.approx(0.5), pytest.approx(1.0)]
