"""Injected faults: parsing a fault spec, choosing the fault for a call, and broken answers.

Count faults apply first, in the order they were added. Rate faults on a path share one
draw per call: the draw in [0, 1) picks the fault whose slice holds it, slices laid out in
the order the faults were added, or no fault past the last slice.
"""

from __future__ import annotations

import random
from typing import Any

from sandbox.model import Fault
from sandbox.wire import Reply

PROXY_502 = "proxy_502"
PROXY_504 = "proxy_504"
TRUNCATED = "truncated"
GARBLED = "garbled"
ANSWERS = (PROXY_502, PROXY_504, TRUNCATED, GARBLED)
FIELDS = ("path", "errcode", "hang", "deliver", "count", "answer", "rate", "seed")

_PROXY_PAGES = {PROXY_502: (502, "502 Bad Gateway"), PROXY_504: (504, "504 Gateway Time-out")}
_HTML = "text/html"
_RATE_SLACK = 1e-9


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_fault(body: dict[str, Any]) -> Fault:
    """The fault ``body`` describes; ValueError naming the first bad field."""
    unknown = sorted(set(body) - set(FIELDS))
    _need(not unknown, f"unknown fault fields: {', '.join(unknown)}")
    path, errcode, answer = body.get("path"), body.get("errcode"), body.get("answer")
    hang, deliver = body.get("hang", 0), body.get("deliver", False)
    _need(isinstance(path, str) and path.startswith("/"), "path must start with /")
    _need(errcode is None or _is_int(errcode), "errcode must be an integer")
    _need(answer is None or answer in ANSWERS, f"answer must be one of {', '.join(ANSWERS)}")
    _need(errcode is None or answer is None, "errcode and answer exclude each other")
    _need(_is_number(hang) and hang >= 0, "hang must be a number of seconds >= 0")
    _need(errcode is not None or answer is not None or hang > 0, "give errcode, answer and/or hang")
    _need(isinstance(deliver, bool), "deliver must be a boolean")
    rate, count, seed = _schedule(body)
    return Fault(str(path), count, errcode, float(hang), deliver, answer, rate, seed)


def _schedule(body: dict[str, Any]) -> tuple[float | None, int | None, int | str | None]:
    """(rate, count, seed): a count fault fires once by default, a rate fault until cleared."""
    rate, count, seed = body.get("rate"), body.get("count"), body.get("seed")
    _need(rate is None or (_is_number(rate) and 0 < rate <= 1), "rate must be a number in (0, 1]")
    _need(count is None or (_is_int(count) and count >= 1), "count must be an integer >= 1")
    _need(seed is None or rate is not None, "seed needs rate")
    _need(seed is None or _is_int(seed) or isinstance(seed, str), "seed must be an integer or a string")
    if rate is None:
        return None, 1 if count is None else count, None
    return float(rate), count, seed


class FaultBook:
    """The faults in force, and one random generator per path for the rate draws."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self._draws: dict[str, random.Random] = {}

    def add(self, fault: Fault) -> None:
        """Add ``fault``; ValueError when the rates on its path would add up to more than 1."""
        if fault.rate is not None:
            total = sum(f.rate for f in self.faults if f.path == fault.path and f.rate is not None)
            _need(total + fault.rate <= 1 + _RATE_SLACK, f"rate: the rates on {fault.path} exceed 1")
            if fault.seed is not None:
                self._draws[fault.path] = random.Random(fault.seed)
        self.faults.append(fault)

    def clear(self) -> None:
        self.faults.clear()
        self._draws.clear()

    def take(self, path: str) -> Fault | None:
        """The fault for this call to ``path``, spending one of its count; None for a clean call."""
        fault = next((f for f in self.faults if f.path == path and f.rate is None), None)
        if fault is None:
            fault = self._draw(path)
        if fault is not None and fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.faults = [f for f in self.faults if f is not fault]
        return fault

    def _draw(self, path: str) -> Fault | None:
        rated = [(f, f.rate) for f in self.faults if f.path == path and f.rate is not None]
        if not rated:
            return None
        point = self._draws.setdefault(path, random.Random()).random()
        edge = 0.0
        for fault, rate in rated:
            edge += rate
            if point < edge:
                return fault
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self.faults]


def lost_answer(kind: str, real: Reply) -> Reply:
    """What the client gets instead of ``real`` (a WeChat JSON answer) for the answer fault ``kind``.

    A proxy page replaces it; ``truncated`` announces all of ``real`` but writes half of it and
    closes the connection; ``garbled`` is a complete answer holding half of it, which is not JSON.
    """
    if kind in _PROXY_PAGES:
        status, title = _PROXY_PAGES[kind]
        return Reply(status, _proxy_page(title), _HTML)
    half = len(real.body) // 2
    if kind == TRUNCATED:
        return Reply(200, real.body, real.content_type, cut=half)
    return Reply(200, real.body[:half], real.content_type)


def _proxy_page(title: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode("ascii")
