"""Idempotency-Key on Powertools Idempotency, backed by the send's own write-ahead record (moto in-process).

The idempotency record can fail where the send's record does not; the caller must still get the
send's answer, and a retry must never reach WeChat a second time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.exceptions import ClientError

from wxsub import errors
from wxsub.observability import metrics
from wxsub.services.idempotent import IdempotentSends, send_idempotently
from wxsub.services.send import SendRequest, SendService
from wxsub.stores.deliveries import Deliveries
from wxsub.stores.grants import GrantLedger
from wxsub.wechat.api.subscribe import OutgoingMessage
from wxsub.wechat.client import WeChatApiError

T0 = 1_800_000_000
USER, ONE_TIME = "o-user", "tmpl-one-time"
MSGID = "1700827132819554304"


class WeChat:
    def __init__(self, *answers: str | Exception, during: Callable[[], None] | None = None) -> None:
        self._answers = list(answers)
        self.during = during
        self.inbox: list[OutgoingMessage] = []

    def send(self, access_token: str, message: OutgoingMessage) -> str:
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


class Context:
    """What Lambda hands the function; Powertools bounds its in-progress record by it."""

    function_name = "send_message"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-east-1:123456789012:function:send_message"
    aws_request_id = "r-1"

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


class Faults:
    """Fails chosen DynamoDB operations on the idempotency layer's own client, as throttling would."""

    def __init__(self, client: Any) -> None:
        self.failing: set[str] = set()
        client.meta.events.register("before-call.dynamodb", self._maybe_fail)

    def _maybe_fail(self, model: Any, **_: Any) -> None:
        if model.name in self.failing:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}},
                model.name,
            )


@pytest.fixture(autouse=True)
def one_invocation_of_metrics() -> Iterator[None]:
    yield
    metrics.clear_metrics()


@pytest.fixture
def ledger(grants_table: Any) -> GrantLedger:
    ledger = GrantLedger(grants_table)
    for i in range(2):
        ledger.record_accept(USER, ONE_TIME, source="report", at=T0 + i, long_term=False)
    return ledger


@pytest.fixture
def deliveries(deliveries_table: Any) -> Deliveries:
    return Deliveries(deliveries_table)


@pytest.fixture
def client(idempotency_table: Any) -> Any:
    return boto3.client("dynamodb", region_name=idempotency_table.meta.client.meta.region_name)


@pytest.fixture
def faults(client: Any) -> Faults:
    return Faults(client)


@pytest.fixture
def sends(client: Any, idempotency_table: Any) -> IdempotentSends:
    sends = IdempotentSends(DynamoDBPersistenceLayer(table_name=idempotency_table.name, boto3_client=client))
    sends.register(Context(millis=20_000))  # as the handler does for each invocation
    return sends


def sender(wechat: WeChat, ledger: GrantLedger, deliveries: Deliveries) -> SendService:
    return SendService(
        api=wechat,  # type: ignore[arg-type]
        tokens=Tokens(),  # type: ignore[arg-type]
        default_state="formal",
        deliveries=deliveries,
        grants=ledger,
        sleep=lambda seconds: None,
    )


def request(**fields: Any) -> SendRequest:
    return SendRequest(openid=USER, template_id=ONE_TIME, data={"thing1": "Your order shipped"}, **fields)


def test_a_retry_with_the_same_key_gets_the_first_answer_and_wechat_sees_one_message(
    sends: IdempotentSends, ledger: GrantLedger, deliveries: Deliveries
) -> None:
    wechat = WeChat()
    service = sender(wechat, ledger, deliveries)

    first = send_idempotently(service, request(), "order-1", sends)
    again = send_idempotently(service, request(), "order-1", sends)

    assert first.status == 200 and again.stored() == first.stored()
    assert len(wechat.inbox) == 1
    assert ledger.get(USER, ONE_TIME).one_time == 1


def test_the_same_key_with_another_body_is_idempotency_key_reused(
    sends: IdempotentSends, ledger: GrantLedger, deliveries: Deliveries
) -> None:
    wechat = WeChat()
    service = sender(wechat, ledger, deliveries)
    send_idempotently(service, request(), "order-1", sends)

    with pytest.raises(errors.IdempotencyKeyReused) as raised:
        send_idempotently(service, request(page="pages/other"), "order-1", sends)

    assert (raised.value.status, raised.value.code) == (422, "idempotency_key_reused")
    assert len(wechat.inbox) == 1


def test_a_retry_while_the_first_request_runs_is_409_send_in_progress_naming_its_message_id(
    sends: IdempotentSends, ledger: GrantLedger, deliveries: Deliveries
) -> None:
    caught: list[errors.SendInProgress] = []
    wechat = WeChat()
    service = sender(wechat, ledger, deliveries)

    def retry_meanwhile() -> None:
        with pytest.raises(errors.SendInProgress) as raised:
            send_idempotently(service, request(), "order-1", sends)
        caught.append(raised.value)

    wechat.during = retry_meanwhile

    first = send_idempotently(service, request(), "order-1", sends)

    assert first.status == 200
    assert [(e.status, e.code, e.body().get("message_id")) for e in caught] == [
        (409, "send_in_progress", first.body["message_id"])
    ]
    assert len(wechat.inbox) == 1


def test_a_503_is_not_kept_so_the_same_key_sends_once_wechat_is_back(
    sends: IdempotentSends, ledger: GrantLedger, deliveries: Deliveries
) -> None:
    wechat = WeChat(*[WeChatApiError(-1, "system busy")] * 3)
    service = sender(wechat, ledger, deliveries)

    with pytest.raises(errors.WeChatUnavailable):
        send_idempotently(service, request(), "order-1", sends)
    retried = send_idempotently(service, request(), "order-1", sends)

    assert retried.status == 200
    assert len(wechat.inbox) == 1
    assert ledger.get(USER, ONE_TIME).one_time == 1


def test_when_the_idempotency_record_cannot_be_completed_the_caller_still_gets_the_send_answer(
    sends: IdempotentSends, faults: Faults, ledger: GrantLedger, deliveries: Deliveries
) -> None:
    wechat = WeChat()
    service = sender(wechat, ledger, deliveries)
    sends.register(Context(millis=1))
    faults.failing = {"UpdateItem"}

    first = send_idempotently(service, request(), "order-1", sends)

    assert first.status == 200
    assert first.body["msgid"] == MSGID
    assert len(wechat.inbox) == 1

    time.sleep(0.01)  # the stranded in-progress record outlives the invocation that wrote it
    faults.failing = set()
    sends.register(Context(millis=20_000))
    again = send_idempotently(service, request(), "order-1", sends)

    assert again.stored() == first.stored()
    assert len(wechat.inbox) == 1
    assert ledger.get(USER, ONE_TIME).one_time == 1


def test_when_the_idempotency_store_fails_before_the_send_nothing_is_sent(
    sends: IdempotentSends, faults: Faults, ledger: GrantLedger, deliveries: Deliveries
) -> None:
    wechat = WeChat()
    faults.failing = {"PutItem"}

    with pytest.raises(errors.StorageUnavailable) as refused:
        send_idempotently(sender(wechat, ledger, deliveries), request(), "order-1", sends)

    # the store's own error (table, key, cause) stays in the log: the caller sees a retryable 503
    assert refused.value.status == 503
    assert refused.value.body() == {
        "error": "storage_unavailable",
        "message": "wxsub's storage is unavailable right now; try again",
    }
    assert wechat.inbox == []
    assert ledger.get(USER, ONE_TIME).one_time == 2


def test_a_send_without_a_key_is_not_idempotent(
    sends: IdempotentSends, ledger: GrantLedger, deliveries: Deliveries
) -> None:
    wechat = WeChat()
    service = sender(wechat, ledger, deliveries)

    first = send_idempotently(service, request(), None, sends)
    second = send_idempotently(service, request(), None, sends)

    assert first.body["message_id"] != second.body["message_id"]
    assert len(wechat.inbox) == 2
