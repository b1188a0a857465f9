"""``sam local start-api`` with the README's flow, and ``sam local start-lambda`` cold then warm.

SAM's local API does not check IAM (any signature, or none, passes): these tests sign anyway, as
a backend would against AWS.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local import sam_events
from local.sam_local import Invocation, SamLocal, free_port
from local.sigv4 import SigV4Auth


@pytest.fixture(scope="module")
def served_api(sam: SamLocal) -> Iterator[str]:
    with sam.start_api(free_port()) as url:
        yield url


def test_the_readme_flow_through_sam_local_start_api(
    fresh: SamLocal, served_api: str, figures: list[tuple[str, str, float]]
) -> None:
    """POST /login -> POST /subscriptions -> (the user grants in the sandbox) -> POST /messages
    -> the message in the inbox and its receipt at GET /messages/{id}."""
    setup = sam_events.Setup(fresh.stack)
    setup.ready_to_send()
    api = httpx.Client(base_url=served_api, timeout=180)
    signed = httpx.Client(base_url=served_api, timeout=180, auth=SigV4Auth(*fresh.stack.credentials))
    try:
        code, openid = setup.code()
        started = time.perf_counter()
        login = api.post("/login", json={"code": code})
        figures.append(("POST /login", "start-api first request (cold)", time.perf_counter() - started))
        second_code, _ = setup.code()
        started = time.perf_counter()
        again = api.post("/login", json={"code": second_code})
        figures.append(("POST /login", "start-api second request (warm)", time.perf_counter() - started))
        assert login.status_code == 200 and login.json()["openid"] == openid, login.text
        assert again.status_code == 200, again.text
        token = login.json()["token"]

        popup = setup.popup(openid)
        reported = api.post("/subscriptions", json=popup, headers={"authorization": f"Bearer {token}"})
        grants = api.get("/subscriptions", headers={"authorization": f"Bearer {token}"})
        assert reported.status_code == 200, reported.text
        held = {g["template_id"]: g["one_time"] for g in grants.json()["grants"]}
        assert held[sam_events.ONE_TIME] >= 1

        body = {"openid": openid, "template_id": sam_events.ONE_TIME, "data": sam_events.order_shipped_data()}
        key = f"readme-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        sent = signed.post("/messages", json=body, headers={"idempotency-key": key})
        figures.append(("POST /messages", "start-api first request (cold)", time.perf_counter() - started))
        retried = signed.post("/messages", json=body, headers={"idempotency-key": key})
        assert sent.status_code == 200 and sent.json()["status"] == "sent", sent.text
        assert retried.json() == sent.json()  # the same key answers the same, and sends nothing more

        inbox = setup.inbox(openid)
        assert [m["msgid"] for m in inbox] == [sent.json()["msgid"]]
        receipt = _receipt(signed, sent.json()["message_id"])
        assert receipt["status"] == "delivered", receipt
    finally:
        api.close()
        signed.close()


def test_start_api_refuses_bad_input_with_a_4xx_json_error(fresh: SamLocal, served_api: str) -> None:
    with httpx.Client(base_url=served_api, timeout=180) as api:
        no_code = api.post("/login", json={})
        not_json = api.post("/login", content=b"code=1", headers={"content-type": "text/plain"})
        no_session = api.get("/subscriptions")

    for answer in (no_code, not_json, no_session):
        assert 400 <= answer.status_code < 500, answer.text
        assert set(answer.json()) >= {"error", "message"}, answer.text
    assert no_session.status_code == 401


def _receipt(client: httpx.Client, message_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record = dict(client.get(f"/messages/{message_id}").json())
        if record.get("status") == "delivered" or time.monotonic() > deadline:
            return record
        time.sleep(0.5)


@pytest.fixture(scope="module")
def warm_invoke(sam: SamLocal) -> Iterator[Any]:
    with sam.start_lambda(free_port()) as invoke:
        yield invoke


@pytest.mark.parametrize("function", sorted(sam_events.EVENT_FILES))
def test_each_function_cold_then_warm_through_sam_local_start_lambda(
    fresh: SamLocal, warm_invoke: Any, figures: list[tuple[str, str, float]], function: str
) -> None:
    """The first invocation starts a container; the second reuses it. Both give the outcome."""
    event_file = sam_events.default_event(function)
    runs: list[Invocation] = []

    def invoke(name: str, event: Any) -> Invocation:
        invocation: Invocation = warm_invoke(name, event)
        runs.append(invocation)
        return invocation

    first = sam_events.run(fresh, function, json.loads(event_file.read_text()), invoke)
    fresh.stack.reset()
    second = sam_events.run(fresh, function, json.loads(event_file.read_text()), invoke)

    figures.append((function, "start-lambda first invocation (cold)", runs[0].seconds))
    figures.append((function, "start-lambda second invocation (warm)", runs[1].seconds))
    assert first.ok, first.report()
    assert second.ok, second.report()
