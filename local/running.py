"""Where a running ``make local`` listens, so ``make demo`` in another terminal can drive it.

``python -m local`` writes ``<tmp>/wxsub-local-<port>.json`` with its URLs, its pid and the access
key id the IAM routes accept (never a secret), and removes it when it stops.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from local.stack import LocalStack


def record_path(port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"wxsub-local-{port}.json"


def announce(stack: LocalStack, port: int) -> Path:
    path = record_path(port)
    record = {
        "api_url": stack.api_url,
        "sandbox_url": stack.sandbox_url,
        "aws_endpoint": stack.aws_endpoint,
        "access_key": stack.credentials[0],
        "region": stack.region,
        "pid": os.getpid(),
    }
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def find(port: int) -> dict[str, Any] | None:
    """The record of the stack listening on ``port``, if its process is alive and the port answers."""
    try:
        record: dict[str, Any] = json.loads(record_path(port).read_text(encoding="utf-8"))
        os.kill(int(record["pid"]), 0)
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return record
    except (OSError, ValueError, KeyError):
        return None
