"""The grant ledger: how many messages each user still allows, per template.

One item per (openid, template_id) holds ``one_time`` (one-time sends left), ``long_term``,
``last_status`` and ``updated_at`` (from the newest event by its own time), and the pairing
state: the times of accepts not yet matched with the other source (``unpaired_push``,
``unpaired_report``) and a ``version`` for optimistic locking.

One accept reaches us twice at most: WeChat's popup push and the mini program's own report.
Neither is reliable alone (WeChat may not push when the popup resolved silently from a
remembered choice; a client may never report), so both count, and an accept from one source
cancels out against the oldest unpaired accept of the other within the pair window. Counting
too many heals on the next send (43101 zeroes the grant); counting too few loses a message,
so every doubt resolves towards counting.

Events (accept, reject, revoke) are read-modify-write cycles guarded by ``version``. The send
path (``take``, ``restore``, ``exhaust``) is single conditional updates that leave ``version``
alone, and events change ``one_time`` only with ``ADD``, so the two never overwrite each other.
Every read is strongly consistent except ``holders``, which reads a GSI.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from botocore.exceptions import ClientError

Source = Literal["push", "report"]

_UNPAIRED: dict[str, str] = {"push": "unpaired_push", "report": "unpaired_report"}
MAX_UNPAIRED = 50
MAX_ATTEMPTS = 40


def is_accept(status: str | None) -> bool:
    """``accept``, ``acceptWithAudio``, ``acceptWithAlert``, ``acceptWithForcePush`` … all accept."""
    return bool(status) and str(status).startswith("accept")


@dataclass(frozen=True)
class Grant:
    openid: str
    template_id: str
    one_time: int = 0
    long_term: bool = False
    last_status: str | None = None
    updated_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "openid": self.openid,
            "template_id": self.template_id,
            "one_time": self.one_time,
            "long_term": self.long_term,
            "last_status": self.last_status,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Taken:
    """A grant a send may go ahead on: the item's ``version`` then, and whether one was spent."""

    version: int
    spent: bool


class LedgerContention(RuntimeError):
    """An event kept losing the optimistic-lock race; the caller should let it be retried."""


@dataclass
class _Change:
    """What one event does to an item: the update is built from it in one place."""

    add: int = 0
    assign: dict[str, Any] | None = None
    status: str | None = None
    at: int | None = None
    expires_at: int | None = None  # the item expires then (a template no registry knows)
    keep: bool = False  # the item no longer expires


class GrantLedger:
    def __init__(self, table: Any, pair_window_seconds: int = 600) -> None:
        self._table = table
        self._window = pair_window_seconds

    def record_accept(
        self,
        openid: str,
        template_id: str,
        *,
        source: Source,
        at: int,
        long_term: bool,
        expires_at: int | None = None,
    ) -> Grant:
        """Counts one accept unless it pairs with the other source's accept; see the module docstring.

        A long-term accept turns ``long_term`` on and takes no part in pairing: it is idempotent.
        ``expires_at`` makes the grant expire then (a template the registry does not know); without
        it, a grant that was expiring is kept.
        """
        if long_term:
            turn_on = _Change(assign={"long_term": True}, status="accept", at=at)
            return self._apply(openid, template_id, lambda item: _expiring(turn_on, expires_at))
        return self._apply(
            openid, template_id, lambda item: _expiring(self._pair(item, _UNPAIRED[source], at), expires_at)
        )

    def record_reject(
        self, openid: str, template_id: str, *, source: Source, at: int, expires_at: int | None = None
    ) -> Grant:
        """A popup reject: one-time grants already earned stay; a long-term subscription ends."""
        reject = _Change(assign={"long_term": False}, status="reject", at=at)
        return self._apply(openid, template_id, lambda item: _expiring(reject, expires_at))

    def revoke(self, openid: str, template_id: str, *, at: int) -> Grant:
        """The user turned the template off (change event): nothing may be sent until they accept again.

        Unpaired accepts are forgotten too, so a fresh accept after the revoke counts even if
        its other half never arrives; a late echo of an accept made before the revoke then
        counts once too many, which the next send heals.
        """
        reset = {"one_time": 0, "long_term": False, "unpaired_push": [], "unpaired_report": []}
        return self._apply(openid, template_id, lambda item: _Change(assign=reset, status="reject", at=at))

    def take(self, openid: str, template_id: str, *, long_term: bool) -> Taken | None:
        """Spends one grant with a single conditional update; None when there is none.

        For a long-term template nothing is spent: the grant holds while ``long_term`` is on, or
        while one-time grants remain (accepts counted before the template was known to be
        long-term are still the user's consent). The answer carries the ``version`` the item had,
        so a 43101 can later zero the grant only if no accept arrived since. Each take leaves a
        mark of its own, so an SDK retry of a take whose answer was lost recognises it and spends
        nothing more.
        """
        if long_term:
            item = self._table.get_item(Key=_key(openid, template_id), ConsistentRead=True).get("Item")
            grant = _grant(item) if item else Grant(openid, template_id)
            if grant.long_term or grant.one_time > 0:
                return Taken(version=int((item or {}).get("version", 0)), spent=False)
            return None
        mark = secrets.token_hex(8)
        try:
            answer = self._table.update_item(
                Key=_key(openid, template_id),
                UpdateExpression="SET one_time = one_time - :one, last_take = :mark",
                ConditionExpression=(
                    "one_time > :zero AND (attribute_not_exists(last_take) OR last_take <> :mark)"
                ),
                ExpressionAttributeValues={":one": 1, ":zero": 0, ":mark": mark},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            old: dict[str, Any] = cast(dict[str, Any], exc.response).get("Item") or {}
            if _plain_value(old.get("last_take")) == mark:
                return Taken(version=int(_plain_value(old.get("version")) or 0), spent=True)
            return None
        return Taken(version=int(answer["Attributes"].get("version", 0)), spent=True)

    def give_back(self, openid: str, template_id: str) -> dict[str, Any]:
        """The update that returns one spent grant, for a transaction with the send's record."""
        return {
            "TableName": self._table.name,
            "Key": _key(openid, template_id),
            "UpdateExpression": "ADD one_time :one",
            "ExpressionAttributeValues": {":one": 1},
        }

    def exhaust(self, openid: str, template_id: str, seen: Taken) -> bool:
        """WeChat answered 43101: the user holds no grant, unless they accepted again since ``seen``.

        Every event moves ``version`` and ``take`` does not, so an unchanged version proves no
        accept was counted while the send was in flight. False when one was: it stays counted.
        """
        condition = "version = :seen" if seen.version else "attribute_not_exists(version)"
        values: dict[str, Any] = {":zero": 0, ":off": False}
        if seen.version:
            values[":seen"] = seen.version
        try:
            self._table.update_item(
                Key=_key(openid, template_id),
                UpdateExpression="SET one_time = :zero, long_term = :off",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    def get(self, openid: str, template_id: str) -> Grant:
        """The grant as it stands; a pair never seen reads as no grant."""
        item = self._table.get_item(Key=_key(openid, template_id), ConsistentRead=True).get("Item")
        return _grant(item) if item else Grant(openid, template_id)

    def for_user(self, openid: str) -> list[Grant]:
        """Every template the user ever answered, spent grants included, by template id."""
        grants: list[Grant] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "openid = :o",
            "ExpressionAttributeValues": {":o": openid},
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**kwargs)
            grants.extend(_grant(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return grants
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def holders(
        self, template_id: str, limit: int = 1000, start: str | None = None
    ) -> tuple[list[Grant], str | None]:
        """Users who may be sent ``template_id`` now, by openid, ``limit`` at a time.

        Pass the returned openid as ``start`` for the next page; None means there is no more.
        The GSI is eventually consistent, so a grant from the last second may be missing; a
        campaign still calls ``take`` per user, which reads the table itself.
        """
        found: list[Grant] = []
        kwargs: dict[str, Any] = {
            "IndexName": "by_template",
            "KeyConditionExpression": "template_id = :t",
            "FilterExpression": "one_time > :zero OR long_term = :on",
            "ExpressionAttributeValues": {":t": template_id, ":zero": 0, ":on": True},
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = {"template_id": template_id, "openid": start}
        while len(found) < limit:
            page = self._table.query(Limit=limit - len(found), **kwargs)
            found.extend(_grant(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found, None
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found, found[-1].openid

    def _pair(self, item: dict[str, Any], own: str, at: int) -> _Change:
        other = _UNPAIRED["report"] if own == _UNPAIRED["push"] else _UNPAIRED["push"]
        mine = self._recent(item.get(own, []), at)
        theirs = self._recent(item.get(other, []), at)
        partner = min((t for t in theirs if abs(t - at) <= self._window), default=None)
        if partner is not None:
            theirs.remove(partner)
            return _Change(assign={own: mine, other: theirs}, status="accept", at=at)
        mine = sorted([*mine, at])[-MAX_UNPAIRED:]
        return _Change(add=1, assign={own: mine, other: theirs}, status="accept", at=at)

    def _recent(self, times: list[Any], at: int) -> list[int]:
        """Accept times that could still pair with an accept at ``at``.

        Dropping an entry can only make a later accept count, never lose one.
        """
        return sorted(int(t) for t in times if int(t) >= at - self._window)

    def _apply(self, openid: str, template_id: str, change: Callable[[dict[str, Any]], _Change]) -> Grant:
        """Read, decide, write if nobody wrote in between; otherwise read again."""
        for attempt in range(MAX_ATTEMPTS):
            item = self._table.get_item(Key=_key(openid, template_id), ConsistentRead=True).get("Item") or {}
            try:
                written = self._write(openid, template_id, item, change(item))
            except ClientError as exc:
                if not _conditional_failure(exc):
                    raise
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # noqa: S311 (jitter, not security)
                continue
            return _grant(written)
        raise LedgerContention(f"grant {openid}/{template_id} changed {MAX_ATTEMPTS} times while updating")

    def _write(self, openid: str, template_id: str, item: dict[str, Any], change: _Change) -> dict[str, Any]:
        version = int(item.get("version", 0))
        values: dict[str, Any] = {":next": version + 1}
        assignments = ["version = :next"]
        for i, (name, value) in enumerate((change.assign or {}).items()):
            assignments.append(f"{name} = :s{i}")
            values[f":s{i}"] = value
        if change.status and change.at is not None and change.at >= int(item.get("updated_at", 0)):
            assignments += ["last_status = :status", "updated_at = :at"]
            values.update({":status": change.status, ":at": change.at})
        if change.expires_at is not None:
            assignments.append("expires_at = :expires")
            values[":expires"] = change.expires_at
        expression = "SET " + ", ".join(assignments)
        if change.add:
            expression += " ADD one_time :add"
            values[":add"] = change.add
        if change.keep:
            expression += " REMOVE expires_at"
        if version:
            condition, values[":version"] = "version = :version", version
        else:
            condition = "attribute_not_exists(version)"
        answer = self._table.update_item(
            Key=_key(openid, template_id),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return dict(answer["Attributes"])


def _key(openid: str, template_id: str) -> dict[str, str]:
    return {"openid": openid, "template_id": template_id}


def _plain_value(value: Any) -> Any:
    """A low-level DynamoDB attribute (``{"S": ...}``, ``{"N": ...}``) as a Python value."""
    if isinstance(value, dict) and len(value) == 1:
        kind, raw = next(iter(value.items()))
        return int(raw) if kind == "N" else raw
    return value


def _conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def _grant(item: dict[str, Any]) -> Grant:
    updated_at = item.get("updated_at")
    return Grant(
        openid=str(item["openid"]),
        template_id=str(item["template_id"]),
        one_time=max(0, int(item.get("one_time", 0))),
        long_term=bool(item.get("long_term", False)),
        last_status=item.get("last_status"),
        updated_at=None if updated_at is None else int(updated_at),
    )


def _expiring(change: _Change, expires_at: int | None) -> _Change:
    return replace(change, expires_at=expires_at, keep=expires_at is None)
