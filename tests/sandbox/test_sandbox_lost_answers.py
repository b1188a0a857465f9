"""Lost answers (a proxy page, a cut-off body, a body that is not JSON) and answer latency."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sandbox_helpers import ORDER_DATA, SEND, Receiver, WeChat

from sandbox.server import SEEDED_LONG_TERM, SEEDED_ONE_TIME, Sandbox


def _subscribed(wechat: WeChat) -> str:
    openid = wechat.user()
    wechat.accept(openid)
    return openid


def _order(openid: str) -> dict[str, object]:
    return {"touser": openid, "template_id": SEEDED_ONE_TIME, "data": ORDER_DATA}


def _sent_events(sandbox: Sandbox) -> list[dict[str, object]]:
    return [
        json.loads(p["body"]) for p in sandbox.wait_for_pushes() if p["event"] == "subscribe_msg_sent_event"
    ]


@pytest.mark.parametrize(
    ("answer", "status", "title"),
    [("proxy_502", 502, "502 Bad Gateway"), ("proxy_504", 504, "504 Gateway Time-out")],
)
def test_proxy_page_after_delivery_hides_a_delivered_send(
    wechat: WeChat, sandbox: Sandbox, receiver: Receiver, answer: str, status: int, title: str
) -> None:
    openid = _subscribed(wechat)
    wechat.configure(push_url=receiver.url, push_token="AAAAA").raise_for_status()
    token = wechat.token()
    wechat.fault(path=SEND, answer=answer, deliver=True)

    response = wechat.send_raw(_order(openid), token)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{title}</title>" in response.text
    (message,) = wechat.inbox(openid=openid)
    assert [c["errcode"] for c in wechat.calls(SEND)] == [0]
    assert wechat.grants(openid)[SEEDED_ONE_TIME]["one_time"] == 0
    (event,) = _sent_events(sandbox)
    assert event["List"] == {
        "TemplateId": SEEDED_ONE_TIME,
        "MsgID": message["msgid"],
        "ErrorCode": "0",
        "ErrorStatus": "success",
    }
    assert len(receiver.wait(1)) == 1


def test_proxy_page_without_delivery_changes_nothing(wechat: WeChat, sandbox: Sandbox) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, answer="proxy_502")

    response = wechat.send_raw(_order(openid), token)

    assert response.status_code == 502 and "502 Bad Gateway" in response.text
    assert wechat.inbox() == []
    assert wechat.grants(openid)[SEEDED_ONE_TIME]["one_time"] == 1
    assert [c["errcode"] for c in wechat.calls(SEND)] == [None]
    assert sandbox.wait_for_pushes() == []
    assert wechat.send(openid, token=token)["errcode"] == 0


def test_truncated_answer_after_delivery_is_an_incomplete_body(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, answer="truncated", deliver=True)

    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        wechat.send_raw(_order(openid), token)

    assert len(wechat.inbox(openid=openid)) == 1
    assert [c["errcode"] for c in wechat.calls(SEND)] == [0]
    assert wechat.send(openid, token=token)["errcode"] == 43101


def test_truncated_answer_without_delivery_delivers_nothing(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, answer="truncated")

    with pytest.raises(httpx.RemoteProtocolError):
        wechat.send_raw(_order(openid), token)

    assert wechat.inbox() == []
    assert wechat.grants(openid)[SEEDED_ONE_TIME]["one_time"] == 1


@pytest.mark.parametrize("deliver", [True, False])
def test_garbled_answer_is_complete_but_not_json(wechat: WeChat, deliver: bool) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, answer="garbled", deliver=deliver)

    response = wechat.send_raw(_order(openid), token)

    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content) > 0
    assert response.text.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert len(wechat.inbox(openid=openid)) == (1 if deliver else 0)


@pytest.mark.timeout(10)
def test_lost_answer_waits_out_its_hang(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, answer="proxy_504", hang=0.3, deliver=True)

    started = time.monotonic()
    response = wechat.send_raw(_order(openid), token)

    assert time.monotonic() - started >= 0.3
    assert response.status_code == 504
    assert len(wechat.inbox(openid=openid)) == 1


@pytest.mark.timeout(10)
def test_latency_holds_wechat_answers_but_not_control_calls(wechat: WeChat) -> None:
    openid = wechat.user()
    wechat.accept(openid, SEEDED_LONG_TERM)
    token = wechat.token()
    assert wechat.configure(latency=0.2).json()["latency"] == 0.2

    started = time.monotonic()
    answer = wechat.send(openid, SEEDED_LONG_TERM, token=token)
    held = time.monotonic() - started
    started = time.monotonic()
    wechat.inbox()
    control = time.monotonic() - started

    assert answer["errcode"] == 0
    assert held >= 0.2
    assert control < 0.2


@pytest.mark.timeout(10)
def test_latency_holds_concurrent_answers_in_parallel(wechat: WeChat) -> None:
    openid = wechat.user()
    wechat.accept(openid, SEEDED_LONG_TERM)
    token = wechat.token()
    wechat.configure(latency=0.2).raise_for_status()

    def send(_: int) -> tuple[int, float]:
        started = time.monotonic()
        answer = wechat.send(openid, SEEDED_LONG_TERM, token=token)
        return answer["errcode"], time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(send, range(20)))
    wall = time.monotonic() - started

    assert [errcode for errcode, _ in results] == [0] * 20
    assert min(elapsed for _, elapsed in results) >= 0.2
    assert wall < 2.0
    assert len(wechat.inbox(openid=openid)) == 20


@pytest.mark.parametrize("latency", [-1, "0.2", None, True])
def test_bad_latency_is_refused(wechat: WeChat, latency: object) -> None:
    response = wechat.configure(latency=latency)
    assert response.status_code == 400
    assert "latency" in response.json()["error"]
    assert wechat.http.get("/sandbox/config").json()["latency"] == 0
