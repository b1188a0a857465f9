"""Deadline: the time left in the invocation, so no step starts that the function cannot finish."""

from __future__ import annotations

import math

from wxsub.deadline import Deadline


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_an_unbound_deadline_never_runs_out() -> None:
    deadline = Deadline(Clock())

    assert deadline.left() == math.inf
    assert deadline.allows(10**9)


def test_a_bound_deadline_counts_down_from_the_contexts_remaining_time() -> None:
    clock = Clock()
    deadline = Deadline(clock)

    deadline.bind(Context(20_000))
    clock.now += 9

    assert deadline.left() == 11
    assert deadline.allows(11)
    assert not deadline.allows(11.5)


def test_each_invocation_binds_its_own_context() -> None:
    clock = Clock()
    deadline = Deadline(clock)
    deadline.bind(Context(1_000))
    clock.now += 1

    deadline.bind(Context(15_000))

    assert deadline.left() == 15


def test_binding_no_context_removes_the_limit() -> None:
    deadline = Deadline(Clock())
    deadline.bind(Context(0))

    deadline.bind(None)

    assert deadline.allows(3600)
