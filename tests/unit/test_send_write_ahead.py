"""Exactly once under failure: SendService over the real deliveries and grant stores (moto in-process).

DESIGN.md, send rules: a ``sending`` record is written before WeChat is called; nothing that may
have reached WeChat is sent again; a send that provably went nowhere is released with its grant;
an ambiguous one keeps its grant until WeChat's sent event, or the sweep, settles it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from wxsub import errors
from wxsub.deadline import Deadline
from wxsub.observability import metrics
from wxsub.services.send import SendRequest, SendService
from wxsub.services.settle import SettleUnknown
from wxsub.stores.deliveries import Deliveries, Delivery
from wxsub.stores.grants import GrantLedger
from wxsub.wechat.api.subscribe import OutgoingMessage
from wxsub.wechat.client import WeChatAmbiguous, WeChatApiError, WeChatUnreachable

T0 = 1_800_000_000
USER, ONE_TIME = "o-user", "tmpl-one-time"
MSGID = "1700827132819554304"
WINDOW = 600


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


class WeChat:
    """subscribe/send: answers from a script, then successes; ``during`` runs while WeChat has it."""

    def __init__(self, *answers: str | Exception, during: Callable[[], None] | None = None) -> None:
        self._answers = list(answers)
        self.during = during
        self.calls = 0
        self.inbox: list[OutgoingMessage] = []

    def send(self, access_token: str, message: OutgoingMessage) -> str:
        self.calls += 1
        if self.during is not None:
            self.during()
        answer = self._answers.pop(0) if self._answers else MSGID
        if isinstance(answer, Exception):
            raise answer
        self.inbox.append(message)
        return answer


class Tokens:
    def call(self, fn: Callable[[str], Any], guard: Callable[[], None] = lambda: None) -> Any:
        guard()
        return fn("access-token")


class OutcomeWritesFail:
    """The deliveries store with its table throttling every outcome write (botocore gave up)."""

    def __init__(self, deliveries: Deliveries) -> None:
        self._deliveries = deliveries

    def __getattr__(self, name: str) -> Any:
        return getattr(self._deliveries, name)

    def finish(self, *args: Any, **kwargs: Any) -> bool:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}},
            "UpdateItem",
        )


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


@pytest.fixture(autouse=True)
def one_invocation_of_metrics() -> Iterator[None]:
    yield
    metrics.clear_metrics()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deliveries(deliveries_table: Any, clock: Clock) -> Deliveries:
    return Deliveries(deliveries_table, clock=clock)


@pytest.fixture
def ledger(grants_table: Any) -> GrantLedger:
    return GrantLedger(grants_table)


def grant(ledger: GrantLedger, count: int = 1, at: int = T0) -> None:
    """``count`` accepts reported by the mini program, each counted."""
    for i in range(count):
        ledger.record_accept(USER, ONE_TIME, source="report", at=at + i, long_term=False)


def left(ledger: GrantLedger) -> int:
    return ledger.get(USER, ONE_TIME).one_time


def sender(wechat: WeChat, ledger: GrantLedger, deliveries: Any, **options: Any) -> SendService:
    return SendService(
        api=wechat,  # type: ignore[arg-type]
        tokens=Tokens(),  # type: ignore[arg-type]
        default_state="formal",
        deliveries=deliveries,
        grants=ledger,
        sleep=lambda seconds: None,
        **options,
    )


def request(**fields: Any) -> SendRequest:
    return SendRequest(openid=USER, template_id=ONE_TIME, data={"thing1": "Your order shipped"}, **fields)


def record(deliveries: Deliveries, message_id: str) -> Delivery:
    found = deliveries.get(message_id)
    assert found is not None, message_id
    return found


def sent_event(deliveries: Deliveries, at: int, msgid: str = MSGID) -> Delivery | None:
    return deliveries.apply_sent_event(
        openid=USER, template_id=ONE_TIME, msgid=msgid, error_code=0, error_status="success", at=at
    )


def sweep(deliveries: Deliveries, ledger: GrantLedger, clock: Clock) -> int:
    clock.now += WINDOW + 1
    return SettleUnknown(deliveries, ledger, window_seconds=WINDOW, clock=clock).run()


def test_a_keyed_send_is_recorded_and_its_retry_answers_from_the_record_without_wechat(
    ledger: GrantLedger, deliveries: Deliveries
) -> None:
    grant(ledger, 2)
    wechat = WeChat()
    service = sender(wechat, ledger, deliveries)

    first = service.send(request(), key="order-1")
    again = service.send(request(), key="order-1")

    assert first.status == 200 and again.stored() == first.stored()
    assert len(wechat.inbox) == 1
    assert left(ledger) == 1
    delivered = record(deliveries, first.body["message_id"])
    assert (delivered.status, delivered.msgid, delivered.grant) == ("sent", MSGID, None)


def test_a_retry_while_the_first_attempt_is_with_wechat_is_409_and_sends_nothing(
    ledger: GrantLedger, deliveries: Deliveries
) -> None:
    grant(ledger, 2)
    caught: list[errors.SendInProgress] = []
    wechat = WeChat()
    service = sender(wechat, ledger, deliveries)

    def retry_meanwhile() -> None:
        with pytest.raises(errors.SendInProgress) as raised:
            service.send(request(), key="order-1")
        caught.append(raised.value)

    wechat.during = retry_meanwhile

    first = service.send(request(), key="order-1")

    assert first.status == 200
    assert [e.body()["message_id"] for e in caught] == [first.body["message_id"]]
    assert len(wechat.inbox) == 1
    assert left(ledger) == 1


@pytest.mark.parametrize(
    "failure",
    [WeChatApiError(-1, "system busy"), WeChatUnreachable("cannot connect to WeChat (ConnectError)")],
    ids=["busy", "unreachable"],
)
def test_a_send_that_went_nowhere_is_released_with_its_grant_and_the_same_key_sends_later(
    failure: Exception, ledger: GrantLedger, deliveries: Deliveries, clock: Clock
) -> None:
    grant(ledger)
    wechat = WeChat(*[failure] * 3)
    service = sender(wechat, ledger, deliveries)

    with pytest.raises(errors.WeChatUnavailable):
        service.send(request(), key="order-1")
    message_id = deliveries.bound("order-1")
    assert message_id is not None and deliveries.get(message_id) is None
    assert left(ledger) == 1

    retried = service.send(request(), key="order-1")

    assert retried.status == 200
    assert retried.body["message_id"] == message_id
    assert len(wechat.inbox) == 1
    assert left(ledger) == 0
    assert sweep(deliveries, ledger, clock) == 0
    assert left(ledger) == 0


def test_an_ambiguous_send_is_recorded_unknown_keeps_its_grant_and_its_sent_event_settles_it(
    ledger: GrantLedger, deliveries: Deliveries, clock: Clock
) -> None:
    grant(ledger, 2)
    wechat = WeChat(WeChatAmbiguous("WeChat answered HTTP 502"))
    service = sender(wechat, ledger, deliveries)

    first = service.send(request(), key="order-1")
    again = service.send(request(), key="order-1")

    assert (first.status, first.body["error"]) == (504, "outcome_unknown")
    assert again.stored() == first.stored()
    assert wechat.calls == 1
    message_id = first.body["message_id"]
    assert (record(deliveries, message_id).status, record(deliveries, message_id).grant) == (
        "unknown",
        "one_time",
    )
    assert left(ledger) == 1

    settled = sent_event(deliveries, at=T0 + 2)

    assert settled is not None and (settled.message_id, settled.status) == (message_id, "delivered")
    assert sweep(deliveries, ledger, clock) == 0
    assert left(ledger) == 1


def test_an_ambiguous_send_with_no_sent_event_is_given_up_and_its_grant_returns(
    ledger: GrantLedger, deliveries: Deliveries, clock: Clock
) -> None:
    grant(ledger)
    outcome = sender(WeChat(WeChatAmbiguous("no complete answer (ReadTimeout)")), ledger, deliveries).send(
        request(), message_id="m-1"
    )

    assert outcome.status == 504
    assert left(ledger) == 0
    assert sweep(deliveries, ledger, clock) == 1
    assert (record(deliveries, "m-1").status, record(deliveries, "m-1").error_status) == (
        "failed",
        "no_sent_event",
    )
    assert left(ledger) == 1


def test_a_refused_send_gives_its_grant_back_exactly_once(
    ledger: GrantLedger, deliveries: Deliveries, clock: Clock
) -> None:
    grant(ledger)
    wechat = WeChat(WeChatApiError(47003, "argument invalid! data.thing1.value invalid"))
    service = sender(wechat, ledger, deliveries)

    first = service.send(request(), key="order-1")
    again = service.send(request(), key="order-1")

    assert (first.status, first.body["errcode"]) == (422, 47003)
    assert again.stored() == first.stored()
    message_id = str(deliveries.bound("order-1"))
    assert (record(deliveries, message_id).status, record(deliveries, message_id).errcode) == (
        "failed",
        47003,
    )
    assert left(ledger) == 1
    assert sweep(deliveries, ledger, clock) == 0
    assert left(ledger) == 1


def test_no_grant_from_wechat_zeroes_the_grant(ledger: GrantLedger, deliveries: Deliveries) -> None:
    grant(ledger, 3)
    wechat = WeChat(WeChatApiError(43101, "user refuse to accept the msg"))

    outcome = sender(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body["error"]) == (409, "no_grant")
    assert left(ledger) == 0
    assert (record(deliveries, "m-1").status, record(deliveries, "m-1").errcode) == ("failed", 43101)


def test_no_grant_from_wechat_keeps_an_accept_counted_while_the_send_was_in_flight(
    ledger: GrantLedger, deliveries: Deliveries
) -> None:
    grant(ledger)
    wechat = WeChat(
        WeChatApiError(43101, "user refuse to accept the msg"), during=lambda: grant(ledger, at=T0 + 60)
    )

    outcome = sender(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert outcome.status == 409
    assert left(ledger) == 1


def test_a_sent_message_whose_outcome_write_fails_is_504_stays_sending_and_its_event_settles_it(
    ledger: GrantLedger, deliveries: Deliveries, clock: Clock
) -> None:
    grant(ledger)
    wechat = WeChat()
    failing = sender(wechat, ledger, OutcomeWritesFail(deliveries))

    outcome = failing.send(request(), key="order-1")

    assert (outcome.status, outcome.body["error"]) == (504, "outcome_unknown")
    message_id = outcome.body["message_id"]
    assert record(deliveries, message_id).status == "sending"
    with pytest.raises(errors.SendInProgress):
        sender(wechat, ledger, deliveries).send(request(), key="order-1")
    assert len(wechat.inbox) == 1

    assert sent_event(deliveries, at=T0 + 1) is None
    assert sweep(deliveries, ledger, clock) == 0

    settled = record(deliveries, message_id)
    assert (settled.status, settled.msgid) == ("delivered", MSGID)
    assert left(ledger) == 0
    replayed = sender(wechat, ledger, deliveries).send(request(), key="order-1")
    assert replayed.stored() == {
        "status": 200,
        "body": {"status": "sent", "message_id": message_id, "msgid": MSGID},
    }
    assert len(wechat.inbox) == 1


def test_with_too_little_time_left_nothing_is_sent_and_the_send_is_released(
    ledger: GrantLedger, deliveries: Deliveries
) -> None:
    grant(ledger)
    wechat = WeChat()
    deadline = Deadline(lambda: 0.0)
    deadline.bind(Context(5_000))
    service = sender(wechat, ledger, deliveries, deadline=deadline, call_seconds=8.0, record_seconds=3.0)

    with pytest.raises(errors.DeadlineReached) as raised:
        service.send(request(), message_id="m-1")

    assert raised.value.status == 503
    assert wechat.calls == 0
    assert deliveries.get("m-1") is None
    assert left(ledger) == 1
