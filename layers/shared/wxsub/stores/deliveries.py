"""Deliveries: one item per send, keyed by our ``message_id``, settled by WeChat's sent events.

A delivery is ``sent`` (WeChat answered with a msgid), ``unknown`` (the call timed out after
the request went out), ``failed`` (refused, or a failed sent event) or ``delivered``. It keeps a
summary of the request (openid, template, page, state, lang, the data keys but never their
values) and expires after ``ttl_seconds``.

A sent event names a msgid. Beside each delivery with a msgid sits a small rendezvous item,
``msgid#<msgid>``, that both sides write to: ``record`` puts the owning ``message_id`` there,
an event that finds no owner parks itself there (``status = pending``, one day). Whichever
comes second sees the other, because DynamoDB applies the two updates to that item one after
the other; so matching a msgid never depends on a GSI having caught up.

An event whose msgid nobody recorded settles the oldest ``unknown`` delivery for the same
openid and template within the settle window. Those are found through the ``by_recipient``
GSI, which is eventually consistent: an event and an ``unknown`` written within the same
instant can miss each other, and both wait for ``settle_expired_unknown`` to try again. The
settling itself is one transaction (the delivery must still be ``unknown``, the event must
still be parked), so one event never settles two deliveries and one delivery never takes two
events.

The rule is WeChat's own ambiguity made explicit: an event that arrives before its msgid is
stored (milliseconds after the answer) while another send to the same user and template is
``unknown`` settles that one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

SENT, DELIVERED, FAILED, UNKNOWN, PENDING = "sent", "delivered", "failed", "unknown", "pending"
PENDING_TTL_SECONDS = 86400
TRANSACTION_ATTEMPTS = 3
_UNPARK = "REMOVE event, #s, recipient, created_at"
_SETTLE = "SET #s = :final, msgid = :msgid, errcode = :code, error_status = :es, updated_at = :now"
_DETAILS = frozenset({"msgid", "errcode"})

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

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "openid": self.openid,
            "template_id": self.template_id,
            "msgid": self.msgid,
            "errcode": self.errcode,
            "error_status": self.error_status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
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
    ) -> None:
        self._table = table
        self._client = table.meta.client  # a resource's client: it takes and gives plain Python values
        self._ttl = ttl_seconds
        self._window = settle_window_seconds
        self._clock = clock

    def record(self, message_id: str, request: Any, status: str, **details: Any) -> None:
        """Stores one send; ``details`` may carry WeChat's ``msgid`` and a refusal's ``errcode``.

        ``request`` needs ``openid``, ``template_id`` and ``data``; ``page``,
        ``miniprogram_state`` and ``lang`` are kept when present. A sent event that arrived
        earlier is applied before this returns.
        """
        unexpected = set(details) - _DETAILS
        if unexpected:
            raise TypeError(f"unexpected delivery details: {sorted(unexpected)}")
        item = self._summary(message_id, request, status, details)
        self._table.put_item(Item=item)
        if status == SENT and item.get("msgid"):
            self._claim_msgid(message_id, item["msgid"], item["expires_at"])
        elif status == UNKNOWN:
            self._match_parked(item)

    def get(self, message_id: str) -> Delivery | None:
        item = self._item(message_id)
        return _delivery(item) if item and "kind" not in item else None

    def apply_sent_event(
        self, *, openid: str, template_id: str, msgid: str, error_code: int, error_status: str, at: int
    ) -> Delivery | None:
        """Settles the delivery a sent event belongs to; None while no delivery can claim it.

        Applying the same event again changes nothing and answers the same delivery.
        """
        event = SentEvent(openid, template_id, str(msgid), int(error_code), error_status, int(at))
        owner = self._park(event)
        if owner is not None:
            return self._settle(owner, event)
        recorded = self._recorded_with(event.msgid)
        if recorded is not None:
            self._claim_msgid(str(recorded["message_id"]), event.msgid, int(recorded["expires_at"]))
            return self.get(str(recorded["message_id"]))
        for candidate in self._recipient_items(openid, template_id, event.at, UNKNOWN):
            pairing = self._pair(str(candidate["message_id"]), event)
            if pairing == "paired":
                return self.get(str(candidate["message_id"]))
            if pairing in ("event_taken", "busy"):
                return self._owner_of(event.msgid)
        return None

    def settle_expired_unknown(self, older_than: int) -> list[Delivery]:
        """Unknown deliveries created before ``older_than`` that still have no event.

        Each gets one more try against parked events first (the GSI has caught up by now).
        What the rest mean is the caller's policy: no event may mean WeChat never took the
        request, or that its push was lost. This scans the table: meant for an occasional sweep.
        """
        still: list[Delivery] = []
        for item in self._scan(Attr("status").eq(UNKNOWN) & Attr("created_at").lt(older_than)):
            if not self._match_parked(item):
                still.append(_delivery(item))
        return still

    def give_up(self, message_id: str, reason: str) -> bool:
        """``unknown`` → ``failed`` with ``reason``; False when an event settled it meanwhile."""
        try:
            self._table.update_item(
                Key={"message_id": message_id},
                UpdateExpression="SET #s = :failed, error_status = :reason, updated_at = :now",
                ConditionExpression="#s = :unknown",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":failed": FAILED,
                    ":reason": reason,
                    ":now": int(self._clock()),
                    ":unknown": UNKNOWN,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _summary(self, message_id: str, request: Any, status: str, details: dict[str, Any]) -> dict[str, Any]:
        now = int(self._clock())
        item: dict[str, Any] = {
            "message_id": message_id,
            "status": status,
            "openid": request.openid,
            "template_id": request.template_id,
            "recipient": _recipient(request.openid, request.template_id),
            "data_keys": sorted(request.data),
            "created_at": now,
            "updated_at": now,
            "expires_at": now + self._ttl,
        }
        optional = {
            "page": getattr(request, "page", None),
            "state": getattr(request, "miniprogram_state", None),
            "lang": getattr(request, "lang", None),
            "msgid": None if details.get("msgid") is None else str(details["msgid"]),
            "errcode": None if details.get("errcode") is None else int(details["errcode"]),
        }
        item.update({name: value for name, value in optional.items() if value is not None})
        return item

    def _claim_msgid(self, message_id: str, msgid: str, expires_at: int) -> None:
        """Makes ``message_id`` the msgid's owner and applies an event parked before it."""
        answer = self._table.update_item(
            Key={"message_id": _rendezvous(msgid)},
            UpdateExpression=f"SET kind = :kind, delivery = :owner, expires_at = :exp {_UNPARK}",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":kind": "msgid", ":owner": message_id, ":exp": expires_at},
            ReturnValues="ALL_OLD",
        )
        parked = answer.get("Attributes", {}).get("event")
        if parked is not None:
            self._settle(message_id, SentEvent.from_item(parked))

    def _park(self, event: SentEvent) -> str | None:
        """Leaves the event on its msgid's rendezvous item, unless an owner is there: then its id."""
        try:
            self._table.update_item(
                Key={"message_id": _rendezvous(event.msgid)},
                UpdateExpression=(
                    "SET kind = :kind, event = :event, #s = :pending, recipient = :r, created_at = :at, "
                    "expires_at = if_not_exists(expires_at, :exp)"
                ),
                ConditionExpression="attribute_not_exists(delivery)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":kind": "msgid",
                    ":event": event.item(),
                    ":pending": PENDING,
                    ":r": _recipient(event.openid, event.template_id),
                    ":at": event.at,
                    ":exp": int(self._clock()) + PENDING_TTL_SECONDS,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return str((self._item(_rendezvous(event.msgid)) or {})["delivery"])
        return None

    def _match_parked(self, unknown: dict[str, Any]) -> bool:
        """Gives an ``unknown`` delivery the oldest parked event of its recipient; True once settled."""
        message_id = str(unknown["message_id"])
        openid, template_id = str(unknown["openid"]), str(unknown["template_id"])
        for parked in self._recipient_items(openid, template_id, int(unknown["created_at"]), PENDING):
            pairing = self._pair(message_id, SentEvent.from_item(parked["event"]))
            if pairing in ("paired", "delivery_taken"):
                return True
            if pairing == "busy":
                return False
        return False

    def _pair(self, message_id: str, event: SentEvent) -> Pairing:
        """In one transaction: the unknown delivery takes the parked event, and the event its owner.

        DynamoDB cancels a transaction that collides with another on the same items
        (``TransactionConflict``); that is retried a few times, then reported as ``busy``.
        """
        for _ in range(TRANSACTION_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=self._pairing_items(message_id, event))
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

    def _pairing_items(self, message_id: str, event: SentEvent) -> list[dict[str, Any]]:
        now = int(self._clock())
        settle = {
            "TableName": self._table.name,
            "Key": {"message_id": message_id},
            "UpdateExpression": _SETTLE,
            "ConditionExpression": "#s = :unknown",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {**_outcome_values(event, now), ":unknown": UNKNOWN},
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
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.get(message_id)
        return _delivery(answer["Attributes"])

    def _recorded_with(self, msgid: str) -> dict[str, Any] | None:
        """A delivery whose rendezvous was never written (the writer stopped in between), by GSI."""
        page = self._table.query(IndexName="by_msgid", KeyConditionExpression=Key("msgid").eq(msgid))
        return next((dict(item) for item in page.get("Items", []) if item.get("status") == SENT), None)

    def _owner_of(self, msgid: str) -> Delivery | None:
        item = self._item(_rendezvous(msgid)) or {}
        return self.get(str(item["delivery"])) if "delivery" in item else None

    def _item(self, message_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"message_id": message_id}, ConsistentRead=True).get("Item")
        return None if item is None else dict(item)

    def _recipient_items(
        self, openid: str, template_id: str, around: int, status: str
    ) -> Iterator[dict[str, Any]]:
        """Items of one recipient with ``status``, created within the window of ``around``, oldest first."""
        kwargs: dict[str, Any] = {
            "IndexName": "by_recipient",
            "KeyConditionExpression": Key("recipient").eq(_recipient(openid, template_id))
            & Key("created_at").between(around - self._window, around + self._window),
            "FilterExpression": Attr("status").eq(status),
        }
        while True:
            page = self._table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _scan(self, condition: Any) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"FilterExpression": condition}
        while True:
            page = self._table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _recipient(openid: str, template_id: str) -> str:
    return f"{openid}#{template_id}"


def _rendezvous(msgid: str) -> str:
    return f"msgid#{msgid}"


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
    )
