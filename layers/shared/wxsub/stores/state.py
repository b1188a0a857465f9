"""The state table: short-lived records keyed by ``pk`` with a TTL.

It holds login replay records (keyed by a hash of the code, never the code), single-flight
leases, and rate-limit markers. DynamoDB's TTL deletes lazily, so every read also checks
``expires_at`` itself.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError


def _now() -> int:
    return int(time.time())


class StateTable:
    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, pk: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item")
        if item is None or int(item.get("expires_at", 0)) <= _now():
            return None
        return dict(item)

    def put_new(self, pk: str, ttl_seconds: int, **attributes: Any) -> bool:
        """Writes the record unless a live one exists; True when this call wrote it."""
        now = _now()
        try:
            self._table.put_item(
                Item={"pk": pk, "expires_at": now + ttl_seconds, **attributes},
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put(self, pk: str, ttl_seconds: int, **attributes: Any) -> None:
        self._table.put_item(Item={"pk": pk, "expires_at": _now() + ttl_seconds, **attributes})

    def delete(self, pk: str) -> None:
        self._table.delete_item(Key={"pk": pk})

    def acquire(self, name: str, ttl_seconds: int) -> bool:
        """A lease: at most one holder until released or ``ttl_seconds`` pass."""
        return self.put_new(f"lease#{name}", ttl_seconds)

    def release(self, name: str) -> None:
        self.delete(f"lease#{name}")

    def renew(self, name: str, ttl_seconds: int) -> None:
        """Holds the lease for ``ttl_seconds`` from now, whoever held it."""
        self.put(f"lease#{name}", ttl_seconds)

    def count(self, pk: str, *, ttl_seconds: int, limit: int) -> bool:
        """Adds one to a counter that lives ``ttl_seconds``; False once it would pass ``limit``."""
        return self.tally(pk, ttl_seconds=ttl_seconds, limit=limit) is not None

    def tally(self, pk: str, *, ttl_seconds: int, limit: int) -> int | None:
        """:meth:`count`, answering the counter's new value (None once it would pass ``limit``)."""
        try:
            answer = self._table.update_item(
                Key={"pk": pk},
                UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)",
                ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                ExpressionAttributeValues={":one": 1, ":exp": _now() + ttl_seconds, ":limit": limit},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return int(answer["Attributes"]["hits"])

    def untally(self, pk: str) -> None:
        """Takes back one :meth:`tally` that turned out to spend nothing (never below zero)."""
        try:
            self._table.update_item(
                Key={"pk": pk},
                UpdateExpression="ADD hits :minus",
                ConditionExpression="hits > :zero",
                ExpressionAttributeValues={":minus": -1, ":zero": 0},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def take(self, pk: str, n: int, *, limit: int, ttl_seconds: int) -> bool:
        """Adds ``n`` to a counter that lives ``ttl_seconds`` unless it would pass ``limit``."""
        try:
            self._table.update_item(
                Key={"pk": pk},
                UpdateExpression="ADD used :n SET expires_at = if_not_exists(expires_at, :exp)",
                ConditionExpression="attribute_not_exists(used) OR used <= :room",
                ExpressionAttributeValues={":n": n, ":exp": _now() + ttl_seconds, ":room": limit - n},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
