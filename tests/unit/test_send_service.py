"""SendService: one message through the grant ledger and WeChat (DESIGN.md, send rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from wxsub import errors
from wxsub.observability import metrics
from wxsub.services.send import Outcome, SendRequest, SendService
from wxsub.wechat.api.subscribe import OutgoingMessage
from wxsub.wechat.client import WeChatApiError, WeChatTimeout, WeChatUnreachable

USER, ONE_TIME, LONG_TERM = "o-user", "tmpl-one-time", "tmpl-long-term"
MSGID = "1700827132819554304"  # above 2**53, as WeChat's are


class WeChat:
    """subscribe/send as the sender sees it: answers from a script, then successes; keeps an inbox."""

    def __init__(self, *answers: str | Exception) -> None:
        self._answers = list(answers)
        self.calls = 0
        self.inbox: list[OutgoingMessage] = []

    def send(self, access_token: str, message: OutgoingMessage) -> str:
        self.calls += 1
        answer = self._answers.pop(0) if self._answers else MSGID
        if isinstance(answer, Exception):
            raise answer
        self.inbox.append(message)
        return answer


class Tokens:
    """A token provider whose token always works."""

    def call(self, fn: Callable[[str], Any]) -> Any:
        return fn("access-token")


class RefusingTokens:
    """A token provider that cannot produce a token (its own refresh or an AWS call failed)."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def call(self, fn: Callable[[str], Any]) -> Any:
        raise self._error


class Ledger:
    """The grant ledger's send-path semantics: one-time grants are counted, long-term ones are a flag."""

    def __init__(self) -> None:
        self.one_time: dict[tuple[str, str], int] = {}
        self.long_term: set[tuple[str, str]] = set()

    def grant(self, template_id: str, count: int = 1, openid: str = USER) -> None:
        self.one_time[openid, template_id] = self.one_time.get((openid, template_id), 0) + count

    def subscribe_long_term(self, template_id: str, openid: str = USER) -> None:
        self.long_term.add((openid, template_id))

    def subscribed_long_term(self, template_id: str, openid: str = USER) -> bool:
        return (openid, template_id) in self.long_term

    def left(self, template_id: str, openid: str = USER) -> int:
        return self.one_time.get((openid, template_id), 0)

    def take(self, openid: str, template_id: str, *, long_term: bool) -> bool:
        key = (openid, template_id)
        if long_term:
            return key in self.long_term or self.one_time.get(key, 0) > 0
        if self.one_time.get(key, 0) <= 0:
            return False
        self.one_time[key] -= 1
        return True

    def restore(self, openid: str, template_id: str) -> None:
        self.grant(template_id, 1, openid)

    def exhaust(self, openid: str, template_id: str) -> None:
        self.one_time[openid, template_id] = 0
        self.long_term.discard((openid, template_id))


class Deliveries:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def record(self, message_id: str, request: SendRequest, status: str, **details: Any) -> None:
        self.records[message_id] = {"status": status, "template_id": request.template_id, **details}


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
def deliveries() -> Deliveries:
    return Deliveries()


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
        deliveries=deliveries,
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

    assert outcome == Outcome(200, {"status": "sent", "message_id": "m-1", "msgid": MSGID})
    assert isinstance(outcome.body["msgid"], str)
    assert [message.touser for message in wechat.inbox] == [USER]
    assert ledger.left(ONE_TIME) == 0
    assert deliveries.records["m-1"] == {"status": "sent", "template_id": ONE_TIME, "msgid": MSGID}


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


# A timeout after the request went out: ambiguous, never retried.


def test_a_timeout_is_504_outcome_unknown_with_the_message_id_and_the_grant_stays_spent(
    ledger: Ledger, deliveries: Deliveries, sleeps: Sleeps
) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatTimeout("no answer from WeChat (ReadTimeout)"))

    outcome = service(wechat, ledger, deliveries, sleep=sleeps).send(request(), message_id="m-1")

    assert (outcome.status, outcome.body["error"], outcome.body["message_id"]) == (
        504,
        "outcome_unknown",
        "m-1",
    )
    assert wechat.calls == 1
    assert sleeps.seconds == []
    assert ledger.left(ONE_TIME) == 0
    assert deliveries.records["m-1"]["status"] == "unknown"


def test_a_timeout_after_a_busy_answer_is_not_retried_either(ledger: Ledger) -> None:
    ledger.grant(ONE_TIME)
    wechat = WeChat(WeChatApiError(-1, "system busy"), WeChatTimeout("no answer"))

    outcome = service(wechat, ledger).send(request())

    assert outcome.status == 504
    assert wechat.calls == 2
    assert ledger.left(ONE_TIME) == 0


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
