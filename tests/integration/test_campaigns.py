"""Campaigns on the running stack: one request reaches every granted user, exactly once.

The stack runs the real template: the campaign API, StartCampaign on ExpandQueue, SendWorker on
SendQueue (batches, partial failures, redelivery, the DLQ), one-time schedules fired at their
time, and the event bus. WeChat's side is read from the sandbox's call log and inboxes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from jsonschema import validate
from wx_flows import SEND_PATH, VALID_DATA, sandbox, settle_pushes

from local.sigv4 import SigV4Auth
from local.stack import LocalStack
from sandbox import SEEDED_ONE_TIME

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
MAX_RECIPIENTS = 300
SETTLE_WINDOW = 30
PARAMETERS = {
    "WeChatTimeoutSeconds": "2",
    "SendRetryDelaySeconds": "1",
    "SendRatePerSecond": "100",
    "CampaignMaxRecipients": str(MAX_RECIPIENTS),
    "SettleWindowSeconds": str(SETTLE_WINDOW),
}


@pytest.fixture(scope="module")
def campaign_stack(local_env: dict[str, str]) -> Iterator[LocalStack]:
    with LocalStack(ROOT / "template.yaml", env=local_env, parameters=PARAMETERS, max_workers=6) as running:
        yield running


@pytest.fixture
def stack(campaign_stack: LocalStack) -> Iterator[LocalStack]:
    campaign_stack.reset()
    yield campaign_stack
    campaign_stack.clear_aws_faults()
    with sandbox(campaign_stack) as sb:
        sb.delete("/sandbox/faults")
        sb.post("/sandbox/config", json={"latency": 0})


@pytest.fixture
def backend(stack: LocalStack) -> Iterator[Callable[..., httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(key: str | None = None) -> httpx.Client:
        client = httpx.Client(
            base_url=stack.api_url,
            auth=SigV4Auth(*stack.credentials, stack.region),
            headers={"Idempotency-Key": key} if key else {},
            timeout=60,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- the world -------------------------------------------------------------------------------------


def granted_users(stack: LocalStack, n: int, *, grants: int = 1) -> list[str]:
    """``n`` users who accepted the one-time template in WeChat (each accept pushed to wxsub)."""
    openids: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        with sandbox(stack) as sb:
            openid = sb.post("/sandbox/users", json={}).json()["openid"]
            for _ in range(grants):
                body = {"openid": openid, "template_id": SEEDED_ONE_TIME, "status": "accept"}
                assert sb.post("/sandbox/subscribe", json=body).status_code == 200
        with lock:
            openids.append(openid)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for start in range(0, n, 16):
        for thread in threads[start : start + 16]:
            thread.start()
        for thread in threads[start : start + 16]:
            thread.join()
    pushes = [p for p in settle_pushes(stack) if p["openid"] in set(openids)]
    lost = [p for p in pushes if p["state"] != "delivered"]
    assert not lost, f"wxsub refused {len(lost)} accept pushes: {lost[:2]}"
    return openids


def ungranted_users(stack: LocalStack, n: int) -> list[str]:
    with sandbox(stack) as sb:
        return [sb.post("/sandbox/users", json={}).json()["openid"] for _ in range(n)]


def delivered_per_user(stack: LocalStack) -> Counter[str]:
    with sandbox(stack) as sb:
        messages = sb.get("/sandbox/inbox", params={"template_id": SEEDED_ONE_TIME}).json()["messages"]
    return Counter(m["touser"] for m in messages)


def send_calls(stack: LocalStack) -> list[dict[str, Any]]:
    with sandbox(stack) as sb:
        return list(sb.get("/sandbox/calls", params={"path": SEND_PATH}).json()["calls"])


def campaign(backend: Callable[..., httpx.Client], campaign_id: str) -> dict[str, Any]:
    answer = backend().get(f"/campaigns/{campaign_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_for_state(
    backend: Callable[..., httpx.Client],
    campaign_id: str,
    states: set[str],
    timeout: float = 90,
    stack: LocalStack | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = campaign(backend, campaign_id)
        if current["state"] in states:
            return current
        if time.monotonic() >= deadline:
            lines = [
                line for line in (stack.logs() if stack else []) if "[stream]" in line or "[poller]" in line
            ]
            raise AssertionError(f"campaign stuck in {current}; the event sources said: {lines[-15:]}")
        time.sleep(0.3)


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)


def start(backend: Callable[..., httpx.Client], key: str | None = None, **body: Any) -> dict[str, Any]:
    body.setdefault("template_id", SEEDED_ONE_TIME)
    body.setdefault("data", dict(VALID_DATA))
    body.setdefault("audience", "granted")
    answer = backend(key).post("/campaigns", json=body)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


# -- reaching everyone once ------------------------------------------------------------------------


def test_200_granted_users_get_exactly_one_card_each_and_the_counts_match(stack: LocalStack, backend) -> None:
    users = granted_users(stack, 200)

    started = start(backend)
    done = wait_for_state(backend, started["campaign_id"], {"done"}, stack=stack)

    assert started["state"] == "expanding"
    per_user = delivered_per_user(stack)
    assert set(per_user) == set(users) and set(per_user.values()) == {1}
    assert len(send_calls(stack)) == 200
    counts = done["counts"]
    assert (counts["queued"], counts["sent"], counts["skipped"], counts["failed"]) == (200, 200, 0, 0)
    settle_pushes(stack)
    wait_for(lambda: campaign(backend, started["campaign_id"])["counts"]["delivered"] == 200)


def test_users_without_a_grant_are_skipped_and_never_sent_to(stack: LocalStack, backend) -> None:
    granted = granted_users(stack, 5)
    strangers = ungranted_users(stack, 3)

    started = start(backend, audience={"openids": granted + strangers + granted[:2]})
    done = wait_for_state(backend, started["campaign_id"], {"done"}, stack=stack)

    assert (done["counts"]["queued"], done["counts"]["sent"], done["counts"]["skipped"]) == (8, 5, 3)
    assert set(delivered_per_user(stack)) == set(granted)
    assert len(send_calls(stack)) == 5


def test_a_recipients_data_is_merged_over_the_shared_data(stack: LocalStack, backend) -> None:
    first, second = granted_users(stack, 2)
    recipients = [{"openid": first, "data": {"thing1": "给第一位的礼物"}}, {"openid": second}]

    started = start(backend, audience={"recipients": recipients})
    wait_for_state(backend, started["campaign_id"], {"done"}, stack=stack)

    with sandbox(stack) as sb:
        inbox = {m["touser"]: m["data"] for m in sb.get("/sandbox/inbox").json()["messages"]}
    assert inbox[first]["thing1"] == {"value": "给第一位的礼物"}
    assert inbox[first]["time2"] == {"value": VALID_DATA["time2"]}
    assert inbox[second]["thing1"] == {"value": VALID_DATA["thing1"]}


def test_the_same_idempotency_key_twice_makes_one_campaign(stack: LocalStack, backend) -> None:
    granted_users(stack, 3)

    first = start(backend, key="promo-2026-12-01")
    again = start(backend, key="promo-2026-12-01")

    assert again["campaign_id"] == first["campaign_id"]
    wait_for_state(backend, first["campaign_id"], {"done"}, stack=stack)
    assert len(send_calls(stack)) == 3
    other = backend("promo-2026-12-01").post(
        "/campaigns",
        json={
            "template_id": SEEDED_ONE_TIME,
            "data": {**VALID_DATA, "thing1": "别的"},
            "audience": "granted",
        },
    )
    assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_reused")


# -- refusing what cannot run --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"audience": "everyone"}, "audience"),
        ({"audience": {"openids": []}}, "audience"),
        ({"audience": {"emails": ["a@b.c"]}}, "audience"),
        ({"audience": {"openids": [f"o{i:027d}" for i in range(MAX_RECIPIENTS + 1)]}}, "audience"),
        ({"send_at": "2020-01-01T00:00:00Z"}, "send_at"),
        ({"send_at": "2099-01-01T00:00:00+08:00"}, "send_at"),
        ({"send_at": "2026-12-01T10:00:00"}, "send_at"),
        ({"window": {"start": "25:00", "end": "21:00"}}, "window"),
        ({"window": {"start": "09:00", "end": "21:00", "tz": "Mars/Olympus"}}, "window"),
        ({"data": {"thing1": "x" * 40}}, "thing1"),
        ({"template_id": "nosuch"}, "template"),
    ],
    ids=[
        "unknown-audience",
        "empty-openids",
        "unknown-audience-form",
        "too-many-openids",
        "past-send-at",
        "far-send-at",
        "send-at-without-offset",
        "bad-window-time",
        "bad-time-zone",
        "data-breaks-a-rule",
        "unknown-template",
    ],
)
def test_a_campaign_that_cannot_run_is_refused_with_4xx_naming_the_field(
    stack: LocalStack, backend, change: dict[str, Any], named: str
) -> None:
    body = {"template_id": SEEDED_ONE_TIME, "data": dict(VALID_DATA), "audience": "granted", **change}

    answer = backend().post("/campaigns", json=body)

    assert 400 <= answer.status_code < 500, answer.text
    assert named in json.dumps(answer.json(), ensure_ascii=False)
    assert stack.aws_requests().count(operation="SendMessage") == 0


def test_a_recipient_whose_data_breaks_a_rule_is_named_and_nothing_is_queued(
    stack: LocalStack, backend
) -> None:
    users = granted_users(stack, 2)
    recipients = [{"openid": users[0]}, {"openid": users[1], "data": {"thing1": "太长" * 20}}]

    answer = backend().post(
        "/campaigns",
        json={"template_id": SEEDED_ONE_TIME, "data": VALID_DATA, "audience": {"recipients": recipients}},
    )

    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_data")
    assert answer.json()["recipient"] == 1 and answer.json()["openid"] == users[1]
    assert "thing1" in json.dumps(answer.json())
    time.sleep(1)
    assert send_calls(stack) == []


def test_an_unknown_campaign_is_404(stack: LocalStack, backend) -> None:
    for method in ("GET", "DELETE"):
        answer = backend().request(method, f"/campaigns/{'0' * 28}")
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


# -- time: send_at, windows, cancel ------------------------------------------------------------------


def test_send_at_20_seconds_ahead_sends_nothing_before_and_everything_after(
    stack: LocalStack, backend
) -> None:
    users = granted_users(stack, 5)
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)

    started = start(backend, send_at=at.isoformat().replace("+00:00", "Z"))
    time.sleep(17)
    before = send_calls(stack)
    done = wait_for_state(backend, started["campaign_id"], {"done"}, timeout=60)

    assert started["state"] == "scheduled"
    assert before == []
    calls = send_calls(stack)
    assert len(calls) == 5 and min(c["at"] for c in calls) >= at.timestamp() - 1
    assert done["counts"]["sent"] == 5 and set(delivered_per_user(stack)) == set(users)


def test_a_window_that_opens_20_seconds_from_now_holds_every_send_until_it_opens(
    stack: LocalStack, backend
) -> None:
    granted_users(stack, 4)
    zone = ZoneInfo("Asia/Shanghai")
    opens = datetime.now(zone).replace(microsecond=0) + timedelta(seconds=20)
    window = {
        "start": opens.strftime("%H:%M:%S"),
        "end": (opens + timedelta(hours=1)).strftime("%H:%M:%S"),
        "tz": "Asia/Shanghai",
    }

    started = start(backend, window=window)
    time.sleep(17)
    before = send_calls(stack)
    wait_for_state(backend, started["campaign_id"], {"done"}, timeout=60)

    assert started["state"] == "scheduled"
    assert before == []
    assert min(c["at"] for c in send_calls(stack)) >= opens.timestamp() - 1


def test_cancel_mid_campaign_starts_no_send_a_second_after_it_was_acknowledged(
    stack: LocalStack, backend
) -> None:
    granted_users(stack, 150)
    with sandbox(stack) as sb:
        sb.post("/sandbox/config", json={"latency": 0.3})
    started = start(backend)
    wait_for(lambda: len(send_calls(stack)) >= 10)

    cancelled = backend().delete(f"/campaigns/{started['campaign_id']}")
    acknowledged = time.time()
    time.sleep(4)

    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    calls = send_calls(stack)
    assert 10 <= len(calls) < 150
    late = [c for c in calls if c["at"] > acknowledged + 1]
    assert late == [], f"{len(late)} sends started more than a second after the cancel"
    wait_for(lambda: _accounted(campaign(backend, started["campaign_id"])))
    counts = campaign(backend, started["campaign_id"])["counts"]
    assert counts["cancelled"] > 0 and counts["sent"] == len(delivered_per_user(stack))


def _accounted(current: dict[str, Any]) -> bool:
    c = current["counts"]
    return (
        bool(current["expanded"]) and c["sent"] + c["cancelled"] + c["skipped"] + c["failed"] >= c["queued"]
    )


# -- failures ------------------------------------------------------------------------------------------


def _run_with_campaign_update_faults(
    stack: LocalStack, backend: Callable[..., httpx.Client], latency: float, **body: Any
) -> dict[str, Any]:
    """A campaign whose next three CampaignsTable updates fail once it runs (its expansion's writes
    are over), WeChat answering after ``latency`` and pushing no sent events; the campaign at done."""
    with sandbox(stack) as sb:
        sb.post("/sandbox/config", json={"latency": latency, "push_url": None})
    try:
        started = start(backend, **body)
        wait_for_state(backend, started["campaign_id"], {"running"}, stack=stack)
        stack.aws_fault("UpdateItem", table="CampaignsTable", count=3, error="internal")
        return wait_for_state(backend, started["campaign_id"], {"done"}, stack=stack)
    finally:
        with sandbox(stack) as sb:
            sb.post("/sandbox/config", json={"push_url": f"{stack.api_url}/wechat/push"})


def test_a_worker_whose_batch_fails_after_sending_is_redelivered_and_still_sends_once(
    stack: LocalStack, backend
) -> None:
    """Users without a grant are counted by the worker itself after the batch's sends; that count
    fails, so the whole batch goes back to the queue and comes again: the sent ones replay."""
    users = granted_users(stack, 60)
    strangers = [f"o-no-grant-{i}" for i in range(10)]
    done = _run_with_campaign_update_faults(stack, backend, 1.0, audience={"openids": users + strangers})

    assert [f for f in stack.aws_faults() if f["left"]] == [], "the fault struck"
    came_back = [
        line for line in stack.logs() if "SendWorkerFunction batch of" in line and " 0 failed" not in line
    ]
    assert came_back, "a batch was handed back to the queue after its sends"
    per_user = delivered_per_user(stack)
    assert set(per_user) == set(users) and set(per_user.values()) == {1}
    assert len([c for c in send_calls(stack) if c["errcode"] == 0]) == 60
    assert (done["counts"]["sent"], done["counts"]["skipped"]) == (60, 10)


def test_counting_that_fails_after_the_sends_is_retried_and_counts_each_send_once(
    stack: LocalStack, backend
) -> None:
    """CountDeliveries fails after adding a batch (the campaign's next update is refused) and gets
    the same batch again: the transaction's client token keeps it from being added twice."""
    users = granted_users(stack, 40)
    done = _run_with_campaign_update_faults(stack, backend, 0.5)

    assert [f for f in stack.aws_faults() if f["left"]] == [], "the fault struck"
    assert any("CountDeliveriesFunction: batch of" in line and "again" in line for line in stack.logs())
    assert len(delivered_per_user(stack)) == len(users)
    time.sleep(2)  # any second adding of the batch would have landed by now
    assert campaign(backend, done["campaign_id"])["counts"]["sent"] == done["counts"]["sent"] == 40


def test_a_campaign_through_busy_wechat_lost_answers_and_a_token_invalidation_sends_each_user_one_card(
    stack: LocalStack, backend
) -> None:
    users = granted_users(stack, 500)
    with sandbox(stack) as sb:
        sb.post("/sandbox/faults", json={"path": SEND_PATH, "rate": 0.2, "errcode": -1, "seed": 11})
        sb.post("/sandbox/faults", json={"path": SEND_PATH, "rate": 0.02, "deliver": True, "hang": 3})
    started_at = time.time()
    started = start(backend)
    wait_for(lambda: len([c for c in send_calls(stack) if c["errcode"] == 0]) >= 200)
    with sandbox(stack) as sb:
        sb.post("/sandbox/tokens/invalidate")

    first = wait_for_state(backend, started["campaign_id"], {"done"}, timeout=150)
    # a send whose answer was lost while its token was refused never reached anyone and no sent
    # event comes for it: once every sent event is in and the window has passed, the sweep fails
    # it and the campaign resends it
    settle_pushes(stack)
    time.sleep(max(0.0, started_at + SETTLE_WINDOW + 2 - time.time()))
    stack.run_schedule("SettleDeliveriesFunction")
    done = wait_for_state(backend, started["campaign_id"], {"done"}, timeout=60)

    per_user = delivered_per_user(stack)
    assert set(per_user) == set(users), f"{len(set(users) - set(per_user))} users got nothing"
    assert set(per_user.values()) == {1}, "a user got two cards"
    counts = done["counts"]
    assert first["counts"]["unknown"] > 0
    # progress counters are not exactly once (a batch redelivered after it was counted counts again,
    # docs/architecture.md "Known gaps"); the cards above are what must be exact
    assert counts["sent"] + counts["unknown"] >= 500
    assert (counts["failed"], counts["skipped"]) == (0, 0)
    settle_pushes(stack)
    wait_for(lambda: campaign(backend, started["campaign_id"])["counts"]["delivered"] == 500, timeout=60)


# -- events out --------------------------------------------------------------------------------------


MESSAGE_EVENT_SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "docs" / "events" / "message-status.schema.json").read_text()
)
CAMPAIGN_EVENT_SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "docs" / "events" / "campaign-state.schema.json").read_text()
)


def test_status_and_state_changes_reach_the_bus_in_the_documented_shapes(stack: LocalStack, backend) -> None:
    users = granted_users(stack, 3)

    started = start(backend)
    wait_for_state(backend, started["campaign_id"], {"done"}, stack=stack)
    settle_pushes(stack)
    wait_for(
        lambda: len(
            [
                e
                for e in stack.bus_events()
                if e["detail"].get("status") == "delivered"
                and e["detail"].get("campaign_id") == started["campaign_id"]
            ]
        )
        == 3
    )

    events = [e for e in stack.bus_events() if e["detail"].get("campaign_id") == started["campaign_id"]]
    for event in events:
        assert event["source"] == "wxsub"
        schema = (
            MESSAGE_EVENT_SCHEMA
            if event["detail-type"] == "Message status changed"
            else CAMPAIGN_EVENT_SCHEMA
        )
        validate(event["detail"], schema)
    states = [e["detail"]["state"] for e in events if e["detail-type"] == "Campaign state changed"]
    assert states[0] == "expanding" and states[-1] == "done" and "running" in states
    sent = {e["detail"]["openid"] for e in events if e["detail"].get("status") == "sent"}
    assert sent == set(users)
