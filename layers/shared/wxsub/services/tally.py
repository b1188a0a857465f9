"""Campaign progress counted from the deliveries themselves, through the DeliveriesTable stream.

Every change of a delivery's status is on the table's stream, once per batch Lambda hands over,
and Lambda hands a batch over again until the function succeeds. CountDeliveries counts a batch's
transitions per campaign and adds them in one transaction (up to 100 campaigns) whose
ClientRequestToken is made from the batch's sequence numbers: a batch retried within ten minutes
(the token's life) is added once, and a send counted nowhere else is never lost, even when the
worker that sent it was killed. It costs one write per campaign per batch, where counting in
the worker and the push function cost a write per batch and one per receipt.

Counted transitions, by the record's old and new status:

- ``sending`` → ``sent``: sent; → ``unknown``: unknown (including the sweep's for a send whose
  worker stopped); → ``failed``: failed by the error its caller got, except ``no_grant`` (WeChat's
  43101), which counts as skipped, as the ledger's own refusal does.
- ``sent`` or ``unknown`` → ``delivered``: delivered.

Nothing else is progress: a record deleted because nothing went out comes back through the queue;
a give-up by the sweep is counted by the campaign's resend rule; a failed sent event leaves the
send counted ``sent``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from wxsub.bus import CampaignEvents
from wxsub.observability import logger
from wxsub.services.campaigns import complete_if_done
from wxsub.stores.campaigns import CampaignStore

_DESERIALIZE = TypeDeserializer().deserialize


@dataclass
class Tally:
    """What one batch adds to one campaign."""

    counts: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)


def transition(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, str] | None:
    """The count a status change adds, as ``("count", name)`` or ``("failed", reason)``."""
    before, after = old.get("status"), new.get("status")
    if before == after:
        return None
    if before == "sending":
        if after in ("sent", "unknown"):
            return ("count", str(after))
        if after == "failed":
            reason = _error_of(new)
            return ("count", "skipped") if reason == "no_grant" else ("failed", reason)
        return None
    if before in ("sent", "unknown") and after == "delivered":
        return ("count", "delivered")
    return None


def tally(records: Iterable[Mapping[str, Any]]) -> dict[str, Tally]:
    """Each campaign's counts in a batch of DynamoDB stream records (Lambda's event shape)."""
    out: dict[str, Tally] = {}
    for record in records:
        change = record.get("dynamodb") or {}
        new = _image(change.get("NewImage"))
        campaign_id = new.get("campaign_id")
        if not campaign_id or record.get("eventName") != "MODIFY":
            continue
        found = transition(_image(change.get("OldImage")), new)
        if found is None:
            continue
        kind, name = found
        entry = out.setdefault(str(campaign_id), Tally())
        (entry.counts if kind == "count" else entry.failed)[name] += 1
    return out


class DeliveryTally:
    def __init__(self, store: CampaignStore, events: CampaignEvents) -> None:
        self._store = store
        self._events = events

    def apply(self, records: list[Mapping[str, Any]]) -> dict[str, Tally]:
        """Adds a batch's counts to its campaigns once, then finishes those that are complete."""
        counted = tally(records)
        if not counted:
            return counted
        self._store.add_counts(
            {cid: (dict(t.counts), dict(t.failed)) for cid, t in counted.items()},
            token=batch_token(records),
            at=batch_time(records),
        )
        for campaign_id in counted:
            campaign = self._store.get(campaign_id)
            if campaign is not None:
                complete_if_done(self._store, self._events, campaign)
        logger.debug("campaign deliveries counted", campaigns=len(counted), records=len(records))
        return counted


def batch_token(records: Iterable[Mapping[str, Any]]) -> str:
    """The same text for the same batch: its source and sequence numbers, hashed."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(str(record.get("eventSourceARN", "")).encode())
        digest.update(str((record.get("dynamodb") or {}).get("SequenceNumber", "")).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def batch_time(records: Iterable[Mapping[str, Any]]) -> int:
    """When the batch's last change was made (the stream's approximate time, in epoch seconds)."""
    times = [(r.get("dynamodb") or {}).get("ApproximateCreationDateTime") for r in records]
    return int(max((float(t) for t in times if isinstance(t, int | float | Decimal)), default=0))


def _image(image: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: _DESERIALIZE(value) for name, value in (image or {}).items()}


def _error_of(item: Mapping[str, Any]) -> str:
    answer = item.get("answer")
    body = answer.get("body") if isinstance(answer, Mapping) else None
    error = body.get("error") if isinstance(body, Mapping) else None
    return str(error) if error else "rejected"
