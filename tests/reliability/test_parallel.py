"""Concurrency at the two doors where a duplicate costs a user: 50 sends racing for one grant
deliver exactly one card, and 50 copies of one push racing in count exactly one grant.

Each round uses a fresh user. What is counted is what the user and WeChat saw: the cards in the
sandbox inbox, the send requests that reached WeChat, and the grant count the user's own session
reads back.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from harness import SCALE, unsigned
from wx_flows import (
    ONE_TIME,
    accept,
    encrypted_push,
    inbox,
    login,
    message,
    one_time_left,
    popup_event,
    post_push,
)

from bench.reliability import PARALLEL_PUSHES, PARALLEL_SENDS
from local.stack import LocalStack
from sandbox import crypto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(SCALE.timeout)]
PARALLEL = 50


def race(clients: list[httpx.Client], call: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """``call`` on every client at the same moment. Each client opens its keep-alive connection first
    (the local gateway's listen backlog is small, and 50 connects at once would be reset before a
    request is even read), then all wait at a barrier and send together."""
    for client in clients:
        client.get("/")  # a gateway 404: no function runs, the connection stays open
    barrier = threading.Barrier(len(clients))

    def one(client: httpx.Client) -> httpx.Response:
        barrier.wait(timeout=30)
        return call(client)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(one, clients))


def test_50_parallel_sends_on_one_grant_deliver_exactly_one(
    stack: LocalStack, signed, api: httpx.Client, scale: Any, figure: Any
) -> None:
    clients = [signed() for _ in range(PARALLEL)]
    rounds: list[dict[str, Any]] = []
    for _ in range(scale.rounds):
        openid, token = login(stack, api)
        accept(stack, openid)
        assert one_time_left(api, token) == 1
        body = message(openid)
        answers = race(clients, lambda client, body=body: client.post("/messages", json=body))
        statuses = Counter(a.status_code for a in answers)
        refusals = Counter(a.json().get("error") for a in answers if a.status_code != 200)
        rounds.append(
            {
                "delivered": len(inbox(stack, openid)),
                "ok": statuses[200],
                "statuses": dict(statuses),
                "refusals": dict(refusals),
                "left": one_time_left(api, token),
            }
        )

    delivered = [r["delivered"] for r in rounds]
    figure.record(
        PARALLEL_SENDS,
        cases=PARALLEL * len(rounds),
        figure=f"cards delivered per round: {delivered}; answers 200 per round: {[r['ok'] for r in rounds]}",
        goal="exactly 1 card and one 200 per round",
        at_goal=all(r["delivered"] == 1 and r["ok"] == 1 and r["left"] == 0 for r in rounds),
        rounds=rounds,
    )
    for r in rounds:
        assert r["delivered"] == 1, r
        assert r["statuses"] == {200: 1, 409: PARALLEL - 1}, r
        assert r["refusals"] == {"no_grant": PARALLEL - 1}, r
        assert r["left"] == 0, r


def test_50_parallel_copies_of_one_push_count_one_grant(
    stack: LocalStack, api: httpx.Client, transcript: Any, scale: Any, figure: Any
) -> None:
    """Rounds alternate: 50 byte-identical plaintext requests, then 50 safe-mode copies of one event,
    each encrypted and signed anew, as WeChat's retries arrive."""
    rounds: list[dict[str, Any]] = []
    with ExitStack() as closing:
        clients = [closing.enter_context(unsigned(stack, transcript)) for _ in range(PARALLEL)]
        for number in range(scale.rounds):
            openid, token = login(stack, api)
            event = popup_event(openid, ONE_TIME)
            if number % 2 == 0:
                names = stack.description.parameters
                push_token = stack.secure_strings[str(names["PushTokenParam"])]
                stamp, nonce = str(int(time.time())), "4242" + str(number)
                query = {
                    "signature": crypto.signature(push_token, stamp, nonce),
                    "timestamp": stamp,
                    "nonce": nonce,
                }
                body = json.dumps(event)

                def push(
                    client: httpx.Client, query: dict[str, str] = query, body: str = body
                ) -> httpx.Response:
                    return client.post(
                        "/wechat/push",
                        params=query,
                        content=body,
                        headers={"content-type": "application/json"},
                    )
            else:

                def push(client: httpx.Client, event: dict[str, Any] = event) -> httpx.Response:
                    return encrypted_push(stack, client, event)

            answers = race(clients, push)
            statuses = Counter(a.status_code for a in answers)
            errors = Counter(a.json().get("error") for a in answers if a.status_code != 200)
            # the copies WeChat would retry (503 push_in_progress) are retried once all have answered
            retried = [post_push(stack, api, json.dumps(event)) for _ in range(2)]
            rounds.append(
                {
                    "mode": "identical plaintext" if number % 2 == 0 else "re-encrypted",
                    "statuses": dict(statuses),
                    "errors": dict(errors),
                    "retried": [r.status_code for r in retried],
                    "grants": one_time_left(api, token),
                }
            )

    grants = [r["grants"] for r in rounds]
    figure.record(
        PARALLEL_PUSHES,
        cases=PARALLEL * len(rounds),
        figure=f"grants counted per round: {grants}",
        goal="1 grant per round",
        at_goal=all(g == 1 for g in grants),
        rounds=rounds,
    )
    for r in rounds:
        assert r["grants"] == 1, r
        assert r["statuses"].get(200, 0) >= 1, r
        assert set(r["errors"]) <= {"push_in_progress"}, r
        assert r["retried"] == [200, 200], r
