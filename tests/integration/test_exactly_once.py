"""Exactly once under failure: whatever breaks after WeChat was called, one card, no lost grant.

Each test runs the real stack (moto behind the fault front, the sandbox, every function) and
breaks one thing where the real code meets it: the local AWS throttles or fails a table, the
sandbox loses WeChat's answer after acting on the request, a function's time runs short. Each
then reads what WeChat saw from the sandbox's own call log (an inbox alone would hide a second
send refused with 43101), what the user got, the grant ledger, and the send's record after the
settle sweep.

This stack runs with short clocks so a test waits seconds: WeChat calls give up after 3 s, the
API functions stop after 10 s, and a send without an answer is settled after 8 s.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wx_flows import (
    SEND_PATH,
    accept,
    inbox,
    login,
    message,
    one_time_left,
    post_push,
    sandbox,
    settle_pushes,
    stored_token,
)

from local.sigv4 import SigV4Auth
from local.stack import LocalStack
from sandbox import SEEDED_ONE_TIME

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
WECHAT_TIMEOUT = 3
FUNCTION_TIMEOUT = 10
SETTLE_WINDOW = 8
PARAMETERS = {
    "WeChatTimeoutSeconds": str(WECHAT_TIMEOUT),
    "FunctionTimeoutSeconds": str(FUNCTION_TIMEOUT),
    "SettleWindowSeconds": str(SETTLE_WINDOW),
}


@pytest.fixture(scope="module")
def eo_stack(local_env: dict[str, str]) -> Iterator[LocalStack]:
    with LocalStack(ROOT / "template.yaml", env=local_env, parameters=PARAMETERS) as running:
        yield running


@pytest.fixture
def stack(eo_stack: LocalStack) -> Iterator[LocalStack]:
    eo_stack.reset()
    eo_stack.clear_aws_faults()
    yield eo_stack
    eo_stack.clear_aws_faults()
    with sandbox(eo_stack) as sb:
        sb.delete("/sandbox/faults")
        sb.post("/sandbox/config", json={"push_attempts": 3, "push_retry_delay": 0.2})


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=60) as client:
        yield client


@pytest.fixture
def backend(stack: LocalStack) -> Callable[..., httpx.Client]:
    """``backend(key)``: a trusted backend's SigV4-signing client, sending ``Idempotency-Key: key``."""
    clients: list[httpx.Client] = []

    def make(key: str | None = None) -> httpx.Client:
        headers = {"Idempotency-Key": key} if key else {}
        client = httpx.Client(
            base_url=stack.api_url,
            auth=SigV4Auth(*stack.credentials, stack.region),
            headers=headers,
            timeout=60,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def subscriber(stack: LocalStack, api: httpx.Client) -> tuple[str, str]:
    """A logged-in user holding one grant for the one-time template."""
    openid, token = login(stack, api)
    accept(stack, openid)
    return openid, token


# -- what the world saw ------------------------------------------------------------------------


def wechat_sends(stack: LocalStack) -> list[dict[str, Any]]:
    """Every send request that reached WeChat, refused ones included."""
    with sandbox(stack) as sb:
        return list(sb.get("/sandbox/calls", params={"path": SEND_PATH}).json()["calls"])


def sandbox_fault(stack: LocalStack, **spec: Any) -> None:
    spec.setdefault("path", SEND_PATH)
    with sandbox(stack) as sb:
        answer = sb.post("/sandbox/faults", json=spec)
    assert answer.status_code == 200, answer.text


def record(backend: Callable[..., httpx.Client], message_id: str) -> dict[str, Any]:
    answer = backend().get(f"/messages/{message_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def sweep_after_window(stack: LocalStack) -> None:
    """Waits out the settle window, then runs the scheduled sweep once."""
    time.sleep(SETTLE_WINDOW + 1.5)
    stack.run_schedule("SettleDeliveriesFunction")


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def slow_push_retries(stack: LocalStack) -> None:
    """WeChat retries a failed push; spaced out here so a retry lands after a fault is cleared."""
    with sandbox(stack) as sb:
        sb.post("/sandbox/config", json={"push_attempts": 6, "push_retry_delay": 3})


# -- a storage failure after WeChat was called -------------------------------------------------


def test_a_storage_failure_after_a_sent_answer_is_504_and_a_retry_never_sends_again(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    slow_push_retries(stack)
    stack.aws_fault("UpdateItem", table="DeliveriesTable", count=1000, error="throttle")
    client = backend("order-7-shipped")

    first = client.post("/messages", json=message(openid))
    stack.clear_aws_faults()
    again = client.post("/messages", json=message(openid))

    assert first.status_code == 504, first.text
    assert first.json()["error"] == "outcome_unknown"
    message_id = first.json()["message_id"]
    assert again.json() == first.json()
    assert len(wechat_sends(stack)) == 1
    assert len(inbox(stack, openid)) == 1
    assert one_time_left(api, token) == 0
    settle_pushes(stack)
    sweep_after_window(stack)
    assert record(backend, message_id)["status"] == "delivered"
    assert one_time_left(api, token) == 0
    assert len(wechat_sends(stack)) == 1


def test_a_storage_failure_after_a_timeout_keeps_the_record_for_the_sweep_which_returns_the_grant(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    sandbox_fault(stack, hang=WECHAT_TIMEOUT + 1)  # WeChat never acts on it; the answer never comes
    stack.aws_fault("UpdateItem", table="DeliveriesTable", count=1000, error="internal")
    client = backend("order-8-shipped")

    first = client.post("/messages", json=message(openid))
    stack.clear_aws_faults()

    assert (first.status_code, first.json()["error"]) == (504, "outcome_unknown")
    message_id = first.json()["message_id"]
    assert record(backend, message_id)["status"] == "sending"
    assert one_time_left(api, token) == 0, "an ambiguous send keeps its grant until settled"
    sweep_after_window(stack)
    settled = record(backend, message_id)
    assert (settled["status"], settled["error_status"]) == ("failed", "no_sent_event")
    assert one_time_left(api, token) == 1
    assert inbox(stack, openid) == []
    assert client.post("/messages", json=message(openid)).json() == first.json()
    assert len(wechat_sends(stack)) == 1


def test_a_failed_idempotency_save_still_answers_the_send_and_a_retry_sends_nothing(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    stack.aws_fault("UpdateItem", table="IdempotencyTable", count=3, error="throttle")
    client = backend("order-9-shipped")

    first = client.post("/messages", json=message(openid))
    during = client.post("/messages", json=message(openid))

    assert first.status_code == 200, first.text
    assert (during.status_code, during.json()["error"]) == (409, "send_in_progress")
    assert during.json()["message_id"] == first.json()["message_id"]
    time.sleep(FUNCTION_TIMEOUT + 1)  # the idempotency layer's in-progress mark expires with the invocation
    later = client.post("/messages", json=message(openid))
    assert later.status_code == 200, later.text
    assert later.json() == first.json()
    assert len(wechat_sends(stack)) == 1
    assert len(inbox(stack, openid)) == 1
    assert one_time_left(api, token) == 0


def test_a_function_whose_time_runs_out_between_attempts_stops_before_calling_and_gives_the_grant_back(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    # WeChat is busy and slow: each -1 takes 1.5 s; after one, too little of the 10 s is left
    # to make another call (3 s) and record it, so the function stops rather than be killed.
    sandbox_fault(stack, errcode=-1, hang=1.5, count=5)
    client = backend("order-10-shipped")

    busy = client.post("/messages", json=message(openid))

    assert (busy.status_code, busy.json()["error"]) == (503, "wechat_unavailable")
    assert "time" in busy.json()["message"]
    assert len(wechat_sends(stack)) < 3
    assert inbox(stack, openid) == []
    assert one_time_left(api, token) == 1
    with sandbox(stack) as sb:
        sb.delete("/sandbox/faults")
    retried = client.post("/messages", json=message(openid))
    assert retried.status_code == 200, retried.text
    assert len(inbox(stack, openid)) == 1
    assert one_time_left(api, token) == 0


def test_the_same_key_after_a_503_that_sent_nothing_sends(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    sandbox_fault(stack, errcode=-1, count=3)
    client = backend("order-11-shipped")

    down = client.post("/messages", json=message(openid))
    assert one_time_left(api, token) == 1
    later = client.post("/messages", json=message(openid))

    assert (down.status_code, down.json()["error"]) == (503, "wechat_unavailable")
    assert later.status_code == 200, later.text
    assert [c["errcode"] for c in wechat_sends(stack)] == [-1, -1, -1, 0]
    assert len(inbox(stack, openid)) == 1
    assert one_time_left(api, token) == 0


# -- WeChat acted, its answer was lost ---------------------------------------------------------


@pytest.mark.parametrize("lost", ["proxy_502", "truncated"])
def test_an_answer_lost_after_delivery_is_never_retried_and_the_sent_event_settles_it(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str], lost: str
) -> None:
    openid, token = subscriber
    sandbox_fault(stack, answer=lost, deliver=True)
    client = backend(f"order-12-{lost}")

    first = client.post("/messages", json=message(openid))
    again = client.post("/messages", json=message(openid))

    assert (first.status_code, first.json()["error"]) == (504, "outcome_unknown")
    assert again.json() == first.json()
    assert len(wechat_sends(stack)) == 1
    assert len(inbox(stack, openid)) == 1
    settle_pushes(stack)
    message_id = first.json()["message_id"]
    wait_for(lambda: record(backend, message_id)["status"] == "delivered")
    assert record(backend, message_id)["msgid"] == inbox(stack, openid)[0]["msgid"]
    assert one_time_left(api, token) == 0


def test_a_lost_answer_on_login_is_503_and_the_code_is_not_sent_again(
    stack: LocalStack, api: httpx.Client
) -> None:
    with sandbox(stack) as sb:
        code = sb.post("/sandbox/login", json={}).json()["code"]
    sandbox_fault(stack, path="/sns/jscode2session", answer="proxy_502", deliver=True)

    answer = api.post("/login", json={"code": code})

    assert (answer.status_code, answer.json()["error"]) == (503, "wechat_unavailable")
    with sandbox(stack) as sb:
        exchanges = sb.get("/sandbox/calls", params={"path": "/sns/jscode2session"}).json()["calls"]
    assert len(exchanges) == 1


# -- the ledger and the receipts -----------------------------------------------------------------


def test_43101_keeps_an_accept_that_arrived_while_the_send_was_in_flight(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    _spend_in_wechat_only(stack, openid)  # the ledger still counts 1, WeChat holds 0
    # the second accept's push must not be in the same second as the first: WeChat's retry of a
    # push is recognised by its content, and two identical accepts in one second look like one
    time.sleep(1.1)
    sandbox_fault(stack, deliver=True, hang=2.5)  # WeChat answers 43101, late
    calls_before = len(wechat_sends(stack))
    with httpx.Client(
        base_url=stack.api_url, auth=SigV4Auth(*stack.credentials, stack.region), timeout=60
    ) as c:
        in_flight = _in_background(lambda: c.post("/messages", json=message(openid)))
        wait_for(lambda: len(wechat_sends(stack)) > calls_before, timeout=10)  # the grant is taken
        accept(stack, openid)  # the user accepts again while the send waits for its answer
        refused = in_flight()

    assert (refused.status_code, refused.json()["error"]) == (409, "no_grant")
    assert one_time_left(api, token) == 1, "the accept counted during the send survives the 43101"
    sent = backend().post("/messages", json=message(openid))
    assert sent.status_code == 200, sent.text
    assert sent.json()["msgid"] in [m["msgid"] for m in inbox(stack, openid)]


def test_43101_with_no_accept_in_flight_zeroes_the_grant(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    _spend_in_wechat_only(stack, openid)
    accept(stack, openid)
    _spend_in_wechat_only(stack, openid)  # the ledger counts 2, WeChat holds 0

    refused = backend().post("/messages", json=message(openid))

    assert (refused.status_code, refused.json()["error"]) == (409, "no_grant")
    assert one_time_left(api, token) == 0


def test_a_sent_event_older_than_an_unknown_send_does_not_settle_it(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    sandbox_fault(stack, hang=WECHAT_TIMEOUT + 1)  # never acted on, no answer
    unknown = backend().post("/messages", json=message(openid))
    assert (unknown.status_code, unknown.json()["error"]) == (504, "outcome_unknown")
    message_id = unknown.json()["message_id"]

    # a sent event stamped two minutes before the send was written: it reports an earlier send
    stale = _sent_event(openid, msgid="7000000000000000001", create_time=int(time.time()) - 120)
    assert post_push(stack, api, stale).status_code == 200

    assert record(backend, message_id)["status"] == "unknown"
    sweep_after_window(stack)
    settled = record(backend, message_id)
    assert (settled["status"], settled["error_status"]) == ("failed", "no_sent_event")
    assert one_time_left(api, token) == 1
    assert len(wechat_sends(stack)) == 1


def test_a_sent_event_for_an_unknown_send_settles_it_and_the_grant_stays_spent(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    openid, token = subscriber
    sandbox_fault(stack, hang=WECHAT_TIMEOUT + 1, deliver=True)  # delivered, answer too late

    unknown = backend().post("/messages", json=message(openid))

    assert (unknown.status_code, unknown.json()["error"]) == (504, "outcome_unknown")
    settle_pushes(stack)
    message_id = unknown.json()["message_id"]
    wait_for(lambda: record(backend, message_id)["status"] == "delivered")
    sweep_after_window(stack)
    assert record(backend, message_id)["status"] == "delivered"
    assert one_time_left(api, token) == 0
    assert len(inbox(stack, openid)) == 1
    assert len(wechat_sends(stack)) == 1


def test_the_sweep_reaches_every_open_send_through_the_index(
    stack: LocalStack, backend, api: httpx.Client
) -> None:
    users = [login(stack, api) for _ in range(3)]
    for openid, _ in users:
        accept(stack, openid)
    sandbox_fault(stack, hang=WECHAT_TIMEOUT + 1, count=3)
    ids = [backend().post("/messages", json=message(openid)).json()["message_id"] for openid, _ in users]

    time.sleep(SETTLE_WINDOW + 1.5)
    stack.reset_aws_requests()
    stack.run_schedule("SettleDeliveriesFunction")

    assert {record(backend, i)["status"] for i in ids} == {"failed"}
    assert [one_time_left(api, token) for _, token in users] == [1, 1, 1]
    counted = stack.aws_requests()
    assert counted.count(operation="Scan", table="DeliveriesTable") == 0, "the sweep never scans the table"
    assert counted.count(operation="Query", table="DeliveriesTable") >= 16, "it reads each shard of the index"


# -- helpers -------------------------------------------------------------------------------------


def _spend_in_wechat_only(stack: LocalStack, openid: str) -> None:
    """The user's grant is used up in WeChat by a send wxsub never saw (so the ledger over-counts)."""
    token = stored_token(stack)["access_token"]
    body = message(openid)
    payload = {
        "touser": openid,
        "template_id": body["template_id"],
        "data": {k: {"value": v} for k, v in body["data"].items()},
    }
    with sandbox(stack) as sb:
        answer = sb.post(SEND_PATH, params={"access_token": token}, json=payload).json()
    assert answer.get("errcode", 0) == 0, answer
    settle_pushes(stack)


def _sent_event(openid: str, *, msgid: str, create_time: int) -> str:
    return json.dumps(
        {
            "ToUserName": "gh_000sandbox0",
            "FromUserName": openid,
            "CreateTime": create_time,
            "MsgType": "event",
            "Event": "subscribe_msg_sent_event",
            "List": {
                "TemplateId": SEEDED_ONE_TIME,
                "MsgID": msgid,
                "ErrorCode": "0",
                "ErrorStatus": "success",
            },
        }
    )


def _in_background(call: Callable[[], httpx.Response]) -> Callable[[], httpx.Response]:
    box: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()

    def result() -> httpx.Response:
        thread.join(timeout=60)
        assert box, "the request did not finish"
        return box[0]

    return result


# -- what the alarms watch -------------------------------------------------------------------------


def test_every_alarm_on_a_wxsub_metric_watches_one_the_functions_emit(
    stack: LocalStack, backend, api: httpx.Client, subscriber: tuple[str, str]
) -> None:
    """An alarm on a metric nobody emits never fires: each alarm and dashboard metric of the
    template's own namespace (name and dimensions) must appear in the functions' EMF output."""
    openid, _ = subscriber
    for _ in range(2):  # two more grants; a push is known by its content, CreateTime in seconds
        time.sleep(1.1)
        accept(stack, openid)
    settle_pushes(stack)
    with sandbox(stack) as sb:
        sb.post("/sandbox/tokens/invalidate", json={}).raise_for_status()
    stack.run_schedule("RefreshTokenFunction")  # a new token: rotated, and its time left
    sent = backend("sent-1").post("/messages", json=message(openid))
    sandbox_fault(stack, errcode=45009)  # the daily quota is spent
    quota = backend("quota-1").post("/messages", json=message(openid))
    sandbox_fault(stack, hang=WECHAT_TIMEOUT + 1)  # no answer: unknown, then given up by the sweep
    unknown = backend("unknown-1").post("/messages", json=message(openid))
    sweep_after_window(stack)

    emitted = _emitted_metrics(stack.logs())
    watched = _watched_metrics(ROOT / "template.yaml")

    assert sent.status_code == 200, sent.text
    assert (quota.status_code, quota.json()["error"]) == (429, "quota_exhausted")
    assert unknown.status_code == 504
    assert {name for name, _ in watched} >= {
        "AccessTokenSecondsLeft",
        "WeChatErrors",
        "UnknownSendsGivenUp",
        "MessagesSent",
        "Logins",
        "PushesApplied",
    }
    assert sorted(watched - emitted) == []


def _emitted_metrics(lines: list[str]) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """(metric, its dimensions with their values) of every EMF record the functions printed."""
    found = set()
    for line in lines:
        start = line.find('{"_aws"')
        if start < 0:
            continue
        record = json.loads(line[start:])
        for directive in record["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != "wxsub":
                continue
            for names in directive["Dimensions"]:
                dims = frozenset((name, str(record[name])) for name in names)
                found |= {(metric["Name"], dims) for metric in directive["Metrics"]}
    return found


def _watched_metrics(template: Path) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """The wxsub-namespace metrics the template's alarms and dashboard watch."""
    from local.template import load_yaml

    resources = load_yaml(template)["Resources"]
    watched = set()
    for resource in resources.values():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::CloudWatch::Alarm" and props.get("Namespace") == "wxsub":
            dims = frozenset((d["Name"], str(d["Value"])) for d in props["Dimensions"])
            watched.add((props["MetricName"], dims))
        if resource["Type"] == "AWS::CloudWatch::Dashboard":
            for widget in json.loads(props["DashboardBody"]["Fn::Sub"])["widgets"]:
                namespace = ""
                for row in widget["properties"].get("metrics", []):
                    if not isinstance(row[0], str):
                        continue  # an expression (the SEARCH of WeChatErrors by errcode)
                    namespace = namespace if row[0] == "." else row[0]
                    if namespace == "wxsub":  # [namespace, name, "service", "wxsub", {options}?]
                        watched.add((row[1], frozenset({("service", "wxsub")})))
    return watched
