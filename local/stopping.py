"""Stopping ``python -m local`` on SIGINT or SIGTERM without raising inside whatever was running."""

from __future__ import annotations

import time
from types import FrameType


class StopRequest:
    """Remembers that SIGINT or SIGTERM arrived; the main thread stops the stack when it next looks.

    Raising from a signal handler lands the exception wherever the main thread happens to be,
    inside a lock's acquire or release included (``RuntimeError: release unlocked lock``), so the
    handler only sets a flag; a second signal while stopping is harmless.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def wait(self) -> None:
        while not self.requested:
            time.sleep(0.2)  # no lock held, and no race between the check and the wait
