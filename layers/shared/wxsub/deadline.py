"""The time left in the current invocation, so no step starts that the function cannot finish.

Lambda stops a function at its ``Timeout`` wherever it is: a send stopped between WeChat's answer
and the outcome write would be lost. Each function binds the invocation's context once per event;
services ask :meth:`Deadline.allows` before each WeChat call, each token heal and each retry.
Unbound (unit tests, scripts), there is no limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol


class HasRemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends = math.inf

    def bind(self, context: HasRemainingTime | None) -> None:
        """Starts counting down from the context's remaining time (no context: no limit)."""
        if context is None:
            self._ends = math.inf
            return
        self._ends = self._clock() + context.get_remaining_time_in_millis() / 1000

    def left(self) -> float:
        """Seconds left in the invocation (``inf`` when unbound)."""
        return self._ends - self._clock()

    def allows(self, seconds: float) -> bool:
        """True when a step that may take ``seconds`` can still finish before the deadline."""
        return self.left() >= seconds
