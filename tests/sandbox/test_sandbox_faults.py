"""Fault injection, the call log, reset and unknown paths."""

from __future__ import annotations

import time

import httpx
import pytest
from sandbox_helpers import ORDER_DATA, SEND, WeChat

from sandbox.server import SEEDED_ONE_TIME


def _subscribed(wechat: WeChat, times: int = 1) -> str:
    openid = wechat.user()
    for _ in range(times):
        wechat.accept(openid)
    return openid


def test_next_n_calls_answer_the_injected_errcode(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, errcode=-1, count=2)
    first, second = wechat.send(openid, token=token), wechat.send(openid, token=token)
    assert first["errcode"] == second["errcode"] == -1
    assert first["errmsg"].startswith("system error rid: ")
    assert wechat.inbox() == []
    assert wechat.send(openid, token=token)["errcode"] == 0


def test_faults_apply_to_any_wechat_path(wechat: WeChat) -> None:
    wechat.fault(path="/cgi-bin/stable_token", errcode=45011)
    assert wechat.stable_token()["errcode"] == 45011
    assert "access_token" in wechat.stable_token()


@pytest.mark.timeout(10)
def test_hang_with_delivery_makes_a_client_timeout_ambiguous(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, hang=1.0, deliver=True)
    body = {"touser": openid, "template_id": SEEDED_ONE_TIME, "data": ORDER_DATA}
    with pytest.raises(httpx.ReadTimeout):
        wechat.send_raw(body, token, timeout=0.3)
    (message,) = wechat.inbox(openid=openid)
    assert wechat.grants(openid)[SEEDED_ONE_TIME]["one_time"] == 0
    assert message["template_id"] == SEEDED_ONE_TIME


@pytest.mark.timeout(10)
def test_hang_without_delivery_delivers_nothing_and_answers_minus_1(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, hang=0.5, deliver=False)
    started = time.monotonic()
    answer = wechat.send(openid, token=token)
    assert time.monotonic() - started >= 0.5
    assert answer["errcode"] == -1
    assert wechat.inbox() == []
    assert wechat.grants(openid)[SEEDED_ONE_TIME]["one_time"] == 1


@pytest.mark.timeout(10)
def test_hang_with_delivery_answers_normally_when_waited_for(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    wechat.fault(path=SEND, hang=0.3, deliver=True)
    answer = wechat.send(openid)
    assert answer["errcode"] == 0
    assert wechat.inbox()[0]["msgid"] == str(answer["msgid"])


def test_delivered_but_answered_with_an_error(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    wechat.fault(path=SEND, errcode=-1, deliver=True)
    assert wechat.send(openid)["errcode"] == -1
    assert len(wechat.inbox(openid=openid)) == 1


def test_delete_clears_faults(wechat: WeChat) -> None:
    wechat.fault(path=SEND, errcode=-1, count=5)
    assert len(wechat.http.get("/sandbox/faults").json()["faults"]) == 1
    assert wechat.http.delete("/sandbox/faults").json() == {"faults": []}
    assert wechat.send(_subscribed(wechat))["errcode"] == 0


def test_bad_fault_is_refused(wechat: WeChat) -> None:
    assert wechat.http.post("/sandbox/faults", json={"path": SEND}).status_code == 400
    assert wechat.http.post("/sandbox/faults", json={"path": "nope", "errcode": -1}).status_code == 400


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"answer": "proxy_503"}, "answer"),
        ({"answer": ["garbled"]}, "answer"),
        ({"answer": "garbled", "errcode": -1}, "answer"),
        ({"errcode": "-1"}, "errcode"),
        ({"errcode": -1, "hang": -1}, "hang"),
        ({"errcode": -1, "deliver": "yes"}, "deliver"),
        ({"errcode": -1, "count": 0}, "count"),
        ({"errcode": -1, "rate": 0}, "rate"),
        ({"errcode": -1, "rate": 1.5}, "rate"),
        ({"errcode": -1, "rate": True}, "rate"),
        ({"errcode": -1, "rate": 0.5, "count": 1.5}, "count"),
        ({"errcode": -1, "seed": 1}, "seed"),
        ({"errcode": -1, "rate": 0.5, "seed": 1.5}, "seed"),
        ({"errcode": -1, "rates": 0.5}, "rates"),
    ],
)
def test_bad_fault_spec_is_refused_naming_the_field(
    wechat: WeChat, spec: dict[str, object], field: str
) -> None:
    response = wechat.http.post("/sandbox/faults", json={"path": SEND} | spec)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert wechat.http.get("/sandbox/faults").json()["faults"] == []


def test_rates_on_one_path_may_not_exceed_1(wechat: WeChat) -> None:
    wechat.fault(path=SEND, rate=0.6, errcode=-1)
    response = wechat.http.post("/sandbox/faults", json={"path": SEND, "rate": 0.5, "answer": "garbled"})
    assert response.status_code == 400
    assert "rate" in response.json()["error"]
    wechat.fault(path="/cgi-bin/stable_token", rate=0.5, errcode=-1)
    assert len(wechat.http.get("/sandbox/faults").json()["faults"]) == 2


def test_call_log_records_wechat_calls_only_without_secrets(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    wechat.send(openid)
    wechat.send(openid)
    calls = wechat.calls()
    assert [(c["method"], c["path"], c["errcode"]) for c in calls] == [
        ("POST", "/cgi-bin/stable_token", 0),
        ("POST", SEND, 0),
        ("POST", "/cgi-bin/stable_token", 0),
        ("POST", SEND, 43101),
    ]
    assert [c["errcode"] for c in wechat.calls(SEND)] == [0, 43101]
    assert "secret" not in str(calls) and "access_token" not in str(calls)


def test_unknown_paths_are_404_not_found(wechat: WeChat) -> None:
    for path in ("/cgi-bin/nope", "/sandbox/nope", "/"):
        response = wechat.http.get(path)
        assert (response.status_code, response.text) == (404, "404 not found")
    assert wechat.calls("/cgi-bin/nope")[0]["errcode"] is None


def test_reset_returns_to_the_seeded_state(wechat: WeChat) -> None:
    openid = _subscribed(wechat)
    token = wechat.token()
    wechat.send(openid, token=token)
    wechat.http.delete(f"/sandbox/templates/{SEEDED_ONE_TIME}")
    wechat.fault(path=SEND, errcode=-1)
    wechat.http.post("/sandbox/reset").raise_for_status()
    assert wechat.inbox() == [] and wechat.calls() == []
    assert wechat.http.get(f"/sandbox/users/{openid}").status_code == 404
    assert wechat.http.get("/sandbox/faults").json()["faults"] == []
    other = _subscribed(wechat)
    assert wechat.send(other, token=token)["errcode"] == 0
    wechat.http.post("/sandbox/reset", json={"tokens": True}).raise_for_status()
    assert wechat.send(other, token=token)["errcode"] == 40014
