"""Each function's event from ``events/`` through its ``lambda_handler``, against moto and the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from handler_kit import Invoke, load_event

from local.stack import LocalStack
from local.template import load_yaml
from sandbox import SEEDED_ONE_TIME, crypto
from wxsub.http.openapi import document

ROOT = Path(__file__).resolve().parents[2]
DATA = {
    "thing1": "机械键盘",
    "time2": "2026年11月24日 10:30",
    "character_string3": "KHDD1912310002",
    "amount4": "¥100.00",
    "phrase5": "配送中",
}


def _sandbox(stack: LocalStack) -> httpx.Client:
    assert stack.sandbox_url is not None
    return httpx.Client(base_url=stack.sandbox_url, timeout=30)


def _login(stack: LocalStack, invoke: Invoke) -> dict:
    with _sandbox(stack) as sb:
        code = sb.post("/sandbox/login", json={}).json()["code"]
    event = load_event("login")
    event["body"] = json.dumps({"code": code})
    answer = invoke("login", event)
    assert answer["statusCode"] == 200, answer
    return dict(json.loads(answer["body"]))


def test_every_function_has_an_event_named_after_its_folder() -> None:
    functions = [
        res["Properties"]["CodeUri"].strip("/").rsplit("/", 1)[-1]
        for res in load_yaml(ROOT / "template.yaml")["Resources"].values()
        if res["Type"] == "AWS::Serverless::Function"
    ]

    events = sorted(p.stem for p in (ROOT / "events").glob("*.json"))

    assert set(functions) <= set(events)
    # another event of a function is named after it too (wechat_push_popup: a push, beside the URL check)
    assert [e for e in events if not any(e == f or e.startswith(f + "_") for f in functions)] == []


def test_scheduled_events_are_exactly_the_schedule_input() -> None:
    scheduled = 0
    for res in load_yaml(ROOT / "template.yaml")["Resources"].values():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        folder = res["Properties"]["CodeUri"].strip("/").rsplit("/", 1)[-1]
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "ScheduleV2":
                assert json.loads(event["Properties"]["Input"]) == load_event(folder)
                scheduled += 1

    assert scheduled >= 3


def test_settle_event_runs_the_sweep(aws_and_wechat: LocalStack, invoke: Invoke) -> None:
    answer = invoke("settle_deliveries", load_event("settle_deliveries"))

    assert answer == {"given_up": 0, "job": "settle-deliveries"}


def test_login_event_with_a_fresh_code(aws_and_wechat: LocalStack, invoke: Invoke) -> None:
    body = _login(aws_and_wechat, invoke)

    assert set(body) == {"token", "openid", "expires_in"}


def test_login_event_as_checked_in_is_refused_as_an_invalid_code(
    aws_and_wechat: LocalStack, invoke: Invoke
) -> None:
    answer = invoke("login", load_event("login"))

    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"] == "invalid_code"


def test_refresh_event_keeps_the_token_and_reports_it(aws_and_wechat: LocalStack, invoke: Invoke) -> None:
    answer = invoke("refresh_token", load_event("refresh_token"))

    assert answer["changed"] is False
    assert answer["expires_in"] > 0


def test_subscriptions_then_send_event(aws_and_wechat: LocalStack, invoke: Invoke) -> None:
    session = _login(aws_and_wechat, invoke)
    with _sandbox(aws_and_wechat) as sb:
        choice = {"openid": session["openid"], "template_id": SEEDED_ONE_TIME, "status": "accept"}
        assert sb.post("/sandbox/subscribe", json=choice).status_code == 200
    assert aws_and_wechat.sandbox is not None
    aws_and_wechat.sandbox.wait_for_pushes(20)
    report = load_event("subscriptions")
    report["headers"]["authorization"] = f"Bearer {session['token']}"
    report["body"] = json.dumps({"errMsg": "requestSubscribeMessage:ok", SEEDED_ONE_TIME: "accept"})
    send = load_event("send_message")
    send["body"] = json.dumps({"openid": session["openid"], "template_id": SEEDED_ONE_TIME, "data": DATA})

    reported = invoke("subscriptions", report)
    sent = invoke("send_message", send)
    again = invoke("send_message", send)

    assert reported["statusCode"] == 200
    assert json.loads(reported["body"])["grants"][0]["one_time"] == 1
    assert sent["statusCode"] == 200, sent
    assert json.loads(again["body"]) == json.loads(sent["body"])


def test_send_event_with_too_little_time_left_sends_nothing_and_the_same_key_sends_later(
    aws_and_wechat: LocalStack, invoke: Invoke
) -> None:
    session = _login(aws_and_wechat, invoke)
    with _sandbox(aws_and_wechat) as sb:
        choice = {"openid": session["openid"], "template_id": SEEDED_ONE_TIME, "status": "accept"}
        assert sb.post("/sandbox/subscribe", json=choice).status_code == 200
    assert aws_and_wechat.sandbox is not None
    aws_and_wechat.sandbox.wait_for_pushes(20)
    report = load_event("subscriptions")
    report["headers"]["authorization"] = f"Bearer {session['token']}"
    report["body"] = json.dumps({"errMsg": "requestSubscribeMessage:ok", SEEDED_ONE_TIME: "accept"})
    assert invoke("subscriptions", report)["statusCode"] == 200
    send = load_event("send_message")
    send["headers"]["idempotency-key"] = f"order-{uuid.uuid4()}"
    send["body"] = json.dumps({"openid": session["openid"], "template_id": SEEDED_ONE_TIME, "data": DATA})

    def inbox() -> list[dict]:
        with _sandbox(aws_and_wechat) as sb:
            return list(sb.get("/sandbox/inbox", params={"openid": session["openid"]}).json()["messages"])

    hurried = invoke("send_message", send, remaining_millis=4_000)
    after_hurried = inbox()
    sent = invoke("send_message", send)

    assert hurried["statusCode"] == 503, hurried
    assert json.loads(hurried["body"])["error"] == "wechat_unavailable"
    assert after_hurried == []
    assert sent["statusCode"] == 200, sent
    assert len(inbox()) == 1


def test_wechat_push_event_verifies_the_url(aws_and_wechat: LocalStack, invoke: Invoke) -> None:
    token = aws_and_wechat.secure_strings[aws_and_wechat.description.parameters["PushTokenParam"]]
    stamp, nonce = str(int(time.time())), "1514711492"
    event = load_event("wechat_push")
    event["queryStringParameters"].update(
        {"timestamp": stamp, "nonce": nonce, "signature": crypto.signature(token, stamp, nonce)}
    )

    answer = invoke("wechat_push", event)
    forged = invoke("wechat_push", load_event("wechat_push"))

    assert (answer["statusCode"], answer["body"]) == (200, "4375120948345356249")
    assert forged["statusCode"] == 401


def test_sync_templates_event(aws_and_wechat: LocalStack, invoke: Invoke) -> None:
    answer = invoke("sync_templates", load_event("sync_templates"))

    assert answer["templates"] >= 4


def test_api_docs_event_serves_the_checked_in_openapi_document(
    aws_and_wechat: LocalStack, invoke: Invoke
) -> None:
    answer = invoke("api_docs", load_event("api_docs"))

    served = json.loads(answer["body"])
    assert answer["statusCode"] == 200
    assert served == json.loads((ROOT / "docs" / "openapi.json").read_text()), "run `make openapi`"
    assert served == document(), "the routes changed: run `make openapi`"
    assert set(served["paths"]) >= {
        "/login",
        "/subscriptions",
        "/messages",
        "/messages/{message_id}",
        "/templates",
        "/templates/sync",
        "/wechat/push",
    }


def test_a_function_missing_a_setting_fails_at_cold_start_naming_it(aws_and_wechat: LocalStack) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT / 'functions' / 'login'}",
    }
    env.pop("STATE_TABLE", None)

    started = subprocess.run(
        [sys.executable, "-c", "import app"], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert started.returncode != 0
    assert "missing configuration: set STATE_TABLE" in started.stderr


def test_the_function_that_answers_with_session_tokens_keeps_them_out_of_traces() -> None:
    """With ``Tracing: Active`` Powertools' tracer stores each handler's answer as trace metadata
    unless told not to; /login's answer is a session token (issue 14)."""
    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    login = resources["LoginFunction"]["Properties"]["Environment"]["Variables"]

    assert login["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
