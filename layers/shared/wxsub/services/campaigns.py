"""Campaigns: one template to a whole audience, through the send queue, exactly once per user.

``create`` validates every message the campaign will send before anything is queued (a recipient's
data merged over the shared data, checked against the template's keyword rules), stores the
campaign with its explicit audience in parts, and starts it: now (a message on ExpandQueue), or at
``send_at`` or the window's next opening (an EventBridge Scheduler one-time schedule that puts the
same message there). The expansion and the sends are :mod:`wxsub.services.expand` and
:mod:`wxsub.services.worker`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from wxsub import errors
from wxsub.bus import CampaignEvents
from wxsub.observability import logger
from wxsub.stores.campaigns import (
    ACTIVE_STATES,
    CANCELLED,
    DONE,
    EXPANDING,
    PART_SIZE,
    PAUSED,
    RUNNING,
    SCHEDULED,
    Campaign,
    CampaignStore,
)
from wxsub.stores.deliveries import ONE_TIME_GRANT

MAX_DELAY_SECONDS = 30 * 86400
PAST_TOLERANCE_SECONDS = 60
BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Recipient:
    openid: str
    data: dict[str, str] | None = None


@dataclass(frozen=True)
class Window:
    """Hours in which a campaign may send, e.g. 09:00–21:00 Asia/Shanghai; ``start > end`` spans midnight."""

    start: str
    end: str
    tz: str

    def opens_after(self, now: float) -> int | None:
        """None while the window is open at ``now``; else when it next opens (epoch seconds)."""
        zone = ZoneInfo(self.tz)
        local = datetime.fromtimestamp(now, zone)
        start, end, at = _parse_time(self.start), _parse_time(self.end), local.time()
        inside = start <= at < end if start < end else (at >= start or at < end)
        if inside:
            return None
        opening = datetime.combine(local.date(), start, zone)
        if opening <= local:
            opening = datetime.combine(local.date() + timedelta(days=1), start, zone)
        return int(opening.timestamp())

    def to_json(self) -> dict[str, str]:
        return {"start": self.start, "end": self.end, "tz": self.tz}


@dataclass(frozen=True)
class CampaignSpec:
    template_id: str
    data: dict[str, str]
    audience: str | tuple[Recipient, ...]  # "granted", or the explicit recipients
    page: str | None = None
    miniprogram_state: str | None = None
    lang: str | None = None
    send_at: int | None = None
    window: Window | None = None
    template_alias: str | None = None  # for display; the fingerprint holds the resolved id

    def fingerprint(self) -> str:
        audience = (
            self.audience if isinstance(self.audience, str) else [[r.openid, r.data] for r in self.audience]
        )
        body = [
            self.template_id,
            self.data,
            audience,
            self.page,
            self.miniprogram_state,
            self.lang,
            self.send_at,
            self.window.to_json() if self.window else None,
        ]
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class DataCheck(Protocol):
    def __call__(self, template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]: ...


class Starter(Protocol):
    """Puts a campaign's first expansion step on ExpandQueue (now), or schedules it."""

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None: ...


class Schedules(Protocol):
    def at(self, name: str, when: int, payload: Mapping[str, Any]) -> None: ...
    def cancel(self, name: str) -> None: ...


class CampaignService:
    def __init__(
        self,
        store: CampaignStore,
        check: DataCheck,
        expand_queue: Starter,
        schedules: Schedules,
        events: CampaignEvents,
        max_recipients: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._check = check
        self._queue = expand_queue
        self._schedules = schedules
        self._events = events
        self._max = max_recipients
        self._clock = clock

    def create(self, spec: CampaignSpec, key: str | None = None) -> Campaign:
        """Validates, stores and starts a campaign; the same ``key`` returns the same campaign."""
        now = int(self._clock())
        if key:
            earlier = self._created_with(key, spec)
            if earlier is not None:
                return earlier
        self._check_times(spec, now)
        recipients = self._recipients(spec)
        campaign_id = new_campaign_id()
        if key:
            campaign_id = self._store.bind_key(key, spec.fingerprint(), campaign_id)
            existing = self._store.get(campaign_id)
            if existing is not None:
                return existing
        starts_at = self._start_time(spec, now)
        campaign = Campaign(
            campaign_id=campaign_id,
            state=SCHEDULED if starts_at else EXPANDING,
            template_id=spec.template_id,
            data=dict(spec.data),
            audience="granted" if recipients is None else "list",
            parts=0 if recipients is None else -(-len(recipients) // PART_SIZE),
            created_at=now,
            updated_at=now,
            page=spec.page,
            miniprogram_state=spec.miniprogram_state,
            lang=spec.lang,
            send_at=starts_at or spec.send_at,
            window=spec.window.to_json() if spec.window else None,
            template_alias=spec.template_alias,
        )
        parts = [] if recipients is None else _parts(recipients)
        if not self._store.create(campaign, parts):
            return self._store.get(campaign_id) or campaign
        self._start(campaign, starts_at)
        self._events.campaign_state(campaign_id, campaign.state, previous=None)
        logger.info(
            "campaign created", campaign_id=campaign_id, state=campaign.state, audience=campaign.audience
        )
        return campaign

    def _created_with(self, key: str, spec: CampaignSpec) -> Campaign | None:
        """The campaign an earlier request with ``key`` created: a retry gets it even after send_at."""
        bound = self._store.bound(key)
        if bound is None:
            return None
        campaign_id, fingerprint = bound
        if fingerprint != spec.fingerprint():
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different campaign"
            )
        return self._store.get(campaign_id)

    def get(self, campaign_id: str) -> Campaign:
        campaign = self._store.get(campaign_id)
        if campaign is None:
            raise errors.NotFound(f"no campaign {campaign_id}")
        return campaign

    def cancel(self, campaign_id: str) -> Campaign:
        """Stops what is not yet sent; workers see it within a second. Cancelling twice is harmless."""
        before = self.get(campaign_id)
        cancelled = self._store.transition(campaign_id, CANCELLED, allowed=(SCHEDULED, *ACTIVE_STATES))
        if cancelled is None:
            return self.get(campaign_id)
        if cancelled.counts.get("held", 0):  # held recipients will never be sent now
            held = cancelled.counts["held"]
            cancelled = self._store.count(campaign_id, {"held": -held, "cancelled": held}, {})
        self._schedules.cancel(schedule_name(campaign_id, "start"))
        self._events.campaign_state(
            campaign_id, CANCELLED, previous=before.state, counts=cancelled.to_json()["counts"]
        )
        return cancelled

    def resume(self, campaign_id: str) -> Campaign:
        """A paused campaign runs again: its held recipients are queued once more."""
        before = self.get(campaign_id)
        if before.state != PAUSED:
            raise errors.CampaignNotPaused(
                f"campaign {campaign_id} is {before.state}; only a paused campaign can be resumed",
                state=before.state,
            )
        self._queue.send({"campaign_id": campaign_id, "resume": True})
        return before

    def _check_times(self, spec: CampaignSpec, now: int) -> None:
        if spec.send_at is None:
            return
        if spec.send_at < now - PAST_TOLERANCE_SECONDS:
            raise errors.InvalidCampaign("send_at is in the past", field="send_at")
        if spec.send_at > now + MAX_DELAY_SECONDS:
            raise errors.InvalidCampaign("send_at is more than 30 days ahead", field="send_at")

    def _start_time(self, spec: CampaignSpec, now: int) -> int | None:
        """When the campaign starts if not now: ``send_at``, moved to the window's next opening."""
        at = spec.send_at if spec.send_at and spec.send_at > now else None
        if spec.window is not None:
            opening = spec.window.opens_after(at or now)
            if opening is not None:
                at = opening
        return at

    def _recipients(self, spec: CampaignSpec) -> list[Recipient] | None:
        """The explicit audience, de-duplicated by openid, each message checked; None for ``granted``."""
        if isinstance(spec.audience, str):
            self._check(spec.template_id, spec.data, False)
            return None
        unique: dict[str, Recipient] = {}
        for recipient in spec.audience:
            unique.setdefault(recipient.openid, recipient)
        if not unique:
            raise errors.InvalidCampaign("the audience is empty", field="audience")
        if len(unique) > self._max:
            raise errors.InvalidCampaign(
                f"the audience names {len(unique)} users; at most {self._max} may be named", field="audience"
            )
        shared_checked = False
        for index, recipient in enumerate(spec.audience):
            if recipient.data is None and shared_checked:
                continue
            merged = {**spec.data, **(recipient.data or {})}
            try:
                self._check(spec.template_id, merged, False)
            except errors.InvalidData as exc:
                raise errors.InvalidData(
                    f"recipient {index} ({recipient.openid}): {exc.message}",
                    recipient=index,
                    openid=recipient.openid,
                    **exc.details,
                ) from None
            shared_checked = shared_checked or recipient.data is None
        return list(unique.values())

    def _start(self, campaign: Campaign, starts_at: int | None) -> None:
        first = {"campaign_id": campaign.campaign_id, "page": 0}
        if starts_at is None:
            self._queue.send(first)
        else:
            self._schedules.at(schedule_name(campaign.campaign_id, "start"), starts_at, first)


def schedule_name(campaign_id: str, purpose: str) -> str:
    return f"wxsub-{campaign_id}-{purpose}"


def next_quota_day(now: float) -> int:
    """WeChat's daily quotas reset at midnight Beijing time: the next one, plus a minute's margin."""
    local = datetime.fromtimestamp(now, BEIJING)
    midnight = datetime.combine(local.date() + timedelta(days=1), clock_time(0, 1), BEIJING)
    return int(midnight.timestamp())


def new_campaign_id() -> str:
    """Time-ordered, unguessable, like a message_id."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def message_id_for(campaign_id: str, openid: str, retry_of: str | None = None) -> str:
    """The one message_id of a campaign's send to one user: the write-ahead key of that send.

    A resend after the sweep gave up on the first (``retry_of``) has an id of its own.
    """
    seed = f"campaign:{campaign_id}:{openid}" + (f":retry:{retry_of}" if retry_of else "")
    return hashlib.sha256(seed.encode()).hexdigest()[:28]


def complete_if_done(store: CampaignStore, events: CampaignEvents, campaign: Campaign) -> None:
    """A running campaign whose every queued message has an outcome becomes ``done``, once."""
    finished = (
        campaign.expanded
        and campaign.state in (RUNNING, EXPANDING)
        and campaign.counts.get("held", 0) == 0
        and campaign.processed() >= campaign.counts.get("queued", 0)
    )
    if finished and store.transition(campaign.campaign_id, DONE, allowed=(RUNNING, EXPANDING)) is not None:
        events.campaign_state(
            campaign.campaign_id, DONE, previous=campaign.state, counts=campaign.to_json()["counts"]
        )


class CampaignResends:
    """A one-time campaign send the sweep gave up on is sent once more.

    The sweep gives up when no sent event came within the window: WeChat most likely never took
    the request (it pushes a sent event for every message it accepted), which is also why the
    grant was given back. A campaign has no caller to decide, so it queues the recipient again
    under a new message_id, once, and only for a one-time template: if the first send did reach
    the user after all (its push was lost), WeChat itself refuses the resend with 43101 unless
    the user had accepted more than once. Long-term sends, which WeChat would deliver again, and
    a resend that ends the same way count ``failed`` (``no_sent_event``).
    """

    def __init__(self, store: CampaignStore, send_queue: Starter, events: CampaignEvents) -> None:
        self._store = store
        self._queue = send_queue
        self._events = events

    def __call__(self, delivery: Any) -> None:
        campaign = self._store.get(delivery.campaign_id) if delivery.campaign_id else None
        if campaign is None:
            return
        first = message_id_for(campaign.campaign_id, delivery.openid)
        long_term = delivery.grant != ONE_TIME_GRANT
        if campaign.state == CANCELLED or delivery.message_id != first or long_term:
            self._store.count(campaign.campaign_id, {"unknown": -1}, {"no_sent_event": 1})
            return
        body: dict[str, Any] = {
            "campaign_id": campaign.campaign_id,
            "openid": delivery.openid,
            "retry_of": first,
        }
        data = self._recipient_data(campaign, delivery.openid)
        if data:
            body["data"] = data
        self._queue.send(body)
        self._store.count(campaign.campaign_id, {"unknown": -1}, {})
        reopened = self._store.transition(campaign.campaign_id, RUNNING, allowed=(DONE,))
        if reopened is not None:
            self._events.campaign_state(campaign.campaign_id, RUNNING, previous=DONE, reason="resend")
        logger.info("a send without a sent event is queued again", campaign_id=campaign.campaign_id)

    def _recipient_data(self, campaign: Campaign, openid: str) -> dict[str, str] | None:
        for n in range(campaign.parts):
            for row in self._store.part(campaign.campaign_id, "part", n):
                if row.get("openid") == openid:
                    return dict(row["data"]) if row.get("data") else None
        return None


def _parse_time(text: str) -> clock_time:
    return clock_time.fromisoformat(text)


def _parts(recipients: Sequence[Recipient]) -> list[list[dict[str, Any]]]:
    rows = [{"openid": r.openid, **({"data": r.data} if r.data else {})} for r in recipients]
    return [rows[i : i + PART_SIZE] for i in range(0, len(rows), PART_SIZE)]
