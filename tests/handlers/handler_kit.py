"""What the handler tests share: loading ``events/`` and the shape of the ``invoke`` fixture."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"

Invoke = Callable[..., Any]


def load_event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))
