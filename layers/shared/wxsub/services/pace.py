"""The AppID's send rate, shared by every worker: tokens reserved per batch, per second, in DynamoDB.

Each second has a bucket (``pace#<epoch second>`` in the state table) that admits ``rate`` sends.
A worker reserves its whole batch with one conditional ``ADD``; a full second sends it to the next
one. One write per batch, not per message, so the pacing costs a tenth of a write per send at a
batch size of ten.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

BUCKET_TTL_SECONDS = 120
MAX_SECONDS_AHEAD = 30


class Buckets(Protocol):
    def take(self, pk: str, n: int, *, limit: int, ttl_seconds: int) -> bool: ...


class Pacer:
    def __init__(
        self,
        buckets: Buckets,
        rate: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._buckets = buckets
        self._rate = max(1, rate)
        self._clock = clock
        self._sleep = sleep

    def reserve(self, n: int) -> float:
        """Reserves ``n`` sends and waits for their second; returns the seconds waited.

        A batch larger than the rate is reserved a rate's worth per second. Raises
        ``TimeoutError`` when no second within :data:`MAX_SECONDS_AHEAD` has room.
        """
        waited = 0.0
        while n > 0:
            chunk = min(n, self._rate)
            second = self._slot(chunk)
            delay = second - self._clock()
            if delay > 0:
                self._sleep(delay)
                waited += delay
            n -= chunk
        return waited

    def _slot(self, n: int) -> int:
        start = int(self._clock())
        for second in range(start, start + MAX_SECONDS_AHEAD):
            if self._buckets.take(f"pace#{second}", n, limit=self._rate, ttl_seconds=BUCKET_TTL_SECONDS):
                return second
        raise TimeoutError(f"no room for {n} sends in the next {MAX_SECONDS_AHEAD} s at {self._rate}/s")
