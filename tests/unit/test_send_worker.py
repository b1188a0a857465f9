"""SendWorker: a batch of queued sends, each counted once, cancelled, held, retried or dead-lettered.

The campaigns table is moto's (in-process). WeChat behind the one send path is a fake that answers
per openid the way SendService answers (an Outcome, or a raised error) and puts on a stand-in for
the DeliveriesTable stream the change each recorded outcome makes; the counts read in a test are
the worker's plus CountDeliveries' over that stream. The queue, the DLQ, the schedules and the bus
are recorders of what they were given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from campaign_kit import DATA, T0, TEMPLATE, Clock, Events, campaign, running, stream_record

from wxsub import errors
from wxsub.services.campaigns import message_id_for, next_quota_day
from wxsub.services.pace import Pacer
from wxsub.services.send import Outcome, SendRequest
from wxsub.services.tally import DeliveryTally
from wxsub.services.worker import CampaignCache, QueuedSend, SendWorker, parse_record
from wxsub.stores.campaigns import CampaignStore

MORNINGS = {"start": "09:00", "end": "12:00", "tz": "Asia/Shanghai"}  # closed at T0 (16:00 in Beijing)
TOMORROW_9 = T0 + 17 * 3600
# the ledger's refusal and the keyword check come before any record; the others were recorded
NO_GRANT = Outcome.refused(errors.NoGrant("the user holds no grant for this template"))
BAD_DATA = Outcome.refused(errors.InvalidData("data breaks the template's keyword rules", violations=[]))
BAD_OPENID = replace(Outcome.refused(errors.InvalidOpenid("invalid openid")), recorded=True)
UNKNOWN = replace(Outcome.refused(errors.OutcomeUnknown("no clean answer", message_id="m")), recorded=True)
SENT = Outcome(200, {"status": "sent", "msgid": "1700827132819554304"}, recorded=True)

Answer = Outcome | Exception | Callable[[SendRequest], Outcome]


class Stream:
    """The DeliveriesTable stream as the send path fills it: a record for each outcome it records."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, campaign_id: str, outcome: Outcome) -> None:
        if not outcome.recorded or outcome.replayed:  # a replay changed no record
            return
        status = {200: "sent", 504: "unknown"}.get(outcome.status, "failed")
        with self._lock:
            self.records.append(
                stream_record(campaign_id, "sending", status, error=outcome.body.get("error"))
            )

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self.records = self.records, []
        return taken


STREAM = Stream()


class WeChat:
    """The send path as the worker sees it: an answer per openid, ``sent`` by default."""

    def __init__(self, answers: Mapping[str, Answer] | None = None) -> None:
        self.answers = dict(answers or {})
        self.asked: list[tuple[SendRequest, str | None]] = []
        self._lock = threading.Lock()

    def send(self, request: SendRequest, *, key: str | None = None, message_id: str | None = None) -> Outcome:
        with self._lock:
            self.asked.append((request, message_id))
        answer = self.answers.get(request.openid, SENT)
        if isinstance(answer, Exception):
            raise answer
        outcome = answer if isinstance(answer, Outcome) else answer(request)
        STREAM.add(str(request.campaign_id), outcome)
        return outcome

    def openids(self) -> list[str]:
        return [request.openid for request, _ in self.asked]


class NoPace:
    def reserve(self, n: int) -> float:
        return 0.0


@dataclass
class Requeue:
    postponed: list[tuple[str, int]] = field(default_factory=list)

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        self.postponed.append((receipt_handle, seconds))


@dataclass
class DeadLetters:
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        self.bodies.append(dict(body))


@dataclass
class Schedules:
    made: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)

    def at(self, name: str, when: int, payload: Mapping[str, Any]) -> None:
        self.made.append((name, when, dict(payload)))


@dataclass
class World:
    store: CampaignStore
    clock: Clock
    events: Events = field(default_factory=Events)
    requeue: Requeue = field(default_factory=Requeue)
    dead: DeadLetters = field(default_factory=DeadLetters)
    schedules: Schedules = field(default_factory=Schedules)

    def worker(self, wechat: WeChat, store: Any = None, **kwargs: Any) -> SendWorker:
        store = store or self.store
        kwargs.setdefault("cache", CampaignCache(store, ttl=0))
        kwargs.setdefault("pacer", NoPace())
        return SendWorker(
            sender=wechat,
            store=store,
            requeue=self.requeue,
            dead_letters=self.dead,
            schedules=self.schedules,
            events=self.events,
            clock=self.clock,
            threads=kwargs.pop("threads", 4),
            **kwargs,
        )


@pytest.fixture
def world(campaigns_table: Any) -> World:
    clock = Clock()
    STREAM.take()
    return World(CampaignStore(campaigns_table, clock=clock), clock)


def counted(world: World) -> None:
    """CountDeliveries runs over what the stream holds, as it does a second or so after the sends."""
    records = STREAM.take()
    if records:
        DeliveryTally(world.store, world.events).apply(records)


def queued(
    openid: str, campaign_id: str = "c1", receive: int = 1, data: dict[str, str] | None = None
) -> QueuedSend:
    return QueuedSend(f"m-{openid}", f"r-{openid}", receive, campaign_id, openid, data)


def counts(world: World, campaign_id: str = "c1") -> dict[str, Any]:
    counted(world)
    got = world.store.get(campaign_id)
    assert got is not None
    return {k: v for k, v in got.counts.items() if v} | ({"failed": got.failed} if got.failed else {})


def state(world: World, campaign_id: str = "c1") -> str:
    counted(world)
    got = world.store.get(campaign_id)
    assert got is not None
    return got.state


# outcomes counted


def test_each_outcome_is_counted_by_kind_and_the_last_one_finishes_the_campaign(world: World) -> None:
    running(world.store, "c1", queued=6)
    wechat = WeChat({"o-b": NO_GRANT, "o-c": BAD_OPENID, "o-d": UNKNOWN, "o-e": BAD_DATA})
    batch = [queued(o) for o in ["o-a", "o-b", "o-c", "o-d", "o-e", "o-f"]]

    retry = world.worker(wechat).process(batch)

    assert retry == []
    assert counts(world) == {
        "queued": 6,
        "sent": 2,
        "skipped": 1,
        "unknown": 1,
        "failed": {"invalid_openid": 1, "invalid_data": 1},
    }
    assert state(world) == "done"
    done = [e for e in world.events.seen if e.state == "done"]
    assert [(e.previous, e.counts["sent"], e.counts["failed"]) for e in done] == [("running", 2, 2)]
    assert world.requeue.postponed == [] and world.dead.bodies == []


def test_each_send_carries_the_campaigns_message_merged_with_the_recipients_data(world: World) -> None:
    world.store.create(campaign("c1", "running", data={"thing1": "Shared", "time2": "10:30"}), [])
    wechat = WeChat()

    world.worker(wechat).process([queued("o-a"), queued("o-b", data={"thing1": "For B"})])

    sent = {request.openid: (request, message_id) for request, message_id in wechat.asked}
    a, b = sent["o-a"][0], sent["o-b"][0]
    assert (a.template_id, a.data) == (TEMPLATE, {"thing1": "Shared", "time2": "10:30"})
    assert b.data == {"thing1": "For B", "time2": "10:30"}
    assert (a.campaign_id, a.queued_as) == ("c1", "m-o-a")
    assert sent["o-a"][1] == message_id_for("c1", "o-a")
    assert sent["o-b"][1] == message_id_for("c1", "o-b")


def test_a_campaign_is_not_done_while_queued_messages_have_no_outcome(world: World) -> None:
    running(world.store, "c1", queued=4)
    worker = world.worker(WeChat())

    worker.process([queued("o-a"), queued("o-b")])
    halfway = state(world)
    worker.process([queued("o-c"), queued("o-d")])

    assert (halfway, state(world)) == ("running", "done")
    assert counts(world) == {"queued": 4, "sent": 4}
    assert [e.state for e in world.events.seen] == ["done"]


def test_a_campaign_still_expanding_is_not_done_when_its_queued_so_far_are_sent(world: World) -> None:
    world.store.create(campaign("c1", audience="list", parts=2), [])
    world.store.page_done("c1", 0, None, 2, last=False)

    world.worker(WeChat()).process([queued("o-a"), queued("o-b")])

    assert state(world) == "expanding"
    assert counts(world) == {"queued": 2, "sent": 2}


def test_a_batch_for_two_campaigns_counts_each_on_its_own(world: World) -> None:
    running(world.store, "c1", queued=2)
    running(world.store, "c2", queued=5)

    world.worker(WeChat({"o-b": NO_GRANT})).process(
        [queued("o-a"), queued("o-b", "c2"), queued("o-c", "c2"), queued("o-d")]
    )

    assert (counts(world, "c1"), state(world, "c1")) == ({"queued": 2, "sent": 2}, "done")
    assert (counts(world, "c2"), state(world, "c2")) == ({"queued": 5, "sent": 1, "skipped": 1}, "running")


def test_a_batch_beyond_the_workers_share_waits_for_it(world: World) -> None:
    running(world.store, "c1", queued=3)
    pacer = Pacer(2, 1, clock=world.clock, sleep=world.clock.sleep)  # 2 a second for this worker

    world.worker(WeChat(), pacer=pacer).process([queued("o-a"), queued("o-b"), queued("o-c")])

    assert world.clock.slept == [pytest.approx(0.5)]
    assert counts(world) == {"queued": 3, "sent": 3}


# replays: the write-ahead record answered instead of WeChat


@pytest.mark.parametrize("replayed_from", ["m-o-a", "m-first-copy"])
def test_a_send_delivered_again_by_sqs_is_counted_once(world: World, replayed_from: str) -> None:
    """Its first attempt's record change is on the stream; the redelivery only replays the record."""
    running(world.store, "c1", queued=1)
    world.worker(WeChat()).process([queued("o-a")])
    replay = replace(SENT, replayed=True, replayed_from=replayed_from)

    retry = world.worker(WeChat({"o-a": replay})).process([queued("o-a")])

    assert retry == []
    assert counts(world) == {"queued": 1, "sent": 1}
    assert state(world) == "done"
    assert world.requeue.postponed == [] and world.dead.bodies == []


def test_the_worker_itself_counts_only_sends_that_left_no_record(world: World) -> None:
    running(world.store, "c1", queued=3)

    world.worker(WeChat({"o-b": NO_GRANT})).process([queued("o-a"), queued("o-b"), queued("o-c")])

    got = world.store.get("c1")
    assert got is not None
    assert {k: v for k, v in got.counts.items() if v} == {"queued": 3, "skipped": 1}
    assert counts(world) == {"queued": 3, "sent": 2, "skipped": 1}


# cancelled and paused campaigns


def test_a_cancelled_campaign_sends_nothing_and_counts_the_batch_cancelled(world: World) -> None:
    running(world.store, "c1", queued=3)
    world.store.transition("c1", "cancelled", allowed=("running",))
    wechat = WeChat()

    retry = world.worker(wechat).process([queued("o-a"), queued("o-b"), queued("o-c")])

    assert retry == []
    assert wechat.asked == []
    assert counts(world) == {"queued": 3, "cancelled": 3}
    assert state(world) == "cancelled"


def test_a_cancel_during_a_batch_stops_it_within_a_second(world: World) -> None:
    running(world.store, "c1", queued=3)
    ticks = Clock(0)
    cache = CampaignCache(world.store, clock=ticks)

    def cancel_then_sent(request: SendRequest) -> Outcome:
        world.store.transition("c1", "cancelled", allowed=("running",))
        ticks.now += 1.0  # the next send starts a second after the cancel was acknowledged
        return SENT

    wechat = WeChat({"o-a": cancel_then_sent})

    world.worker(wechat, cache=cache, threads=1).process([queued("o-a"), queued("o-b"), queued("o-c")])

    assert wechat.openids() == ["o-a"]
    assert counts(world) == {"queued": 3, "sent": 1, "cancelled": 2}


def test_a_paused_campaign_holds_the_batch_until_it_resumes(world: World) -> None:
    running(world.store, "c1", queued=2)
    world.store.transition("c1", "paused", allowed=("running",), reason="quota")
    wechat = WeChat()

    retry = world.worker(wechat).process([queued("o-a"), queued("o-b", data={"thing1": "For B"})])

    got = world.store.get("c1")
    assert retry == []
    assert wechat.asked == []
    assert got is not None and (got.counts["held"], got.held_parts) == (2, 1)
    assert world.store.part("c1", "held", 0) == [
        {"openid": "o-a"},
        {"openid": "o-b", "data": {"thing1": "For B"}},
    ]


def test_outside_its_window_a_campaign_pauses_holds_and_is_scheduled_to_resume(world: World) -> None:
    running(world.store, "c1", queued=1, window=MORNINGS)
    wechat = WeChat()

    retry = world.worker(wechat).process([queued("o-a")])

    got = world.store.get("c1")
    assert retry == []
    assert wechat.asked == []
    assert got is not None and (got.state, got.pause_reason, got.counts["held"]) == ("paused", "window", 1)
    assert world.schedules.made == [
        (f"wxsub-c1-resume-{TOMORROW_9}", TOMORROW_9, {"campaign_id": "c1", "resume": True})
    ]
    assert [(e.previous, e.state, e.reason) for e in world.events.seen] == [("running", "paused", "window")]


def test_inside_its_window_a_campaign_sends(world: World) -> None:
    running(world.store, "c1", queued=1, window={"start": "09:00", "end": "21:00", "tz": "Asia/Shanghai"})
    wechat = WeChat()

    world.worker(wechat).process([queued("o-a")])

    assert wechat.openids() == ["o-a"]
    assert state(world) == "done"


def test_quota_exhausted_pauses_every_active_campaign_until_the_next_beijing_day(world: World) -> None:
    running(world.store, "c1", queued=3)
    world.store.create(campaign("c2", "expanding", created_at=T0 + 1), [])
    world.store.create(campaign("c3", "paused", created_at=T0 + 2), [])
    world.store.transition("c3", "paused", allowed=("paused",), reason="window")
    world.store.create(campaign("c4", "done", created_at=T0 + 3), [])
    world.store.create(campaign("c5", "scheduled", created_at=T0 + 4), [])
    wechat = WeChat({"o-a": errors.QuotaExhausted("45009")})

    retry = world.worker(wechat, threads=1).process([queued("o-a"), queued("o-b"), queued("o-c")])

    resume_at = next_quota_day(T0)
    assert resume_at == T0 + 8 * 3600 + 60  # 00:01 in Beijing
    assert retry == []
    assert wechat.openids() == ["o-a"]  # nothing more went to WeChat after 45009
    assert world.store.part("c1", "held", 0) == [{"openid": "o-a"}, {"openid": "o-b"}, {"openid": "o-c"}]
    reasons = {}
    for campaign_id in ["c1", "c2", "c3", "c4", "c5"]:
        got = world.store.get(campaign_id)
        assert got is not None
        reasons[campaign_id] = (got.state, got.pause_reason)
    assert reasons == {
        "c1": ("paused", "quota"),
        "c2": ("paused", "quota"),
        "c3": ("paused", "window"),
        "c4": ("done", None),
        "c5": ("scheduled", None),
    }
    assert sorted(world.schedules.made) == [
        (f"wxsub-{c}-resume-{resume_at}", resume_at, {"campaign_id": c, "resume": True}) for c in ["c1", "c2"]
    ]
    paused = sorted((e.campaign_id, e.previous, e.reason) for e in world.events.seen if e.state == "paused")
    assert paused == [("c1", "running", "quota"), ("c2", "expanding", "quota")]


# nothing went out: back on the queue, then the DLQ


RETRYABLE = [
    (errors.WeChatUnavailable("WeChat is unavailable"), "wechat_unavailable"),
    (errors.DeadlineReached("too little time"), "wechat_unavailable"),
    (errors.RateLimited("45011"), "rate_limited"),
    (errors.SendInProgress("still running", message_id="m"), "send_in_progress"),
    (errors.StorageUnavailable("throttled"), "storage_unavailable"),
    (RuntimeError("an AWS call failed"), "storage_unavailable"),
]


@pytest.mark.parametrize(("error", "reason"), RETRYABLE)
def test_a_send_that_sent_nothing_comes_back_after_the_retry_delay(
    world: World, error: Exception, reason: str
) -> None:
    running(world.store, "c1", queued=2)

    retry = world.worker(WeChat({"o-a": error}), retry_delay_seconds=45).process(
        [queued("o-a"), queued("o-b")]
    )

    assert retry == ["m-o-a"]
    assert world.requeue.postponed == [("r-o-a", 45)]
    assert world.dead.bodies == []
    assert counts(world) == {"queued": 2, "sent": 1}
    assert state(world) == "running"


@pytest.mark.parametrize("receive", [1, 2, 3])
def test_a_send_that_sent_nothing_is_retried_before_its_last_receive(world: World, receive: int) -> None:
    running(world.store, "c1", queued=1)

    retry = world.worker(WeChat({"o-a": errors.WeChatUnavailable("busy")})).process(
        [queued("o-a", receive=receive)]
    )

    assert retry == ["m-o-a"]
    assert world.dead.bodies == []


@pytest.mark.parametrize(("error", "reason"), RETRYABLE)
def test_at_its_last_receive_a_send_goes_to_the_dlq_with_its_reason_and_counts_failed(
    world: World, error: Exception, reason: str
) -> None:
    running(world.store, "c1", queued=2)

    retry = world.worker(WeChat({"o-b": error}), max_receives=5).process(
        [queued("o-a"), queued("o-b", receive=5, data={"thing1": "For B"})]
    )

    assert retry == []
    assert world.requeue.postponed == []
    assert world.dead.bodies == [
        {"campaign_id": "c1", "openid": "o-b", "data": {"thing1": "For B"}, "reason": reason}
    ]
    assert counts(world) == {"queued": 2, "sent": 1, "failed": {reason: 1}}
    assert state(world) == "done"


class CountingFails:
    """The campaign store with its counter update failing (throttled) for the first ``n`` calls."""

    def __init__(self, store: CampaignStore, n: int = 1) -> None:
        self._store = store
        self.left = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def count(self, campaign_id: str, counts: Mapping[str, int], failed: Mapping[str, int]) -> Any:
        if self.left:
            self.left -= 1
            raise errors.StorageUnavailable("throttled")
        return self._store.count(campaign_id, counts, failed)


def test_when_counting_fails_the_whole_group_comes_back_and_is_counted_on_its_next_attempt(
    world: World,
) -> None:
    running(world.store, "c1", queued=2)
    running(world.store, "c2", queued=1)
    failing = CountingFails(world.store)
    no_grants = WeChat({"o-a": NO_GRANT, "o-b": NO_GRANT, "o-z": NO_GRANT})
    batch = [queued("o-a"), queued("o-b"), queued("o-z", "c2")]

    first = world.worker(no_grants, store=failing, cache=CampaignCache(world.store, ttl=0)).process(batch)
    after_first = counts(world, "c1")
    second = world.worker(no_grants).process(batch[:2])

    assert sorted(first) == ["m-o-a", "m-o-b"]
    assert sorted(world.requeue.postponed) == [("r-o-a", 30), ("r-o-b", 30)]
    assert after_first == {"queued": 2}
    assert counts(world, "c2") == {"queued": 1, "skipped": 1}
    assert second == []
    assert counts(world, "c1") == {"queued": 2, "skipped": 2}
    assert state(world, "c1") == "done"


def test_a_group_whose_postpone_fails_still_comes_back(world: World) -> None:
    running(world.store, "c1", queued=1)

    class Broken:
        def postpone(self, receipt_handle: str, seconds: int) -> None:
            raise RuntimeError("SQS unreachable")

    worker = world.worker(
        WeChat({"o-a": NO_GRANT}), store=CountingFails(world.store), cache=CampaignCache(world.store, ttl=0)
    )
    worker.requeue = Broken()

    assert worker.process([queued("o-a")]) == ["m-o-a"]


def test_sends_for_an_unknown_campaign_are_dropped_without_creating_it(world: World) -> None:
    wechat = WeChat()

    retry = world.worker(wechat).process([queued("o-a", "0123abcd")])

    assert wechat.asked == []
    assert retry == []
    assert world.store.get("0123abcd") is None


# reading SendQueue records


def test_a_record_is_read_with_its_receive_count_and_data() -> None:
    record = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": '{"campaign_id": "c1", "openid": "o-a", "data": {"thing1": "For A", "n": 3}}',
        "attributes": {"ApproximateReceiveCount": "3"},
    }

    assert parse_record(record) == QueuedSend("m-1", "r-1", 3, "c1", "o-a", {"thing1": "For A", "n": "3"})


def test_a_record_without_attributes_or_data_is_a_first_receive() -> None:
    record = {"messageId": "m-1", "receiptHandle": "r-1", "body": '{"campaign_id": "c1", "openid": "o-a"}'}

    assert parse_record(record) == QueuedSend("m-1", "r-1", 1, "c1", "o-a", None)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "null",
        "[]",
        '"c1"',
        '{"campaign_id": "c1"}',
        '{"openid": "o-a"}',
    ],
)
def test_an_unreadable_record_is_none(body: str) -> None:
    assert parse_record({"messageId": "m-1", "receiptHandle": "r-1", "body": body}) is None


def test_a_record_missing_its_envelope_is_none() -> None:
    assert parse_record({"body": '{"campaign_id": "c1", "openid": "o-a"}'}) is None
    assert parse_record({"messageId": "m-1", "receiptHandle": "r-1", "body": None}) is None


def test_data_that_is_not_an_object_is_ignored() -> None:
    record = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": '{"campaign_id": "c1", "openid": "o-a", "data": "x"}',
    }

    parsed = parse_record(record)

    assert parsed is not None and parsed.data is None and parsed.recipient() == {"openid": "o-a"}


def test_shared_data_stays_when_a_recipient_names_none(world: World) -> None:
    running(world.store, "c1", queued=1)
    wechat = WeChat()

    world.worker(wechat).process([queued("o-a")])

    assert wechat.asked[0][0].data == DATA


def test_a_batch_held_on_a_paused_read_just_before_the_resume_is_not_stranded(world: World) -> None:
    running(world.store, "c1", queued=1)
    world.store.transition("c1", "paused", allowed=("running",), reason="quota")
    cache = CampaignCache(world.store, clock=Clock(0))
    cache.get("c1")  # a worker read the campaign a moment ago
    world.store.transition("c1", "running", allowed=("paused",))  # the resume ran; nothing was held yet
    wechat = WeChat()

    world.worker(wechat, cache=cache).process([queued("o-a")])

    got = world.store.get("c1")
    assert got is not None
    assert wechat.openids() == ["o-a"] or not (got.state == "running" and got.counts["held"])
