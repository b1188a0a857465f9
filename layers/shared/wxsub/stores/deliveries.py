"""Deliveries: one item per send, keyed by our ``message_id``, written before WeChat is called.

A send's life: ``begin`` writes it as ``sending`` with a conditional put, stamped before the call
(the write-ahead record: an attempt that finds it never calls WeChat again); then ``finish``
makes it ``sent`` (WeChat answered with a msgid), ``failed`` (refused) or ``unknown`` (the request
went out and no clean answer came back), or ``release`` deletes it when nothing went out. WeChat's
sent event later makes a ``sent`` or ``unknown`` one ``delivered`` or ``failed``. Each keeps a
summary of the request (openid, template, page, state, lang, the data keys but never their
values), the answer the caller got, and expires after ``ttl_seconds``.

Unsettled sends (``sending`` and ``unknown``) carry an ``unsettled`` shard name, which puts them in
the sparse ``by_unsettled`` index (shard → ``created_at``); settling removes it. The sweep queries
that index for old ones instead of scanning the table, so its cost follows the unsettled sends,
never the table's size. Sixteen shards keep the index's writes off a single partition.

A sent event names a msgid, and ``finish`` records it on the delivery, so the event finds its
delivery through the ``by_msgid`` GSI and settles it: one read and one write, the least a receipt
can cost. WeChat's event can overtake the ``finish`` it reports (or the GSI can lag behind it); an
event that finds no delivery parks on a small rendezvous item, ``msgid#<msgid>`` (``status =
pending``, one day, in the unsettled index under its own shards), and looks again a few times
within its invocation (:data:`RECHECK_SECONDS`). What it still misses, the sweep settles
(:meth:`Deliveries.settle_parked`). A parked event that pairs with a delivery records the owner on
the rendezvous item in the same transaction, so it settles one delivery only.

An event whose msgid nobody recorded, even after those looks, settles the oldest ``unknown``
delivery for the same openid and template created before it (``skew_seconds`` of clock difference
allowed) and at most the settle window earlier: a send written after the event cannot be what the
event reports. Those are found through the ``by_recipient`` GSI, which is eventually consistent:
an event and an ``unknown`` written within the same instant can miss each other, and both wait for
the sweep to try again. The settling itself is one transaction (the delivery must still be
``unknown``, the event must still be parked), so one event never settles two deliveries and one
delivery never takes two events.

An Idempotency-Key is bound to one ``message_id`` for a day by a ``key#<sha256>`` item holding a
fingerprint of the request, so a retry finds the first attempt's record whatever happened to the
idempotency layer's own record.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from botocore.exceptions import ClientError

from wxsub import errors

SENDING, SENT, DELIVERED, FAILED = "sending", "sent", "delivered", "failed"
UNKNOWN, PENDING = "unknown", "pending"
PENDING_TTL_SECONDS = 86400
KEY_BINDING_SECONDS = 86400
TRANSACTION_ATTEMPTS = 3
UNSETTLED_SHARDS = 16
SKEW_SECONDS = 60
ONE_TIME_GRANT = "one_time"
# how long an unmatched event waits, within its own invocation, for the send it reports to be
# recorded: a send's outcome is written within milliseconds of WeChat's answer, and the GSI
# follows within a second
RECHECK_SECONDS = (0.0, 0.2, 1.0)
PARKED_GRACE_SECONDS = 30  # the sweep leaves younger parked events to their own rechecks
_UNPARK = "REMOVE event, #s, recipient, created_at, unsettled"
_SETTLE = (
    "SET #s = :final, msgid = :msgid, errcode = :code, error_status = :es, updated_at = :now REMOVE unsettled"
)

Pairing = Literal["paired", "delivery_taken", "event_taken", "busy"]


@dataclass(frozen=True)
class Delivery:
    message_id: str
    status: str
    openid: str
    template_id: str
    msgid: str | None
    errcode: int | None
    error_status: str | None
    created_at: int
    updated_at: int
    answer: dict[str, Any] | None = None
    grant: str | None = None
    campaign_id: str | None = None
    queued_as: str | None = None
    template_alias: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "openid": self.openid,
            "template_id": self.template_id,
            "template_alias": self.template_alias,
            "msgid": self.msgid,
            "errcode": self.errcode,
            "error_status": self.error_status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "campaign_id": self.campaign_id,
        }


@dataclass(frozen=True)
class SentEvent:
    openid: str
    template_id: str
    msgid: str
    error_code: int
    error_status: str
    at: int

    @property
    def outcome(self) -> str:
        return DELIVERED if self.error_code == 0 else FAILED

    def item(self) -> dict[str, Any]:
        return {
            "openid": self.openid,
            "template_id": self.template_id,
            "msgid": self.msgid,
            "error_code": self.error_code,
            "error_status": self.error_status,
            "at": self.at,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> SentEvent:
        return cls(
            openid=str(item["openid"]),
            template_id=str(item["template_id"]),
            msgid=str(item["msgid"]),
            error_code=int(item["error_code"]),
            error_status=str(item["error_status"]),
            at=int(item["at"]),
        )


class Deliveries:
    def __init__(
        self,
        table: Any,
        ttl_seconds: int = 30 * 86400,
        settle_window_seconds: int = 600,
        clock: Callable[[], float] = time.time,
        skew_seconds: int = SKEW_SECONDS,
        on_settled: Callable[[Delivery], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        recheck_seconds: tuple[float, ...] = RECHECK_SECONDS,
    ) -> None:
        self._on_settled = on_settled
        self._sleep = sleep
        self._rechecks = recheck_seconds
        self._table = table
        self._client = table.meta.client  # a resource's client: it takes and gives plain Python values
        self._ttl = ttl_seconds
        self._window = settle_window_seconds
        self._skew = skew_seconds
        self._clock = clock

    # -- the write-ahead record -------------------------------------------------------------

    def bind(self, key: str, fingerprint: str, new_id: Callable[[], str]) -> str:
        """The message_id of an Idempotency-Key: the one bound within a day, else a new one.

        Raises ``IdempotencyKeyReused`` when the key was bound to a request with another fingerprint.
        """
        pk = _key_item(key)
        now = int(self._clock())
        message_id = new_id()
        try:
            self._table.put_item(
                Item={
                    "message_id": pk,
                    "kind": "key",
                    "delivery": message_id,
                    "fingerprint": fingerprint,
                    "expires_at": now + KEY_BINDING_SECONDS,
                },
                ConditionExpression="attribute_not_exists(message_id) OR expires_at <= :now",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            bound = self._item(pk) or {}
            if bound.get("fingerprint") != fingerprint:
                raise errors.IdempotencyKeyReused(
                    "this Idempotency-Key was already used with a different request body"
                ) from None
            return str(bound["delivery"])
        return message_id

    def bound(self, key: str) -> str | None:
        """The message_id an Idempotency-Key is bound to now, if any."""
        item = self._item(_key_item(key))
        if item is None or int(item.get("expires_at", 0)) <= int(self._clock()):
            return None
        return str(item["delivery"])

    def begin(self, message_id: str, request: Any, *, one_time: bool) -> Delivery | None:
        """Writes the ``sending`` record; None when this call wrote it, else the record found.

        ``one_time`` says a one-time grant is about to be taken for it, so whoever settles the
        record without an answer gives the grant back. The put carries a token of its own: a put
        that botocore retried after a lost answer recognises its own record.
        """
        attempt = secrets.token_hex(8)
        item = self._summary(message_id, request, attempt, one_time)
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(message_id)")
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            found = self._item(message_id)
            if found is None:  # released between the put and the read: that attempt sent nothing
                return self.begin(message_id, request, one_time=one_time)
            return None if found.get("attempt") == attempt else _delivery(found)
        return None

    def without_grant(self, message_id: str) -> None:
        """The send goes ahead without a one-time grant (``ledger: ignore``): nothing to give back."""
        self._table.update_item(
            Key={"message_id": message_id},
            UpdateExpression="REMOVE #g",
            ExpressionAttributeNames={"#g": "grant"},
        )

    def finish(
        self,
        message_id: str,
        status: str,
        answer: Mapping[str, Any],
        *,
        msgid: str | None = None,
        errcode: int | None = None,
        give_back: Mapping[str, Any] | None = None,
    ) -> bool:
        """``sending`` → ``status`` with the caller's answer; False when it was no longer sending.

        ``unknown`` stays in the unsettled index. ``give_back`` (a grant update from the ledger) is
        applied in the same transaction, so a refused send's grant returns exactly once.
        An ``unknown`` one takes an event parked before it, if one can report it.
        """
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":status": status,
            ":answer": _storable(answer),
            ":now": int(self._clock()),
            ":sending": SENDING,
        }
        sets = ["#s = :status", "answer = :answer", "updated_at = :now"]
        if msgid:
            sets.append("msgid = :msgid")
            values[":msgid"] = msgid
        if errcode is not None:
            sets.append("errcode = :errcode")
            values[":errcode"] = errcode
        removes = []
        if status != UNKNOWN:  # an unknown send keeps its grant until the sweep or an event settles it
            names["#g"] = "grant"
            removes = ["#g", "unsettled"]
        update = {
            "Key": {"message_id": message_id},
            "UpdateExpression": f"SET {', '.join(sets)}"
            + (f" REMOVE {', '.join(removes)}" if removes else ""),
            "ConditionExpression": "#s = :sending",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if not self._update_with(update, give_back):
            return False
        if status == UNKNOWN:
            item = self._item(message_id)
            if item is not None:
                self._match_parked(item)
        return True

    def release(self, message_id: str, give_back: Mapping[str, Any] | None = None) -> bool:
        """Deletes a ``sending`` record that provably never reached WeChat, giving the grant back.

        False when the record was no longer ``sending``.
        """
        delete = {
            "Key": {"message_id": message_id},
            "ConditionExpression": "#s = :sending",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":sending": SENDING},
        }
        if give_back is None:
            try:
                self._table.delete_item(**delete)
            except ClientError as exc:
                if _conditional_failure(exc):
                    return False
                raise
            return True
        return self._transact_first({"Delete": {"TableName": self._table.name, **delete}}, give_back)

    # -- reading ------------------------------------------------------------------------------

    def get(self, message_id: str) -> Delivery | None:
        item = self._item(message_id)
        return _delivery(item) if item and "kind" not in item else None

    # -- sent events -------------------------------------------------------------------------

    def apply_sent_event(
        self, *, openid: str, template_id: str, msgid: str, error_code: int, error_status: str, at: int
    ) -> Delivery | None:
        """Settles the delivery a sent event belongs to; None while no delivery can claim it.

        Applying the same event again changes nothing and answers the same delivery.
        """
        event = SentEvent(openid, template_id, str(msgid), int(error_code), error_status, int(at))
        recorded = self._recorded_with(event.msgid)
        if recorded is not None:
            return self._settle(recorded, event)
        owner = self._park(event)
        if owner is not None:
            return self._settle(owner, event)
        for pause in self._rechecks:
            if pause:
                self._sleep(pause)
            recorded = self._recorded_with(event.msgid)
            if recorded is not None:
                return self._claim(recorded, event)
        for candidate in self._recipient_items(
            openid, template_id, UNKNOWN, since=event.at - self._window, until=event.at + self._skew
        ):
            pairing = self._pair(str(candidate["message_id"]), event)
            if pairing == "paired":
                return self._settled(self.get(str(candidate["message_id"])))
            if pairing in ("event_taken", "busy"):
                return self._owner_of(event.msgid)
        return None

    # -- the sweep ---------------------------------------------------------------------------

    def unsettled(self, older_than: int) -> Iterator[Delivery]:
        """``sending`` and ``unknown`` deliveries created before ``older_than``, oldest first per shard.

        Reads the sparse ``by_unsettled`` index page by page, so a caller may stop at any point
        and the next sweep starts again from the oldest that are left.
        """
        for shard in range(UNSETTLED_SHARDS):
            kwargs: dict[str, Any] = {
                "IndexName": "by_unsettled",
                "KeyConditionExpression": "unsettled = :shard AND created_at < :before",
                "ExpressionAttributeValues": {":shard": _shard_name(shard), ":before": older_than},
            }
            while True:
                page = self._table.query(**kwargs)
                for item in page.get("Items", []):
                    if item.get("status") in (SENDING, UNKNOWN):
                        yield _delivery(item)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def settle_parked(self, older_than: int) -> int:
        """Matches parked events whose msgid is recorded by now to it; returns how many it matched.

        These are events that overtook the ``finish`` they report by more than their rechecks (or
        met a lagging GSI). Only events of the settle window before ``older_than`` are tried again:
        an older one reports no send of ours, and expires.
        """
        settled = 0
        for shard in range(UNSETTLED_SHARDS):
            kwargs: dict[str, Any] = {
                "IndexName": "by_unsettled",
                "KeyConditionExpression": "unsettled = :shard AND created_at BETWEEN :since AND :before",
                "ExpressionAttributeValues": {
                    ":shard": _parked_shard_name(shard),
                    ":since": older_than - self._window,
                    ":before": older_than,
                },
            }
            while True:
                page = self._table.query(**kwargs)
                for item in page.get("Items", []):
                    if "event" not in item:
                        continue
                    event = SentEvent.from_item(item["event"])
                    recorded = self._recorded_with(event.msgid)
                    if recorded is not None and self._claim(recorded, event) is not None:
                        settled += 1
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return settled

    def retry_match(self, delivery: Delivery) -> bool:
        """One more try against parked events for an old unsettled send; True once it is settled.

        A ``sending`` record this old lost its writer (the function stopped after writing it), so
        it is turned ``unknown`` first: from here it is settled like any send without an answer.
        """
        if delivery.status == SENDING and not self._abandon(delivery.message_id):
            return True
        item = self._item(delivery.message_id)
        if item is None or item.get("status") != UNKNOWN:
            return True
        return self._match_parked(item)

    def give_up(self, message_id: str, reason: str, give_back: Mapping[str, Any] | None = None) -> bool:
        """``unknown`` → ``failed`` with ``reason`` (and the grant back); False when settled meanwhile."""
        update = {
            "Key": {"message_id": message_id},
            "UpdateExpression": "SET #s = :failed, error_status = :reason, updated_at = :now "
            "REMOVE unsettled, #g",
            "ConditionExpression": "#s = :unknown",
            "ExpressionAttributeNames": {"#s": "status", "#g": "grant"},
            "ExpressionAttributeValues": {
                ":failed": FAILED,
                ":reason": reason,
                ":now": int(self._clock()),
                ":unknown": UNKNOWN,
            },
        }
        if not self._update_with(update, give_back):
            return False
        self._settled(self.get(message_id))
        return True

    # -- internals ---------------------------------------------------------------------------

    def _abandon(self, message_id: str) -> bool:
        """``sending`` → ``unknown``; False when the record is no longer ``sending``."""
        try:
            self._table.update_item(
                Key={"message_id": message_id},
                UpdateExpression="SET #s = :unknown, updated_at = :now",
                ConditionExpression="#s = :sending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":unknown": UNKNOWN,
                    ":sending": SENDING,
                    ":now": int(self._clock()),
                },
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    def _update_with(self, update: dict[str, Any], give_back: Mapping[str, Any] | None) -> bool:
        """One conditional update of a delivery, with a grant update in the same transaction."""
        if give_back is None:
            try:
                self._table.update_item(**update)
            except ClientError as exc:
                if _conditional_failure(exc):
                    return False
                raise
            return True
        return self._transact_first({"Update": {"TableName": self._table.name, **update}}, give_back)

    def _transact_first(self, first: dict[str, Any], give_back: Mapping[str, Any]) -> bool:
        """Runs ``first`` and ``give_back`` together; False when ``first``'s condition failed."""
        for _ in range(TRANSACTION_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=[first, {"Update": dict(give_back)}])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons[:1] == ["ConditionalCheckFailed"]:
                    return False
                continue
            return True
        raise RuntimeError(f"delivery {first} kept colliding with other transactions")

    def _summary(self, message_id: str, request: Any, attempt: str, one_time: bool) -> dict[str, Any]:
        now = int(self._clock())
        item: dict[str, Any] = {
            "message_id": message_id,
            "status": SENDING,
            "attempt": attempt,
            "unsettled": _shard_name(zlib.crc32(message_id.encode()) % UNSETTLED_SHARDS),
            "openid": request.openid,
            "template_id": request.template_id,
            "recipient": _recipient(request.openid, request.template_id),
            "data_keys": sorted(request.data),
            "created_at": now,
            "updated_at": now,
            "expires_at": now + self._ttl,
        }
        if one_time:
            item["grant"] = ONE_TIME_GRANT
        optional = {
            "page": getattr(request, "page", None),
            "state": getattr(request, "miniprogram_state", None),
            "lang": getattr(request, "lang", None),
            "campaign_id": getattr(request, "campaign_id", None),
            "queued_as": getattr(request, "queued_as", None),
            "template_alias": getattr(request, "template_alias", None),
        }
        item.update({name: value for name, value in optional.items() if value is not None})
        return item

    def _claim(self, message_id: str, event: SentEvent) -> Delivery | None:
        """A parked event settles the delivery its msgid names, and leaves the unsettled index.

        If that delivery was settled meanwhile (a repeat of the event got there first), the parked
        event only records its owner.
        """
        pairing = self._pair(message_id, event, settles=(SENT, UNKNOWN))
        if pairing == "paired":
            return self._settled(self.get(message_id))
        if pairing == "delivery_taken":
            try:
                self._table.update_item(
                    Key={"message_id": _rendezvous(event.msgid)},
                    UpdateExpression=f"SET delivery = :owner {_UNPARK}",
                    ConditionExpression="attribute_not_exists(delivery)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":owner": message_id},
                )
            except ClientError as exc:
                if not _conditional_failure(exc):
                    raise
            return self.get(message_id)
        if pairing == "event_taken":
            return self._owner_of(event.msgid)
        return None

    def _park(self, event: SentEvent) -> str | None:
        """Leaves the event on its msgid's rendezvous item, unless an owner is there: then its id."""
        try:
            self._table.update_item(
                Key={"message_id": _rendezvous(event.msgid)},
                UpdateExpression=(
                    "SET kind = :kind, event = :event, #s = :pending, recipient = :r, created_at = :at, "
                    "unsettled = :shard, expires_at = if_not_exists(expires_at, :exp)"
                ),
                ConditionExpression="attribute_not_exists(delivery)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":kind": "msgid",
                    ":event": event.item(),
                    ":pending": PENDING,
                    ":shard": _parked_shard_name(zlib.crc32(event.msgid.encode()) % UNSETTLED_SHARDS),
                    ":r": _recipient(event.openid, event.template_id),
                    ":at": event.at,
                    ":exp": int(self._clock()) + PENDING_TTL_SECONDS,
                },
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            return str((self._item(_rendezvous(event.msgid)) or {})["delivery"])
        return None

    def _match_parked(self, unknown: dict[str, Any]) -> bool:
        """Gives an ``unknown`` delivery the oldest parked event of its recipient; True once settled.

        Only events from after the send was written (less the allowed skew) can report it.
        """
        message_id = str(unknown["message_id"])
        openid, template_id = str(unknown["openid"]), str(unknown["template_id"])
        created = int(unknown["created_at"])
        for parked in self._recipient_items(
            openid, template_id, PENDING, since=created - self._skew, until=created + self._window
        ):
            pairing = self._pair(message_id, SentEvent.from_item(parked["event"]))
            if pairing == "paired":
                self._settled(self.get(message_id))
            if pairing in ("paired", "delivery_taken"):
                return True
            if pairing == "busy":
                return False
        return False

    def _pair(self, message_id: str, event: SentEvent, settles: tuple[str, ...] = (UNKNOWN,)) -> Pairing:
        """In one transaction: the unknown delivery takes the parked event, and the event its owner.

        DynamoDB cancels a transaction that collides with another on the same items
        (``TransactionConflict``); that is retried a few times, then reported as ``busy``.
        """
        for _ in range(TRANSACTION_ATTEMPTS):
            try:
                self._client.transact_write_items(
                    TransactItems=self._pairing_items(message_id, event, settles)
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons[:1] == ["ConditionalCheckFailed"]:
                    return "delivery_taken"
                if reasons[1:2] == ["ConditionalCheckFailed"]:
                    return "event_taken"
                continue
            return "paired"
        return "busy"

    def _pairing_items(
        self, message_id: str, event: SentEvent, settles: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        now = int(self._clock())
        states = {f":from{i}": status for i, status in enumerate(settles)}
        settle = {
            "TableName": self._table.name,
            "Key": {"message_id": message_id},
            "UpdateExpression": _SETTLE,
            "ConditionExpression": f"#s IN ({', '.join(states)})",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {**_outcome_values(event, now), **states},
        }
        claim = {
            "TableName": self._table.name,
            "Key": {"message_id": _rendezvous(event.msgid)},
            "UpdateExpression": f"SET delivery = :owner, expires_at = :exp {_UNPARK}",
            "ConditionExpression": "attribute_exists(event) AND attribute_not_exists(delivery)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":owner": message_id, ":exp": now + self._ttl},
        }
        return [{"Update": settle}, {"Update": claim}]

    def _settle(self, message_id: str, event: SentEvent) -> Delivery | None:
        """``sent`` or ``unknown`` → the event's outcome; a settled delivery stays as it is."""
        try:
            answer = self._table.update_item(
                Key={"message_id": message_id},
                UpdateExpression=_SETTLE,
                ConditionExpression="#s IN (:sent, :unknown)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    **_outcome_values(event, int(self._clock())),
                    ":sent": SENT,
                    ":unknown": UNKNOWN,
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            return self.get(message_id)
        return self._settled(_delivery(answer["Attributes"]))

    def _settled(self, delivery: Delivery | None) -> Delivery | None:
        """Tells the listener (events, campaign counters) that ``delivery`` just reached an end."""
        if delivery is not None and self._on_settled is not None:
            self._on_settled(delivery)
        return delivery

    def _recorded_with(self, msgid: str) -> str | None:
        """The message_id of the delivery WeChat gave ``msgid``, through the ``by_msgid`` GSI."""
        page = self._table.query(
            IndexName="by_msgid",
            KeyConditionExpression="msgid = :msgid",
            ExpressionAttributeValues={":msgid": msgid},
        )
        return next((str(item["message_id"]) for item in page.get("Items", []) if "kind" not in item), None)

    def _owner_of(self, msgid: str) -> Delivery | None:
        item = self._item(_rendezvous(msgid)) or {}
        return self.get(str(item["delivery"])) if "delivery" in item else None

    def _item(self, message_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"message_id": message_id}, ConsistentRead=True).get("Item")
        return None if item is None else dict(item)

    def _recipient_items(
        self, openid: str, template_id: str, status: str, *, since: int, until: int
    ) -> Iterator[dict[str, Any]]:
        """Items of one recipient with ``status``, created between ``since`` and ``until``, oldest first."""
        # plain strings, not boto3's condition objects: a resource's expression builder is shared
        # by every thread of a campaign worker and is not safe to use from several at once
        kwargs: dict[str, Any] = {
            "IndexName": "by_recipient",
            "KeyConditionExpression": "recipient = :r AND created_at BETWEEN :since AND :until",
            "FilterExpression": "#s = :status",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":r": _recipient(openid, template_id),
                ":since": since,
                ":until": until,
                ":status": status,
            },
        }
        while True:
            page = self._table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable digest of a request, to tell a retry from another request under the same key."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _key_item(key: str) -> str:
    return "key#" + hashlib.sha256(key.encode()).hexdigest()


def _shard_name(shard: int) -> str:
    return f"u{shard:x}"


def _parked_shard_name(shard: int) -> str:
    return f"p{shard:x}"


def _recipient(openid: str, template_id: str) -> str:
    return f"{openid}#{template_id}"


def _rendezvous(msgid: str) -> str:
    return f"msgid#{msgid}"


def _conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def _outcome_values(event: SentEvent, now: int) -> dict[str, Any]:
    return {
        ":final": event.outcome,
        ":msgid": event.msgid,
        ":code": event.error_code,
        ":es": event.error_status,
        ":now": now,
    }


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _delivery(item: dict[str, Any]) -> Delivery:
    answer = item.get("answer")
    return Delivery(
        message_id=str(item["message_id"]),
        status=str(item["status"]),
        openid=str(item["openid"]),
        template_id=str(item["template_id"]),
        msgid=None if item.get("msgid") is None else str(item["msgid"]),
        errcode=_optional_int(item.get("errcode")),
        error_status=item.get("error_status"),
        created_at=int(item["created_at"]),
        updated_at=int(item["updated_at"]),
        answer=_plain(answer) if isinstance(answer, dict) else None,
        grant=item.get("grant"),
        campaign_id=item.get("campaign_id"),
        queued_as=item.get("queued_as"),
        template_alias=item.get("template_alias"),
    )


def _storable(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The answer as DynamoDB takes it: floats become Decimals."""
    stored: dict[str, Any] = json.loads(json.dumps(dict(answer)), parse_float=Decimal)
    return stored


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints and floats, so a stored answer reads as it was written."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
