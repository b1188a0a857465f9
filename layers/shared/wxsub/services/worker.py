"""Send a batch of queued campaign messages concurrently, each exactly once.

Every queued message goes through the one send path with the message_id of its (campaign,
openid): its write-ahead record makes an SQS redelivery answer the first attempt's outcome
instead of calling WeChat again. What a send recorded (sent, unknown, refused by WeChat) is counted
from the deliveries table's stream (``services/tally.py``), once; the worker counts what never
had a record: skipped for no grant, failures before WeChat, cancelled and held messages.
When nothing went out (WeChat busy, too little time, AWS failing) the message goes back to the
queue, due again after the retry delay, until its last allowed receive: then it is moved to the
dead-letter queue with its reason and counted failed.

Before each send the campaign's state is read through a cache of at most a second: a cancelled
campaign sends nothing more; a paused one (45009, or outside its window) has its messages held in
the campaign's store until it resumes. The worker's counters are written once per campaign per
batch when it has any, and the campaign is ``done`` once every queued message has an outcome.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from wxsub import errors
from wxsub.bus import CampaignEvents
from wxsub.observability import logger, metrics
from wxsub.services.campaigns import (
    Window,
    complete_if_done,
    message_id_for,
    next_quota_day,
    schedule_name,
)
from wxsub.services.send import Outcome, SendRequest
from wxsub.stores.campaigns import (
    ACTIVE_STATES,
    CANCELLED,
    PAUSED,
    Campaign,
    CampaignStore,
)

CACHE_SECONDS = 0.9  # "at most a second", with room for the request to reach WeChat
SKIPPED, CANCELLED_COUNT = "skipped", "cancelled"


@dataclass(frozen=True)
class QueuedSend:
    """One SendQueue message: whom to send what, and SQS's handle on it."""

    message_id: str
    receipt_handle: str
    receive_count: int
    campaign_id: str
    openid: str
    data: dict[str, str] | None = None
    retry_of: str | None = None

    def recipient(self) -> dict[str, Any]:
        extra = {"retry_of": self.retry_of} if self.retry_of else {}
        return {"openid": self.openid, **({"data": self.data} if self.data else {}), **extra}


@dataclass(frozen=True)
class _Result:
    """What became of one message: a count, a failure reason, a retry, or a hold."""

    count: str | None = None
    failed: str | None = None
    retry: str | None = None
    hold: bool = False


class Sender(Protocol):
    def send(
        self, request: SendRequest, *, key: str | None = None, message_id: str | None = None
    ) -> Outcome: ...


class Pacing(Protocol):
    def reserve(self, n: int) -> float: ...


class Requeue(Protocol):
    def postpone(self, receipt_handle: str, seconds: int) -> None: ...


class DeadLetters(Protocol):
    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None: ...


class Schedules(Protocol):
    def at(self, name: str, when: int, payload: Mapping[str, Any]) -> None: ...


class CampaignCache:
    """Campaigns read at most ``ttl`` seconds ago, shared by a batch's threads."""

    def __init__(
        self, store: CampaignStore, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Campaign | None]] = {}
        self._lock = threading.Lock()

    def get(self, campaign_id: str) -> Campaign | None:
        """The campaign as read at most ``ttl`` ago; one thread reads it while the others wait."""
        with self._lock:
            entry = self._entries.get(campaign_id)
            if entry is not None and self._clock() - entry[0] < self._ttl:
                return entry[1]
            campaign = self._store.get(campaign_id)
            self._entries[campaign_id] = (self._clock(), campaign)
            return campaign

    def forget(self, campaign_id: str) -> None:
        with self._lock:
            self._entries.pop(campaign_id, None)


@dataclass
class SendWorker:
    sender: Sender
    store: CampaignStore
    pacer: Pacing
    requeue: Requeue
    dead_letters: DeadLetters
    schedules: Schedules
    events: CampaignEvents
    retry_delay_seconds: int = 30
    max_receives: int = 5
    threads: int = 10
    clock: Callable[[], float] = time.time
    cache: CampaignCache | None = None
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def process(self, batch: Sequence[QueuedSend]) -> list[str]:
        """Sends a batch; returns the SQS message ids to leave on the queue for a later attempt."""
        cache = self.cache or CampaignCache(self.store)
        self.cache = cache
        retry: list[str] = []
        groups: dict[str, list[QueuedSend]] = defaultdict(list)
        for queued in batch:
            groups[queued.campaign_id].append(queued)
        for campaign_id, group in groups.items():
            try:
                results = self._campaign_batch(cache, campaign_id, group)
                retry.extend(self._settle(campaign_id, group, results))
            except Exception as exc:  # counting or holding failed: the whole group comes back soon
                logger.warning("a campaign's batch comes back for another attempt", error=type(exc).__name__)
                retry.extend(self._again(group))
        return retry

    def _again(self, group: list[QueuedSend], delay: int | None = None) -> list[str]:
        """The group's messages are due again after the retry delay (their sends replay, never resend)."""
        for queued in group:
            try:
                self.requeue.postpone(
                    queued.receipt_handle, self.retry_delay_seconds if delay is None else delay
                )
            except Exception:  # the queue's own visibility timeout brings it back instead
                logger.warning("a queued send could not be postponed", message_id=queued.message_id)
        return [queued.message_id for queued in group]

    def _campaign_batch(
        self, cache: CampaignCache, campaign_id: str, group: list[QueuedSend]
    ) -> list[_Result]:
        campaign = cache.get(campaign_id)
        if campaign is None:
            logger.warning(
                "queued sends for an unknown campaign dropped", campaign_id=campaign_id, count=len(group)
            )
            return [_Result() for _ in group]
        if campaign.state == CANCELLED:
            return [_Result(count=CANCELLED_COUNT) for _ in group]
        if campaign.state == PAUSED:
            return [_Result(hold=True) for _ in group]
        if self._outside_window(campaign):
            return [_Result(hold=True) for _ in group]
        self.pacer.reserve(len(group))
        pool = self._threads()
        return list(pool.map(lambda queued: self._one(cache, campaign, queued), group))

    def _one(self, cache: CampaignCache, campaign: Campaign, queued: QueuedSend) -> _Result:
        try:
            return self._send_one(cache, campaign, queued)
        except Exception as exc:  # an AWS failure before WeChat was asked: nothing went out
            logger.warning("queued send failed before WeChat", error=type(exc).__name__)
            return _Result(retry="storage_unavailable")

    def _send_one(self, cache: CampaignCache, campaign: Campaign, queued: QueuedSend) -> _Result:
        current = cache.get(campaign.campaign_id) or campaign
        if current.state == CANCELLED:
            return _Result(count=CANCELLED_COUNT)
        if current.state == PAUSED:
            return _Result(hold=True)
        request = SendRequest(
            openid=queued.openid,
            template_id=campaign.template_id,
            data={**campaign.data, **(queued.data or {})},
            page=campaign.page,
            miniprogram_state=campaign.miniprogram_state,
            lang=campaign.lang,
            campaign_id=campaign.campaign_id,
            queued_as=queued.message_id,
            template_alias=campaign.template_alias,
        )
        try:
            outcome = self.sender.send(
                request, message_id=message_id_for(campaign.campaign_id, queued.openid, queued.retry_of)
            )
        except errors.QuotaExhausted:
            self._pause_for_quota()
            return _Result(hold=True)
        except errors.WxsubError as exc:
            return _Result(retry=exc.code)
        return _classify(outcome)

    def _settle(self, campaign_id: str, group: list[QueuedSend], results: list[_Result]) -> list[str]:
        counts: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        held: list[dict[str, Any]] = []
        retry: list[str] = []
        for queued, result in zip(group, results, strict=True):
            if result.count:
                counts[result.count] += 1
            elif result.failed:
                failed[result.failed] += 1
            elif result.hold:
                held.append(queued.recipient())
            elif result.retry:
                if self._retry_or_dead_letter(queued, result.retry):
                    retry.append(queued.message_id)
                else:
                    failed[result.retry] += 1
        if held and not self.store.hold(campaign_id, held):
            # resumed meanwhile: these go back on the queue and are sent on their next receive
            retry.extend(self._again([q for q, r in zip(group, results, strict=True) if r.hold], delay=1))
        if counts or failed:
            self._count(campaign_id, counts, failed)
        return retry

    def _retry_or_dead_letter(self, queued: QueuedSend, reason: str) -> bool:
        """True: back on the queue after the retry delay; False: moved to the DLQ with ``reason``."""
        if queued.receive_count < self.max_receives - 1:
            self.requeue.postpone(queued.receipt_handle, self.retry_delay_seconds)
            return True
        self.dead_letters.send({"campaign_id": queued.campaign_id, **queued.recipient(), "reason": reason})
        metrics.add_metric(name="QueuedSendsDeadLettered", unit="Count", value=1)
        return False

    def _count(self, campaign_id: str, counts: Mapping[str, int], failed: Mapping[str, int]) -> None:
        complete_if_done(self.store, self.events, self.store.count(campaign_id, counts, failed))

    def _outside_window(self, campaign: Campaign) -> bool:
        """Outside its window the campaign pauses, and a schedule resumes it when the window opens."""
        if not campaign.window:
            return False
        window = Window(**campaign.window)
        opening = window.opens_after(self.clock())
        if opening is None:
            return False
        self._pause(campaign.campaign_id, "window", opening)
        return True

    def _pause_for_quota(self) -> None:
        """45009: the AppID's daily quota is spent; every running campaign waits for the next day."""
        metrics.add_metric(name="CampaignsPausedForQuota", unit="Count", value=1)
        resume_at = next_quota_day(self.clock())
        for campaign_id in self.store.active():
            self._pause(campaign_id, "quota", resume_at)

    def _pause(self, campaign_id: str, reason: str, resume_at: int) -> None:
        """Schedules the resume first (a retry of it is harmless), then pauses: never paused for good.

        A campaign already paused keeps the resume it has.
        """
        before = self.store.get(campaign_id)
        if before is None or before.state == PAUSED:
            return
        self.schedules.at(
            schedule_name(campaign_id, f"resume-{resume_at}"),
            resume_at,
            {"campaign_id": campaign_id, "resume": True},
        )
        paused = self.store.transition(
            campaign_id, PAUSED, allowed=tuple(ACTIVE_STATES - {PAUSED}), reason=reason
        )
        if self.cache is not None:
            self.cache.forget(campaign_id)
        if paused is None:
            return
        self.events.campaign_state(
            campaign_id, PAUSED, previous=before.state, reason=reason, counts=paused.to_json()["counts"]
        )
        logger.info("campaign paused", campaign_id=campaign_id, reason=reason, resume_at=resume_at)

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="send")
        return self._pool


def _classify(outcome: Outcome) -> _Result:
    """An outcome with a delivery record behind it (sent, unknown, refused by WeChat, or the replay
    of any of those) is counted from the DeliveriesTable stream, once (``services/tally.py``); the
    worker counts only what never had one: the ledger's no-grant skip and a refusal before the send.
    """
    if outcome.recorded:
        return _Result()
    code = str(outcome.body.get("error", "rejected"))
    if code == "no_grant":
        return _Result(count=SKIPPED)
    return _Result(failed=code)


def parse_record(record: Mapping[str, Any]) -> QueuedSend | None:
    """A SendQueue record as the worker needs it; None for a body it cannot read."""
    try:
        body = json.loads(record["body"])
        data = body.get("data")
        return QueuedSend(
            message_id=str(record["messageId"]),
            receipt_handle=str(record["receiptHandle"]),
            receive_count=int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1)),
            campaign_id=str(body["campaign_id"]),
            openid=str(body["openid"]),
            data={str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None,
            retry_of=str(body["retry_of"]) if body.get("retry_of") else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
