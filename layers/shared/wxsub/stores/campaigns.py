"""Campaigns: one item per campaign, its explicit audience in parts, its progress as counters.

Items (key ``pk``):

* ``campaign#<id>``: the template, shared data, state, schedule, the expansion's position
  (``pages_done``, ``cursor``), and counters ``n_<count>`` (queued, sent, skipped, unknown,
  delivered, cancelled, held) and ``f_<reason>`` (failures by reason). Counters only ever ``ADD``,
  so workers update them concurrently without reading first. While a campaign is expanding,
  running or paused it carries ``active``, which puts it in the sparse ``by_active`` index.
* ``campaign#<id>#part#<n>``: up to :data:`PART_SIZE` explicit recipients (``openid`` and, for
  per-recipient data, ``data``), written once with the campaign.
* ``campaign#<id>#held#<n>``: recipients a worker took off the queue while the campaign was
  paused; resuming queues them again.
* ``key#<sha256>``: an Idempotency-Key bound to the campaign it created.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from wxsub import errors

SCHEDULED, EXPANDING, RUNNING, PAUSED, DONE, CANCELLED = (
    "scheduled",
    "expanding",
    "running",
    "paused",
    "done",
    "cancelled",
)
ACTIVE_STATES = frozenset({EXPANDING, RUNNING, PAUSED})
COUNTS = ("queued", "sent", "skipped", "unknown", "delivered", "cancelled", "held")
PART_SIZE = 500
TRANSACTION_ITEMS = 100  # DynamoDB's most per transaction


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    state: str
    template_id: str
    data: dict[str, str]
    audience: str  # "granted" or "list"
    parts: int
    created_at: int
    updated_at: int
    page: str | None = None
    miniprogram_state: str | None = None
    lang: str | None = None
    send_at: int | None = None
    window: dict[str, str] | None = None
    pause_reason: str | None = None
    expanded: bool = False
    pages_done: int = 0
    cursor: str | None = None
    held_parts: int = 0
    held_consumed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    template_alias: str | None = None

    def processed(self) -> int:
        """Queued messages that reached an end: sent, skipped, failed, unknown or cancelled."""
        c = self.counts
        return sum(c.get(k, 0) for k in ("sent", "skipped", "unknown", "cancelled")) + sum(
            self.failed.values()
        )

    def to_json(self) -> dict[str, Any]:
        counts = {name: self.counts.get(name, 0) for name in COUNTS}
        counts["failed"] = sum(self.failed.values())
        return {
            "campaign_id": self.campaign_id,
            "state": self.state,
            "template_id": self.template_id,
            "template_alias": self.template_alias,
            "audience": self.audience,
            "send_at": _iso(self.send_at),
            "window": self.window,
            "pause_reason": self.pause_reason,
            "expanded": self.expanded,
            "counts": counts,
            "failed": dict(self.failed),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


class CampaignStore:
    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._client = table.meta.client
        self._clock = clock

    def bind_key(self, key: str, fingerprint: str, campaign_id: str) -> str:
        """The campaign an Idempotency-Key created: ``campaign_id`` when this call binds it.

        The same key with another request is refused (422 ``idempotency_key_reused``).
        """
        pk = "key#" + hashlib.sha256(key.encode()).hexdigest()
        try:
            self._table.put_item(
                Item={"pk": pk, "campaign_id": campaign_id, "fingerprint": fingerprint},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            bound = self._item(pk) or {}
            if bound.get("fingerprint") != fingerprint:
                raise errors.IdempotencyKeyReused(
                    "this Idempotency-Key was already used with a different campaign"
                ) from None
            return str(bound["campaign_id"])
        return campaign_id

    def bound(self, key: str) -> tuple[str, str] | None:
        """The campaign id and request fingerprint an Idempotency-Key is bound to, if any."""
        item = self._item("key#" + hashlib.sha256(key.encode()).hexdigest())
        return None if item is None else (str(item["campaign_id"]), str(item["fingerprint"]))

    def create(self, campaign: Campaign, parts: Iterable[list[dict[str, Any]]]) -> bool:
        """Writes the parts, then the campaign; False when the campaign already exists."""
        for n, part in enumerate(parts):
            self._table.put_item(Item={"pk": _part(campaign.campaign_id, "part", n), "recipients": part})
        item = {
            "pk": _campaign(campaign.campaign_id),
            "campaign_id": campaign.campaign_id,
            "state": campaign.state,
            "template_id": campaign.template_id,
            "data": campaign.data,
            "audience": campaign.audience,
            "parts": campaign.parts,
            "created_at": campaign.created_at,
            "updated_at": campaign.updated_at,
            "pages_done": 0,
            "held_parts": 0,
            **{f"n_{name}": 0 for name in COUNTS},
        }
        optional = {
            "page": campaign.page,
            "miniprogram_state": campaign.miniprogram_state,
            "lang": campaign.lang,
            "send_at": campaign.send_at,
            "window": campaign.window,
            "template_alias": campaign.template_alias,
        }
        item.update({k: v for k, v in optional.items() if v is not None})
        if campaign.state in ACTIVE_STATES:
            item["active"] = "1"
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    def get(self, campaign_id: str) -> Campaign | None:
        item = self._item(_campaign(campaign_id))
        return None if item is None else _campaign_from(item)

    def part(self, campaign_id: str, kind: str, n: int) -> list[dict[str, Any]]:
        item = self._item(_part(campaign_id, kind, n)) or {}
        return [dict(r) for r in item.get("recipients", [])]

    def drop_part(self, campaign_id: str, kind: str, n: int) -> None:
        self._table.delete_item(Key={"pk": _part(campaign_id, kind, n)})

    def consume_held(self, campaign_id: str, n: int) -> None:
        """Held part ``n`` is queued again: its item goes, and later resumes start after it."""
        try:
            self._table.update_item(
                Key={"pk": _campaign(campaign_id)},
                UpdateExpression="SET held_consumed = :next",
                ConditionExpression="attribute_not_exists(held_consumed) OR held_consumed <= :n",
                ExpressionAttributeValues={":next": n + 1, ":n": n},
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
        self.drop_part(campaign_id, "held", n)

    def hold(self, campaign_id: str, recipients: list[dict[str, Any]]) -> bool:
        """Keeps recipients taken off the queue while paused, for :meth:`part` ``held`` on resume.

        False when the campaign is no longer paused (a resume already queued the held parts): the
        caller sends them instead.
        """
        try:
            answer = self._table.update_item(
                Key={"pk": _campaign(campaign_id)},
                UpdateExpression="ADD held_parts :one, n_held :n",
                ConditionExpression="#s = :paused",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":one": 1, ":n": len(recipients), ":paused": PAUSED},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        n = int(answer["Attributes"]["held_parts"]) - 1
        self._table.put_item(Item={"pk": _part(campaign_id, "held", n), "recipients": recipients})
        return True

    def transition(
        self, campaign_id: str, to: str, *, allowed: Iterable[str], reason: str | None = None
    ) -> Campaign | None:
        """Moves the campaign to ``to`` if it is in one of ``allowed``; None when it was not."""
        allowed = list(allowed)
        names = {"#s": "state"}
        values: dict[str, Any] = {":to": to, ":now": int(self._clock())}
        values.update({f":a{i}": state for i, state in enumerate(allowed)})
        sets = ["#s = :to", "updated_at = :now"]
        removes = []
        if to in ACTIVE_STATES:
            sets.append("active = :one")
            values[":one"] = "1"
        else:
            removes.append("active")
        if reason is not None:
            sets.append("pause_reason = :reason")
            values[":reason"] = reason
        else:
            removes.append("pause_reason")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            answer = self._table.update_item(
                Key={"pk": _campaign(campaign_id)},
                UpdateExpression=expression,
                ConditionExpression=f"#s IN ({', '.join(f':a{i}' for i in range(len(allowed)))})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return None
            raise
        return _campaign_from(answer["Attributes"])

    def page_done(self, campaign_id: str, page: int, cursor: str | None, queued: int, *, last: bool) -> bool:
        """Records page ``page`` of the expansion as done; False when it already was (a redelivery)."""
        values: dict[str, Any] = {":page": page, ":next": page + 1, ":n": queued, ":now": int(self._clock())}
        names: dict[str, str] = {}
        sets = ["pages_done = :next", "updated_at = :now"]
        if cursor is not None:  # CURSOR is one of DynamoDB's reserved words
            sets.append("#cursor = :cursor")
            names["#cursor"] = "cursor"
            values[":cursor"] = cursor
        if last:
            sets.append("expanded = :yes")
            values[":yes"] = True
        try:
            self._table.update_item(
                Key={"pk": _campaign(campaign_id)},
                UpdateExpression="SET " + ", ".join(sets) + " ADD n_queued :n",
                ConditionExpression="pages_done = :page",
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    def count(self, campaign_id: str, counts: Mapping[str, int], failed: Mapping[str, int]) -> Campaign:
        """Adds a batch's outcomes to the counters in one update; the campaign as it now stands."""
        update = self._adding(campaign_id, counts, failed)
        answer = self._table.update_item(**update, ReturnValues="ALL_NEW")
        return _campaign_from(answer["Attributes"])

    def add_counts(
        self, adds: Mapping[str, tuple[Mapping[str, int], Mapping[str, int]]], *, token: str, at: int
    ) -> None:
        """Adds counts to several campaigns at once, all or none, once per ``token``.

        DynamoDB answers a transaction repeated with the same ClientRequestToken within ten minutes
        without applying it again, so a retried batch is not counted twice; a repeat must be the
        very same request, so ``at`` (the new ``updated_at``) comes from the batch, not the clock.
        A campaign that is gone (deleted by hand) is left out rather than failing the others.
        """
        items = [
            {"Update": {"TableName": self._table.name, **self._adding(cid, counts, failed, now=at)}}
            for cid, (counts, failed) in sorted(adds.items())
        ]
        for start in range(0, len(items), TRANSACTION_ITEMS):
            chunk = items[start : start + TRANSACTION_ITEMS]
            chunk_token = f"{token[:32]}-{start // TRANSACTION_ITEMS}"
            try:
                self._client.transact_write_items(TransactItems=chunk, ClientRequestToken=chunk_token)
            except ClientError as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" not in reasons:
                    raise
                kept = [
                    item for item, why in zip(chunk, reasons, strict=False) if why != "ConditionalCheckFailed"
                ]
                if kept:
                    self._client.transact_write_items(
                        TransactItems=kept, ClientRequestToken=chunk_token + "k"
                    )

    def _adding(
        self, campaign_id: str, counts: Mapping[str, int], failed: Mapping[str, int], now: int | None = None
    ) -> dict[str, Any]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {":now": int(self._clock()) if now is None else now}
        adds = []
        for i, (name, n) in enumerate(
            [*((f"n_{k}", v) for k, v in counts.items()), *((f"f_{k}", v) for k, v in failed.items())]
        ):
            if n:
                names[f"#c{i}"] = name
                values[f":c{i}"] = n
                adds.append(f"#c{i} :c{i}")
        update: dict[str, Any] = {
            "Key": {"pk": _campaign(campaign_id)},
            "UpdateExpression": "SET updated_at = :now" + (" ADD " + ", ".join(adds) if adds else ""),
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": values,
        }
        if names:
            update["ExpressionAttributeNames"] = names
        return update

    def active(self) -> list[str]:
        """Ids of campaigns expanding, running or paused (the sparse index; eventually consistent)."""
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "IndexName": "by_active",
            "KeyConditionExpression": "active = :one",
            "ExpressionAttributeValues": {":one": "1"},
        }
        while True:
            page = self._table.query(**kwargs)
            ids.extend(str(i["pk"]).removeprefix("campaign#") for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return ids
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _item(self, pk: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item")
        return None if item is None else dict(item)


def _campaign(campaign_id: str) -> str:
    return f"campaign#{campaign_id}"


def _part(campaign_id: str, kind: str, n: int) -> str:
    return f"campaign#{campaign_id}#{kind}#{n}"


def _conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _iso(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _campaign_from(item: Mapping[str, Any]) -> Campaign:
    counts = {name: int(item.get(f"n_{name}", 0)) for name in COUNTS}
    failed = {str(k)[2:]: int(v) for k, v in item.items() if str(k).startswith("f_") and int(v)}
    window = item.get("window")
    return Campaign(
        campaign_id=str(item["campaign_id"]),
        state=str(item["state"]),
        template_id=str(item["template_id"]),
        data={str(k): str(v) for k, v in (item.get("data") or {}).items()},
        audience=str(item["audience"]),
        parts=int(item.get("parts", 0)),
        created_at=int(item["created_at"]),
        updated_at=int(item["updated_at"]),
        page=item.get("page"),
        miniprogram_state=item.get("miniprogram_state"),
        lang=item.get("lang"),
        send_at=_optional_int(item.get("send_at")),
        window={str(k): str(v) for k, v in window.items()} if isinstance(window, dict) else None,
        pause_reason=item.get("pause_reason"),
        expanded=bool(item.get("expanded", False)),
        pages_done=int(item.get("pages_done", 0)),
        cursor=item.get("cursor"),
        held_parts=int(item.get("held_parts", 0)),
        held_consumed=int(item.get("held_consumed", 0)),
        counts=counts,
        failed=failed,
        template_alias=item.get("template_alias"),
    )
