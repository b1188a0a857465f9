"""SendService: one message through the write-ahead record, the grant ledger and WeChat.

DESIGN.md, send rules. The stores here are in-memory fakes with the real ones' semantics (a
give-back lands with the record's change, as in one transaction); test_send_write_ahead.py runs
the same rules against the real stores on moto.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from wxsub import errors
from wxsub.deadline import Deadline
from wxsub.observability import metrics
from wxsub.services.send import Outcome, SendRequest, SendService
from wxsub.services.tokens import TokenProvider, TokenRefresher
from wxsub.stores.deliveries import Delivery
from wxsub.stores.grants import Taken
from wxsub.stores.parameters import StoredToken
from wxsub.wechat.api.auth import AccessToken
from wxsub.wechat.api.subscribe import OutgoingMessage
from wxsub.wechat.client import WeChatAmbiguous, WeChatApiError, WeChatUnreachable

USER, ONE_TIME, LONG_TERM = "o-user", "tmpl-one-time", "tmpl-long-term"
MSGID = "1700827132819554304"  # above 2**53, as WeChat's are


class WeChat:
    """subscribe/send as the sender sees it: answers from a script, then successes; keeps an inbox.

    ``during`` runs while a request is with WeChat (what other containers do meanwhile).
    """

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
    """A token provider whose token always works; like the real one, it asks ``guard`` first."""

    def call(self, fn: Callable[[str], Any], guard: Callable[[], None] = lambda: None) -> Any:
        guard()
        return fn("access-token")


class RefusingTokens:
    """A token provider that cannot produce a token (its own refresh or an AWS call failed)."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def call(self, fn: Callable[[str], Any], guard: Callable[[], None] = lambda: None) -> Any:
        raise self._error


class Ledger:
    """The grant ledger's send-path semantics.

    One-time grants are counted, long-term ones are a flag; every event moves ``version`` and a
    take does not, so ``exhaust`` zeroes only what no accept changed since the take.
    """

    def __init__(self) -> None:
        self.one_time: dict[tuple[str, str], int] = {}
        self.long_term: set[tuple[str, str]] = set()
        self.version: dict[tuple[str, str], int] = {}
        self.failure: Exception | None = None

    def grant(self, template_id: str, count: int = 1, openid: str = USER) -> None:
        key = (openid, template_id)
        self.one_time[key] = self.one_time.get(key, 0) + count
        self.version[key] = self.version.get(key, 0) + 1

    def subscribe_long_term(self, template_id: str, openid: str = USER) -> None:
        self.long_term.add((openid, template_id))
        self.version[openid, template_id] = self.version.get((openid, template_id), 0) + 1

    def subscribed_long_term(self, template_id: str, openid: str = USER) -> bool:
        return (openid, template_id) in self.long_term

    def left(self, template_id: str, openid: str = USER) -> int:
        return self.one_time.get((openid, template_id), 0)

    def take(self, openid: str, template_id: str, *, long_term: bool) -> Taken | None:
        if self.failure is not None:
            raise self.failure
        key = (openid, template_id)
        seen = self.version.get(key, 0)
        if long_term:
            held = key in self.long_term or self.one_time.get(key, 0) > 0
            return Taken(seen, spent=False) if held else None
        if self.one_time.get(key, 0) <= 0:
            return None
        self.one_time[key] -= 1
        return Taken(seen, spent=True)

    def give_back(self, openid: str, template_id: str) -> dict[str, Any]:
        return {"give_back": (openid, template_id)}

    def apply(self, give_back: Mapping[str, Any]) -> None:
        openid, template_id = give_back["give_back"]
        self.one_time[openid, template_id] = self.one_time.get((openid, template_id), 0) + 1

    def exhaust(self, openid: str, template_id: str, seen: Taken) -> bool:
        key = (openid, template_id)
        if self.version.get(key, 0) != seen.version:
            return False
        self.one_time[key] = 0
        self.long_term.discard(key)
        return True


class Deliveries:
    """The write-ahead journal: one record per message_id, changed only while it is ``sending``.

    A give-back is applied to the ledger together with the change it came with, or not at all.
    ``failing_writes`` makes that many outcome writes (finish) fail, as a throttled table would.
    """

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, tuple[str, str]] = {}
        self.failing_writes = 0
        self._ledger = ledger

    def bind(self, key: str, fingerprint: str, new_id: Callable[[], str]) -> str:
        if key in self.keys:
            bound_to, message_id = self.keys[key]
            if bound_to != fingerprint:
                raise errors.IdempotencyKeyReused("this Idempotency-Key was already used with another body")
            return message_id
        self.keys[key] = (fingerprint, new_id())
        return self.keys[key][1]

    def bound(self, key: str) -> str | None:
        return self.keys[key][1] if key in self.keys else None

    def begin(self, message_id: str, request: Any, *, one_time: bool) -> Delivery | None:
        if message_id in self.records:
            return self.delivery(message_id)
        self.records[message_id] = {
            "status": "sending",
            "openid": request.openid,
            "template_id": request.template_id,
            "grant": "one_time" if one_time else None,
            "answer": None,
            "msgid": None,
            "errcode": None,
        }
        return None

    def without_grant(self, message_id: str) -> None:
        self.records[message_id]["grant"] = None

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
        if self.failing_writes:
            self.failing_writes -= 1
            raise RuntimeError("ProvisionedThroughputExceededException")
        record = self.records.get(message_id)
        if record is None or record["status"] != "sending":
            return False
        record.update(status=status, answer=dict(answer), msgid=msgid or None, errcode=errcode)
        if status != "unknown":
            record["grant"] = None
        self._give(give_back)
        return True

    def release(self, message_id: str, give_back: Mapping[str, Any] | None = None) -> bool:
        record = self.records.get(message_id)
        if record is None or record["status"] != "sending":
            return False
        del self.records[message_id]
        self._give(give_back)
        return True

    def settle(self, message_id: str, status: str, msgid: str | None = None) -> None:
        """What WeChat's sent event or the sweep does to a record later."""
        self.records[message_id].update(status=status, msgid=msgid, grant=None)

    def delivery(self, message_id: str) -> Delivery:
        record = self.records[message_id]
        return Delivery(
            message_id=message_id,
            status=record["status"],
            openid=record["openid"],
            template_id=record["template_id"],
            msgid=record["msgid"],
            errcode=record["errcode"],
            error_status=None,
            created_at=0,
            updated_at=0,
            answer=record["answer"],
            grant=record["grant"],
        )

    def _give(self, give_back: Mapping[str, Any] | None) -> None:
        if give_back is not None:
            assert self._ledger is not None
            self._ledger.apply(give_back)


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def refuse_all(error: errors.WxsubError) -> Callable[[str, Mapping[str, str], bool], dict[str, str]]:
    def check(template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]:
        raise error

    return check


@pytest.fixture(autouse=True)
def one_invocation_of_metrics() -> Iterator[None]:
    """Each test is one invocation: in Lambda, log_metrics flushes and clears after every one."""
    yield
    metrics.clear_metrics()


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def deliveries(ledger: Ledger) -> Deliveries:
    return Deliveries(ledger)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def service(
    wechat: WeChat,
    ledger: Ledger | None = None,
    deliveries: Deliveries | None = None,
    sleep: Callable[[float], None] | None = None,
    **options: Any,
) -> SendService:
    return SendService(
        api=wechat,  # type: ignore[arg-type]
        tokens=options.pop("tokens", Tokens()),
        default_state="formal",
        grants=ledger,
        is_long_term=lambda template_id: template_id == LONG_TERM,
        deliveries=deliveries if deliveries is not None else Deliveries(ledger),
        sleep=sleep or Sleeps(),
        **options,
    )


def request(template_id: str = ONE_TIME, **fields: Any) -> SendRequest:
    return SendRequest(openid=USER, template_id=template_id, data={"thing1": "Your order shipped"}, **fields)


# Success and retries.


def test_a_send_with_a_grant_answers_200_with_the_msgid_as_a_string(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat()

    outcome = service(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert outcome == Outcome(200, {"status": "sent", "message_id": "m-1", "msgid": MSGID}, recorded=True)
    assert isinstance(outcome.body["msgid"], str)
    assert [message.touser for message in wechat.inbox] == [USER]
    assert ledger.left(ONE_TIME) == 0
    record = deliveries.records["m-1"]
    assert (record["status"], record["msgid"], record["grant"]) == ("sent", MSGID, None)
    assert record["answer"] == outcome.stored()


def test_a_send_without_a_message_id_gets_a_fresh_one() -> None:
    first = service(WeChat()).send(request())
    second = service(WeChat()).send(request())

    assert first.body["message_id"] != second.body["message_id"]
    assert len(first.body["message_id"]) == 28


def test_a_busy_wechat_is_retried_with_back_off_until_it_sends_once(ledger: Ledger, sleeps: Sleeps) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(-1, "system busy"), WeChatApiError(-1, "system busy"))

    outcome = service(wechat, ledger, sleep=sleeps).send(request())

    assert outcome.status == 200
    assert wechat.calls == 3
    assert len(wechat.inbox) == 1
    assert sleeps.seconds == [0.2, 0.4]
    assert ledger.left(ONE_TIME) == 0


def test_wechat_busy_on_every_attempt_is_503_and_the_grant_comes_back(
    ledger: Ledger, deliveries: Deliveries, sleeps: Sleeps
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(*[WeChatApiError(-1, "system busy")] * 3)

    with pytest.raises(errors.WeChatUnavailable) as raised:
        service(wechat, ledger, deliveries, sleep=sleeps).send(request())

    assert raised.value.status == 503
    assert wechat.calls == 3
    assert wechat.inbox == []
    assert sleeps.seconds == [0.2, 0.4]
    assert ledger.left(ONE_TIME) == 1
    assert deliveries.records == {}


def test_wechat_unreachable_on_every_attempt_is_503_and_the_grant_comes_back(
    ledger: Ledger, sleeps: Sleeps
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(*[WeChatUnreachable("connection refused")] * 3)

    with pytest.raises(errors.WeChatUnavailable):
        service(wechat, ledger, sleep=sleeps).send(request())

    assert wechat.calls == 3
    assert sleeps.seconds == [0.2, 0.4]
    assert ledger.left(ONE_TIME) == 1


def test_the_per_minute_limit_after_retries_is_429_rate_limited_and_the_grant_comes_back(
    ledger: Ledger,
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(*[WeChatApiError(45011, "api minute-quota reach limit")] * 3)

    with pytest.raises(errors.RateLimited) as raised:
        service(wechat, ledger).send(request())

    assert (raised.value.status, raised.value.code) == (429, "rate_limited")
    assert wechat.calls == 3
    assert ledger.left(ONE_TIME) == 1


def test_a_spent_daily_quota_is_raised_as_429_quota_exhausted_without_a_retry(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(45009, "reach max api daily quota limit"))

    with pytest.raises(errors.QuotaExhausted) as raised:
        service(wechat, ledger, deliveries).send(request())

    assert (raised.value.status, raised.value.code) == (429, "quota_exhausted")
    assert wechat.calls == 1
    assert ledger.left(ONE_TIME) == 1
    assert deliveries.records == {}


def test_a_token_provider_that_cannot_get_a_token_gives_the_grant_back(ledger: Ledger) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat()
    refusing = RefusingTokens(errors.Misconfigured("WeChat refused wxsub's credentials"))

    with pytest.raises(errors.Misconfigured):
        service(wechat, ledger, tokens=refusing).send(request())

    assert wechat.calls == 0
    assert ledger.left(ONE_TIME) == 1


def test_an_aws_failure_during_a_token_heal_gives_the_grant_back(ledger: Ledger) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat()
    failing = RefusingTokens(RuntimeError("DynamoDB unavailable while taking the refresh lease"))

    with pytest.raises(RuntimeError):
        service(wechat, ledger, tokens=failing).send(request())

    assert wechat.calls == 0
    assert ledger.left(ONE_TIME) == 1


# Refusals WeChat answers: stored outcomes, never retried.


def test_data_wechat_refuses_is_422_invalid_data_not_retried_and_the_grant_comes_back(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(47003, "argument invalid! data.thing1.value invalid"))

    outcome = service(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body["error"], outcome.body["errcode"]) == (422, "invalid_data", 47003)
    assert wechat.calls == 1
    assert ledger.left(ONE_TIME) == 1
    assert deliveries.records["m-1"]["status"] == "failed"
    assert deliveries.records["m-1"]["errcode"] == 47003


def test_wechat_saying_the_user_holds_no_grant_is_409_and_the_grant_is_set_to_zero(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME, count=3)
    wechat = WeChat(WeChatApiError(43101, "user refuse to accept the msg"))

    outcome = service(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body["error"]) == (409, "no_grant")
    assert wechat.calls == 1
    assert ledger.left(ONE_TIME) == 0
    assert deliveries.records["m-1"]["errcode"] == 43101


def test_wechat_saying_no_grant_ends_a_long_term_subscription_too(ledger: Ledger) -> None:
    ledger.subscribe_long_term(LONG_TERM)
    wechat = WeChat(WeChatApiError(43101, "user refuse to accept the msg"))

    outcome = service(wechat, ledger).send(request(LONG_TERM))

    assert outcome.status == 409
    assert not ledger.subscribed_long_term(LONG_TERM)


@pytest.mark.parametrize(
    ("errcode", "error"),
    [(40003, "invalid_openid"), (40037, "unknown_template"), (41030, "invalid_page")],
)
def test_a_request_wechat_calls_invalid_is_422_naming_it_and_the_grant_comes_back(
    errcode: int, error: str, ledger: Ledger
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(errcode, "invalid"))

    outcome = service(wechat, ledger).send(request())

    assert (outcome.status, outcome.body["error"], outcome.body["errcode"]) == (422, error, errcode)
    assert wechat.calls == 1
    assert ledger.left(ONE_TIME) == 1


def test_an_errcode_the_contract_does_not_name_is_422_rejected_by_wechat(ledger: Ledger) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(45168, "sensitive words"))

    outcome = service(wechat, ledger).send(request())

    assert (outcome.status, outcome.body["error"], outcome.body["errcode"]) == (
        422,
        "rejected_by_wechat",
        45168,
    )
    assert ledger.left(ONE_TIME) == 1


def test_a_failed_long_term_send_gives_back_nothing_since_it_spent_nothing(ledger: Ledger) -> None:
    ledger.subscribe_long_term(LONG_TERM)
    wechat = WeChat(WeChatApiError(47003, "argument invalid!"))

    outcome = service(wechat, ledger).send(request(LONG_TERM))

    assert outcome.status == 422
    assert ledger.left(LONG_TERM) == 0
    assert ledger.subscribed_long_term(LONG_TERM)


def test_a_long_term_send_spends_none_of_the_users_one_time_grants(ledger: Ledger) -> None:
    ledger.grant(LONG_TERM, count=2)

    outcome = service(WeChat(), ledger).send(request(LONG_TERM))

    assert outcome.status == 200
    assert ledger.left(LONG_TERM) == 2


# No clean answer after the request went out: ambiguous, never retried.


@pytest.mark.parametrize(
    "ambiguous",
    [
        WeChatAmbiguous("no complete answer from WeChat (ReadTimeout)"),
        WeChatAmbiguous("WeChat answered HTTP 502"),
        WeChatAmbiguous("no complete answer from WeChat (RemoteProtocolError)"),
        WeChatAmbiguous("WeChat answered with a body that is not JSON"),
    ],
    ids=["read-timeout", "502-page", "cut-off-body", "not-json"],
)
def test_an_ambiguous_answer_is_504_outcome_unknown_with_the_message_id_and_the_grant_stays_spent(
    ambiguous: WeChatAmbiguous, ledger: Ledger, deliveries: Deliveries, sleeps: Sleeps
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(ambiguous)

    outcome = service(wechat, ledger, deliveries, sleep=sleeps).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body["error"], outcome.body["message_id"]) == (
        504,
        "outcome_unknown",
        "m-1",
    )
    assert wechat.calls == 1
    assert sleeps.seconds == []
    assert ledger.left(ONE_TIME) == 0
    record = deliveries.records["m-1"]
    assert (record["status"], record["grant"], record["answer"]) == ("unknown", "one_time", outcome.stored())


def test_an_ambiguous_answer_after_a_busy_answer_is_not_retried_either(ledger: Ledger) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(-1, "system busy"), WeChatAmbiguous("no complete answer"))

    outcome = service(wechat, ledger).send(request())

    assert outcome.status == 504
    assert wechat.calls == 2
    assert ledger.left(ONE_TIME) == 0


def test_a_retry_of_an_ambiguous_send_answers_the_same_504_without_calling_wechat_again(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME, count=2)
    wechat = WeChat(WeChatAmbiguous("no complete answer from WeChat (ReadTimeout)"))
    sender = service(wechat, ledger, deliveries)

    first = sender.send(request(), key="order-1")
    again = sender.send(request(), key="order-1")

    assert again.stored() == first.stored()
    assert first.status == 504
    assert wechat.calls == 1
    assert ledger.left(ONE_TIME) == 1


# The ledger and the data check, before WeChat.


def test_without_a_grant_the_send_is_409_and_wechat_is_not_called(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    wechat = WeChat()

    outcome = service(wechat, ledger, deliveries).send(request())

    assert (outcome.status, outcome.body["error"]) == (409, "no_grant")
    assert wechat.calls == 0
    assert deliveries.records == {}


def test_a_long_term_template_without_a_subscription_is_409(ledger: Ledger) -> None:
    wechat = WeChat()

    outcome = service(wechat, ledger).send(request(LONG_TERM))

    assert outcome.status == 409
    assert wechat.calls == 0


def test_with_the_ledger_ignored_a_send_without_a_grant_reaches_wechat(ledger: Ledger) -> None:
    wechat = WeChat()

    outcome = service(wechat, ledger).send(request(ledger="ignore"))

    assert outcome.status == 200
    assert len(wechat.inbox) == 1
    assert ledger.left(ONE_TIME) == 0


def test_with_the_ledger_ignored_a_refused_send_gives_back_nothing_it_never_took(ledger: Ledger) -> None:
    wechat = WeChat(WeChatApiError(47003, "argument invalid!"))

    outcome = service(wechat, ledger).send(request(ledger="ignore"))

    assert outcome.status == 422
    assert ledger.left(ONE_TIME) == 0


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.InvalidData("data breaks the template's keyword rules", violations=[]), 422, "invalid_data"),
        (errors.UnknownTemplate("not one of this mini program's templates"), 422, "unknown_template"),
    ],
)
def test_data_the_check_refuses_is_a_stored_outcome_with_no_wechat_call_and_no_grant_taken(
    error: errors.WxsubError, status: int, code: str, ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat()

    outcome = service(wechat, ledger, deliveries, check=refuse_all(error)).send(request())

    assert (outcome.status, outcome.body["error"]) == (status, code)
    assert wechat.calls == 0
    assert ledger.left(ONE_TIME) == 1
    assert deliveries.records == {}


def test_the_values_the_check_returns_are_the_ones_sent() -> None:
    def fit(template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]:
        return {key: value[:4] + "…" for key, value in data.items()} if fit else dict(data)

    wechat = WeChat()

    service(wechat, check=fit).send(request(fit=True))

    assert wechat.inbox[0].data == {"thing1": "Your…"}


# What goes out.


def test_a_request_naming_no_state_is_sent_with_the_default_state_and_chinese() -> None:
    wechat = WeChat()

    service(wechat).send(request(page="pages/order?id=1"))

    sent = wechat.inbox[0]
    assert (sent.miniprogram_state, sent.lang, sent.page) == ("formal", "zh_CN", "pages/order?id=1")


def test_a_request_naming_its_state_and_language_keeps_them() -> None:
    wechat = WeChat()

    service(wechat).send(request(miniprogram_state="trial", lang="en_US"))

    assert (wechat.inbox[0].miniprogram_state, wechat.inbox[0].lang) == ("trial", "en_US")


def test_a_success_naming_no_msgid_is_sent_with_a_null_msgid(ledger: Ledger, deliveries: Deliveries) -> None:
    ledger.grant(ONE_TIME)

    outcome = service(WeChat(""), ledger, deliveries).send(request(), message_id="m-1")

    assert outcome == Outcome(200, {"status": "sent", "message_id": "m-1", "msgid": None}, recorded=True)
    assert deliveries.records["m-1"]["status"] == "sent"


# Write-ahead: one record per send, written before WeChat is called.


def test_a_keyed_send_is_written_ahead_and_its_retry_answers_the_stored_outcome_without_wechat(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME, count=2)
    wechat = WeChat()
    sender = service(wechat, ledger, deliveries)

    first = sender.send(request(), key="order-1")
    again = sender.send(request(), key="order-1")

    assert first.status == 200
    assert again.stored() == first.stored()
    assert len(wechat.inbox) == 1
    assert ledger.left(ONE_TIME) == 1
    assert deliveries.bound("order-1") == first.body["message_id"]
    assert deliveries.records[first.body["message_id"]]["status"] == "sent"


def test_different_keys_are_different_sends(ledger: Ledger, deliveries: Deliveries) -> None:
    ledger.grant(ONE_TIME, count=2)
    wechat = WeChat()
    sender = service(wechat, ledger, deliveries)

    first = sender.send(request(), key="order-1")
    second = sender.send(request(), key="order-2")

    assert first.body["message_id"] != second.body["message_id"]
    assert len(wechat.inbox) == 2
    assert ledger.left(ONE_TIME) == 0


def test_a_key_reused_with_another_body_is_refused_and_nothing_is_sent(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME, count=2)
    wechat = WeChat()
    sender = service(wechat, ledger, deliveries)
    sender.send(request(), key="order-1")

    with pytest.raises(errors.IdempotencyKeyReused) as raised:
        sender.send(request(page="pages/other"), key="order-1")

    assert (raised.value.status, raised.value.code) == (422, "idempotency_key_reused")
    assert len(wechat.inbox) == 1
    assert ledger.left(ONE_TIME) == 1


def test_a_send_that_meets_a_sending_record_is_409_in_progress_and_never_calls_wechat(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    """The first attempt wrote its record and may be with WeChat right now."""
    ledger.grant(ONE_TIME, count=2)
    caught: list[errors.SendInProgress] = []
    wechat = WeChat()
    sender = service(wechat, ledger, deliveries)

    def retry_meanwhile() -> None:
        with pytest.raises(errors.SendInProgress) as raised:
            sender.send(request(), key="order-1")
        caught.append(raised.value)

    wechat.during = retry_meanwhile

    first = sender.send(request(), key="order-1")

    assert first.status == 200
    (in_progress,) = caught
    assert (in_progress.status, in_progress.code) == (409, "send_in_progress")
    assert in_progress.body()["message_id"] == first.body["message_id"]
    assert (wechat.calls, len(wechat.inbox)) == (1, 1)
    assert ledger.left(ONE_TIME) == 1


def test_a_record_settled_after_its_writer_stopped_answers_from_the_record(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    """The function stopped before writing the answer; WeChat's sent event settled the record since."""
    ledger.grant(ONE_TIME)
    deliveries.begin("m-1", request(), one_time=True)
    deliveries.settle("m-1", "delivered", msgid=MSGID)
    wechat = WeChat()

    outcome = service(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body) == (200, {"status": "sent", "message_id": "m-1", "msgid": MSGID})
    assert wechat.calls == 0
    assert ledger.left(ONE_TIME) == 1


def test_a_record_given_up_after_its_writer_stopped_answers_outcome_unknown(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    deliveries.begin("m-1", request(), one_time=True)
    deliveries.settle("m-1", "failed")
    wechat = WeChat()

    outcome = service(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body["error"], outcome.body["message_id"]) == (
        504,
        "outcome_unknown",
        "m-1",
    )
    assert wechat.calls == 0


@pytest.mark.parametrize(
    "failure",
    [WeChatApiError(-1, "system busy"), WeChatUnreachable("cannot connect to WeChat (ConnectError)")],
    ids=["busy", "unreachable"],
)
def test_nothing_sent_after_every_attempt_releases_the_record_and_the_grant_so_the_key_can_retry(
    failure: Exception, ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(*[failure] * 3)
    sender = service(wechat, ledger, deliveries)

    with pytest.raises(errors.WeChatUnavailable) as raised:
        sender.send(request(), key="order-1")
    assert raised.value.status == 503
    assert deliveries.records == {}
    assert ledger.left(ONE_TIME) == 1

    retried = sender.send(request(), key="order-1")

    assert retried.status == 200
    assert retried.body["message_id"] == deliveries.bound("order-1")
    assert len(wechat.inbox) == 1
    assert ledger.left(ONE_TIME) == 0


def test_a_key_bound_by_a_send_naming_an_alias_retries_naming_the_id_after_nothing_was_sent(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    """The key binds the resolved request: an alias and its template id are the same request, so a
    retry after a 503 sends, whichever of the two it names."""
    ledger.grant(ONE_TIME)
    busy = WeChatApiError(-1, "system error")
    wechat = WeChat(busy, busy, busy)
    sender = service(wechat, ledger, deliveries)

    with pytest.raises(errors.WeChatUnavailable):
        sender.send(request(template_alias="order_shipped"), key="order-1")
    retried = sender.send(request(), key="order-1")

    assert retried.status == 200, retried.body
    assert retried.body["message_id"] == deliveries.bound("order-1")
    assert len(wechat.inbox) == 1


def test_a_refused_send_is_recorded_failed_and_its_grant_comes_back_exactly_once(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(47003, "argument invalid! data.thing1.value invalid"))
    sender = service(wechat, ledger, deliveries)

    first = sender.send(request(), key="order-1")
    again = sender.send(request(), key="order-1")

    assert (first.status, first.body["errcode"]) == (422, 47003)
    assert again.stored() == first.stored()
    assert wechat.calls == 1
    assert ledger.left(ONE_TIME) == 1
    record = deliveries.records[str(deliveries.bound("order-1"))]
    assert (record["status"], record["errcode"], record["grant"]) == ("failed", 47003, None)


def test_no_grant_from_wechat_keeps_an_accept_that_arrived_while_the_send_was_in_flight(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(
        WeChatApiError(43101, "user refuse to accept the msg"), during=lambda: ledger.grant(ONE_TIME)
    )

    outcome = service(wechat, ledger, deliveries).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body["error"]) == (409, "no_grant")
    assert ledger.left(ONE_TIME) == 1
    assert deliveries.records["m-1"]["status"] == "failed"


def test_a_grant_that_cannot_be_taken_releases_the_record(ledger: Ledger, deliveries: Deliveries) -> None:
    ledger.grant(ONE_TIME)
    ledger.failure = RuntimeError("DynamoDB unavailable")
    wechat = WeChat()
    sender = service(wechat, ledger, deliveries)

    with pytest.raises(RuntimeError):
        sender.send(request(), key="order-1")
    ledger.failure = None
    retried = sender.send(request(), key="order-1")

    assert retried.status == 200
    assert len(wechat.inbox) == 1
    assert ledger.left(ONE_TIME) == 0


def test_without_a_grant_the_record_is_released_so_a_later_subscribe_can_send(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    sender = service(WeChat(), ledger, deliveries)

    refused = sender.send(request(), key="order-1")
    ledger.grant(ONE_TIME)
    retried = sender.send(request(), key="order-1")

    assert refused.status == 409
    assert retried.status == 200


def test_a_send_made_with_the_ledger_ignored_and_no_grant_has_no_grant_to_give_back(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    wechat = WeChat(WeChatAmbiguous("no complete answer"))

    outcome = service(wechat, ledger, deliveries).send(request(ledger="ignore"), message_id="m-1")

    assert outcome.status == 504
    assert (deliveries.records["m-1"]["status"], deliveries.records["m-1"]["grant"]) == ("unknown", None)


# After WeChat answered, nothing escapes unrecorded.


def test_a_sent_message_whose_outcome_cannot_be_written_is_504_and_its_record_stays_sending(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    deliveries.failing_writes = 100
    wechat = WeChat()
    sender = service(wechat, ledger, deliveries)

    outcome = sender.send(request(), key="order-1")

    assert (outcome.status, outcome.body["error"]) == (504, "outcome_unknown")
    assert len(wechat.inbox) == 1
    message_id = outcome.body["message_id"]
    assert deliveries.records[message_id]["status"] == "sending"
    assert ledger.left(ONE_TIME) == 0
    with pytest.raises(errors.SendInProgress):
        sender.send(request(), key="order-1")
    assert len(wechat.inbox) == 1


def test_an_outcome_write_that_fails_briefly_is_retried_and_the_sent_answer_stands(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    deliveries.failing_writes = 2

    outcome = service(WeChat(), ledger, deliveries).send(request(), message_id="m-1")

    assert outcome == Outcome(200, {"status": "sent", "message_id": "m-1", "msgid": MSGID}, recorded=True)
    assert deliveries.records["m-1"]["status"] == "sent"


def test_a_refused_send_whose_outcome_cannot_be_written_keeps_its_grant_for_the_sweep(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    """The give-back travels with the outcome write: neither lands, so the grant is not returned twice."""
    ledger.grant(ONE_TIME)
    deliveries.failing_writes = 100

    outcome = service(WeChat(WeChatApiError(47003, "argument invalid!")), ledger, deliveries).send(
        request(), message_id="m-1"
    )

    assert outcome.status == 422
    assert (deliveries.records["m-1"]["status"], deliveries.records["m-1"]["grant"]) == (
        "sending",
        "one_time",
    )
    assert ledger.left(ONE_TIME) == 0


# Deadline-aware: no WeChat call starts unless its answer can be recorded in time.


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def bound_deadline(clock: Clock, millis: int) -> Deadline:
    deadline = Deadline(clock)
    deadline.bind(Context(millis))
    return deadline


def test_with_too_little_time_left_nothing_is_sent_and_the_record_and_grant_are_released(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat()
    clock = Clock()
    sender = service(
        wechat,
        ledger,
        deliveries,
        deadline=bound_deadline(clock, 10_000),
        call_seconds=8.0,
        record_seconds=3.0,
    )

    with pytest.raises(errors.DeadlineReached) as raised:
        sender.send(request(), key="order-1")

    assert (raised.value.status, raised.value.code) == (503, "wechat_unavailable")
    assert wechat.calls == 0
    assert deliveries.records == {}
    assert ledger.left(ONE_TIME) == 1

    sender.deadline.bind(Context(20_000))
    retried = sender.send(request(), key="order-1")

    assert retried.status == 200
    assert len(wechat.inbox) == 1


def test_a_retry_is_not_started_once_the_back_off_has_used_up_the_time(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += 5 + seconds

    wechat = WeChat(WeChatApiError(-1, "system busy"))
    sender = service(
        wechat,
        ledger,
        deliveries,
        sleep=sleep,
        deadline=bound_deadline(clock, 15_000),
        call_seconds=8.0,
        record_seconds=3.0,
    )

    with pytest.raises(errors.DeadlineReached):
        sender.send(request())

    assert wechat.calls == 1
    assert deliveries.records == {}
    assert ledger.left(ONE_TIME) == 1


def test_a_failing_outcome_write_is_not_retried_past_the_deadline(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    clock = Clock()
    deadline = bound_deadline(clock, 12_000)

    def sleep(seconds: float) -> None:
        clock.now += seconds + 2  # the back-off, then the next write's own SDK retries

    def slow_answer() -> None:
        clock.now += 7

    wechat = WeChat(during=slow_answer)
    deliveries.failing_writes = 100
    sender = service(
        wechat, ledger, deliveries, sleep=sleep, deadline=deadline, call_seconds=8.0, record_seconds=3.0
    )

    outcome = sender.send(request(), message_id="m-1")

    assert outcome.status == 504
    assert deadline.left() > 0
    assert deliveries.records["m-1"]["status"] == "sending"


class TokenStore:
    def __init__(self, token: str) -> None:
        self.parameter = StoredToken(token, 2_000_000_000)

    def get(self, *, force: bool = False) -> StoredToken | None:
        return self.parameter

    def put(self, access_token: str, expires_in: int) -> StoredToken:
        self.parameter = StoredToken(access_token, 2_000_000_000)
        return self.parameter


class Leases:
    def acquire(self, name: str, ttl_seconds: int) -> bool:
        return True

    def release(self, name: str) -> None:
        pass


class SlowTokenWeChat:
    """WeChat that honours only ``current`` and takes ``seconds`` of the invocation per request."""

    def __init__(self, current: str, clock: Clock, seconds: float) -> None:
        self.current, self._clock, self._seconds = current, clock, seconds
        self.inbox: list[OutgoingMessage] = []
        self.stable_token_calls = 0

    def stable_token(self, secret: str) -> AccessToken:
        self.stable_token_calls += 1
        return AccessToken(self.current, 7200)

    def send(self, access_token: str, message: OutgoingMessage) -> str:
        self._clock.now += self._seconds
        if access_token != self.current:
            raise WeChatApiError(40001, "invalid credential, access_token is invalid or not latest")
        self.inbox.append(message)
        return MSGID


def test_a_token_heal_is_not_started_when_the_time_left_cannot_cover_it(
    ledger: Ledger, deliveries: Deliveries
) -> None:
    ledger.grant(ONE_TIME)
    clock = Clock()
    wechat = SlowTokenWeChat(current="new", clock=clock, seconds=8.0)
    store = TokenStore("old")
    tokens = TokenProvider(store, TokenRefresher(wechat, store, lambda: "secret"), Leases())  # type: ignore[arg-type]
    sender = service(
        wechat,  # type: ignore[arg-type]
        ledger,
        deliveries,
        tokens=tokens,
        deadline=bound_deadline(clock, 15_000),
        call_seconds=8.0,
        record_seconds=3.0,
    )

    with pytest.raises(errors.DeadlineReached):
        sender.send(request(), message_id="m-1")

    assert wechat.stable_token_calls == 0
    assert wechat.inbox == []
    assert store.parameter.access_token == "old"
    assert deliveries.records == {}
    assert ledger.left(ONE_TIME) == 1


def test_a_token_heal_with_time_to_spare_sends(ledger: Ledger, deliveries: Deliveries) -> None:
    ledger.grant(ONE_TIME)
    clock = Clock()
    wechat = SlowTokenWeChat(current="new", clock=clock, seconds=1.0)
    store = TokenStore("old")
    tokens = TokenProvider(store, TokenRefresher(wechat, store, lambda: "secret"), Leases())  # type: ignore[arg-type]
    sender = service(
        wechat,  # type: ignore[arg-type]
        ledger,
        deliveries,
        tokens=tokens,
        deadline=bound_deadline(clock, 20_000),
        call_seconds=8.0,
        record_seconds=3.0,
    )

    outcome = sender.send(request(), message_id="m-1")

    assert outcome.status == 200
    assert len(wechat.inbox) == 1
    assert wechat.stable_token_calls == 1
