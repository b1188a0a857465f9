"""Faults by rate: a share of the calls to a path misbehaves, drawn from a seeded generator."""

from __future__ import annotations

import json
import random
from collections import Counter

from sandbox_helpers import ALARM_DATA, SEND, WeChat

from sandbox.server import SEEDED_LONG_TERM

CALLS = 200
SEED = 20240601


def _long_term_user(wechat: WeChat) -> str:
    openid = wechat.user()
    wechat.accept(openid, SEEDED_LONG_TERM)
    return openid


def _kind(wechat: WeChat, openid: str, token: str) -> str:
    """What one send looked like to the client: ``ok``, ``errcode <n>`` or ``garbled``."""
    response = wechat.send_raw({"touser": openid, "template_id": SEEDED_LONG_TERM, "data": ALARM_DATA}, token)
    try:
        errcode = json.loads(response.content)["errcode"]
    except ValueError:
        return "garbled"
    return "ok" if errcode == 0 else f"errcode {errcode}"


def _expected(seed: int, slices: list[tuple[str, float]], calls: int) -> Counter[str]:
    """The kinds the sandbox's draws give: one draw per call, slices laid end to end from 0."""
    draws = random.Random(seed)
    kinds: Counter[str] = Counter()
    for _ in range(calls):
        point, edge, kind = draws.random(), 0.0, "ok"
        for name, rate in slices:
            edge += rate
            if point < edge:
                kind = name
                break
        kinds[kind] += 1
    return kinds


def test_two_rate_faults_share_one_draw_per_call(wechat: WeChat) -> None:
    openid = _long_term_user(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, rate=0.2, errcode=-1, seed=SEED)
    wechat.fault(path=SEND, rate=0.1, answer="garbled", deliver=True)

    kinds = Counter(_kind(wechat, openid, token) for _ in range(CALLS))

    assert kinds == _expected(SEED, [("errcode -1", 0.2), ("garbled", 0.1)], CALLS)
    assert 25 <= kinds["errcode -1"] <= 55
    assert 8 <= kinds["garbled"] <= 32
    assert len(wechat.inbox(openid=openid)) == kinds["ok"] + kinds["garbled"]
    logged = Counter(c["errcode"] for c in wechat.calls(SEND))
    assert logged == {0: kinds["ok"] + kinds["garbled"], -1: kinds["errcode -1"]}
    assert len(wechat.http.get("/sandbox/faults").json()["faults"]) == 2


def test_the_same_seed_gives_the_same_calls(wechat: WeChat) -> None:
    openid = _long_term_user(wechat)
    token = wechat.token()
    runs = []
    for _ in range(2):
        wechat.http.delete("/sandbox/faults").raise_for_status()
        wechat.fault(path=SEND, rate=0.5, errcode=45011, seed="same")
        runs.append([_kind(wechat, openid, token) for _ in range(40)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {"ok", "errcode 45011"}


def test_rate_fault_stays_until_deleted(wechat: WeChat) -> None:
    openid = _long_term_user(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, rate=1, errcode=-1)
    assert {_kind(wechat, openid, token) for _ in range(10)} == {"errcode -1"}
    wechat.http.delete("/sandbox/faults").raise_for_status()
    assert _kind(wechat, openid, token) == "ok"


def test_count_bounds_a_rate_fault(wechat: WeChat) -> None:
    openid = _long_term_user(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, rate=1, count=3, errcode=-1)
    assert [_kind(wechat, openid, token) for _ in range(5)] == ["errcode -1"] * 3 + ["ok"] * 2
    assert wechat.http.get("/sandbox/faults").json()["faults"] == []


def test_count_faults_come_before_rate_faults(wechat: WeChat) -> None:
    openid = _long_term_user(wechat)
    token = wechat.token()
    wechat.fault(path=SEND, rate=1, errcode=45011)
    wechat.fault(path=SEND, errcode=-1, count=2)
    kinds = [_kind(wechat, openid, token) for _ in range(4)]
    assert kinds == ["errcode -1", "errcode -1", "errcode 45011", "errcode 45011"]


def test_rate_faults_apply_only_to_their_path(wechat: WeChat) -> None:
    wechat.fault(path=SEND, rate=1, errcode=-1)
    assert "access_token" in wechat.stable_token()


def test_faults_list_shows_the_rate_fields(wechat: WeChat) -> None:
    wechat.fault(path=SEND, rate=0.02, deliver=True, hang=3, seed=7)
    (fault,) = wechat.http.get("/sandbox/faults").json()["faults"]
    assert fault == {
        "path": SEND,
        "count": None,
        "errcode": None,
        "hang": 3.0,
        "deliver": True,
        "answer": None,
        "rate": 0.02,
        "seed": 7,
    }
