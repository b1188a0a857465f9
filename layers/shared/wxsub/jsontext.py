"""What makes parsed JSON unfit to handle, for the body guard and for decrypted pushes alike.

Two things pass ``json.loads`` yet break what comes after it: nesting deeper than any route
needs (every later walk pays for it), and text holding a lone surrogate (``"\\ud800"`` escaped
in JSON), which no UTF-8 encoder can write, so it would fail at the first log line or store.
The walk is iterative and stops at the first problem, so it costs no recursion and no copy.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32
TOO_DEEP = f"the JSON is nested deeper than {MAX_DEPTH} levels"
NOT_UNICODE = "the body holds text that is not valid Unicode"


def problem(value: Any) -> str | None:
    """Why ``value`` (parsed JSON) is refused, or None."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return NOT_UNICODE
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(item, dict):
            for key, child in item.items():
                if not _encodable(key):
                    return NOT_UNICODE
                pending.append((child, depth + 1))
        else:
            pending.extend((child, depth + 1) for child in item)
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
