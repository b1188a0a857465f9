"""The AppID's send rate, kept by each campaign worker on its own, with no shared writes.

Lambda runs at most ``SendWorkerConcurrency`` SendWorker invocations at once (the SQS event
source's ``MaximumConcurrency``), so each worker holds a share of ``rate / concurrency`` sends a
second in a token bucket of one second's share, and the workers together stay within the rate.
A batch reserves its sends at once and waits until the bucket covers them; reservations beyond
the bucket queue up behind each other. This costs no request at all, where a shared counter cost
one DynamoDB write a batch (a tenth of a write per message). Its one looseness: a worker that was
idle starts with a full bucket, so when Lambda swaps one warm worker for another mid-second, that
second can carry one extra share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_WAIT_SECONDS = 30.0


class Pacer:
    def __init__(
        self,
        rate: int,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.share = max(1, rate) / max(1, workers)  # sends a second for this worker
        self._capacity = max(1.0, self.share)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._last = clock()

    def reserve(self, n: int) -> float:
        """Reserves ``n`` sends and waits until they are due; returns the seconds waited.

        Raises ``TimeoutError`` (reserving nothing) when they would be due more than
        :data:`MAX_WAIT_SECONDS` from now.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.share)
            self._last = now
            wait = max(0.0, (n - self._tokens) / self.share)
            if wait > MAX_WAIT_SECONDS:
                raise TimeoutError(f"{n} sends at {self.share:g}/s for this worker would wait {wait:.0f} s")
            self._tokens -= n
        if wait:
            self._sleep(wait)
        return wait
