"""Steps a mini program, a phone and a trusted backend take against the local stack.

Shared by the integration tests: each helper is one thing a user of wxsub does, over HTTP.
Pushes crafted here use the sandbox's own crypto, written independently of the product's.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import boto3
import httpx

from local.stack import LocalStack
from sandbox import SEEDED_LONG_TERM, SEEDED_ONE_TIME, crypto

ONE_TIME = SEEDED_ONE_TIME
LONG_TERM = SEEDED_LONG_TERM
SEND_PATH = "/cgi-bin/message/subscribe/send"
VALID_DATA = {
    "thing1": "机械键盘",
    "time2": "2026年11月24日 10:30",
    "character_string3": "KHDD1912310002",
    "amount4": "¥100.00",
    "phrase5": "配送中",
}
LONG_TERM_DATA_BASE = {"time1": "2026年11月24日 10:30", "thing3": "设备提醒"}


def sandbox(stack: LocalStack) -> httpx.Client:
    assert stack.sandbox_url is not None
    return httpx.Client(base_url=stack.sandbox_url, timeout=30)


def new_code(stack: LocalStack, openid: str | None = None) -> tuple[str, str]:
    """A phone calls wx.login: the sandbox hands out a fresh code."""
    with sandbox(stack) as sb:
        answer = sb.post("/sandbox/login", json={"openid": openid} if openid else {}).json()
    return answer["code"], answer["openid"]


def login(stack: LocalStack, api: httpx.Client) -> tuple[str, str]:
    """A user logs in through wxsub: returns (openid, session token)."""
    code, _ = new_code(stack)
    answer = api.post("/login", json={"code": code})
    assert answer.status_code == 200, answer.text
    return answer.json()["openid"], answer.json()["token"]


def accept(
    stack: LocalStack, openid: str, template_id: str = ONE_TIME, status: str = "accept"
) -> dict[str, Any]:
    """The user acts on the popup in WeChat; the sandbox pushes the popup event to wxsub."""
    with sandbox(stack) as sb:
        answer = sb.post(
            "/sandbox/subscribe", json={"openid": openid, "template_id": template_id, "status": status}
        )
    assert answer.status_code == 200, answer.text
    settle_pushes(stack)
    return dict(answer.json())


def settle_pushes(stack: LocalStack, timeout: float = 180) -> list[dict[str, Any]]:
    """Every push record, once the sandbox has delivered (or given up on) all it queued.

    The sandbox pushes one at a time, as WeChat does per account; hundreds of accepts take tens
    of seconds on a loaded machine, so the wait is long but returns as soon as the queue is empty.
    """
    assert stack.sandbox is not None
    return stack.sandbox.drain_pushes(timeout)


def inbox(stack: LocalStack, openid: str) -> list[dict[str, Any]]:
    with sandbox(stack) as sb:
        return list(sb.get("/sandbox/inbox", params={"openid": openid}).json()["messages"])


def send_calls(stack: LocalStack) -> int:
    with sandbox(stack) as sb:
        return len(sb.get("/sandbox/calls", params={"path": SEND_PATH}).json()["calls"])


def fault(stack: LocalStack, **spec: Any) -> None:
    with sandbox(stack) as sb:
        spec.setdefault("path", SEND_PATH)
        assert sb.post("/sandbox/faults", json=spec).status_code == 200


def grants(api: httpx.Client, token: str) -> dict[str, dict[str, Any]]:
    answer = api.get("/subscriptions", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return {g["template_id"]: g for g in answer.json()["grants"]}


def one_time_left(api: httpx.Client, token: str, template_id: str = ONE_TIME) -> int:
    return int(grants(api, token).get(template_id, {}).get("one_time", 0))


def report(api: httpx.Client, token: str, result: dict[str, str]) -> httpx.Response:
    body = {"errMsg": "requestSubscribeMessage:ok", **result}
    return api.post("/subscriptions", json=body, headers={"Authorization": f"Bearer {token}"})


def message(openid: str, template_id: str = ONE_TIME, **overrides: Any) -> dict[str, Any]:
    return {"openid": openid, "template_id": template_id, "data": dict(VALID_DATA), **overrides}


def popup_event(openid: str, template_id: str, status: str = "accept") -> dict[str, Any]:
    """A popup event as WeChat pushes it, before signing or encryption."""
    return {
        "ToUserName": "gh_000sandbox0",
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "event",
        "Event": "subscribe_msg_popup_event",
        "List": [{"TemplateId": template_id, "SubscribeStatusString": status, "PopupScene": "0"}],
    }


def push_popup(
    stack: LocalStack,
    api: httpx.Client,
    openid: str,
    template_id: str,
    *,
    create_time: int | None = None,
    status: str = "accept",
    token: str | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    """WeChat (or a forger) POSTs a plaintext JSON popup event to /wechat/push."""
    event = {
        "ToUserName": "gh_000sandbox0",
        "FromUserName": openid,
        "CreateTime": create_time if create_time is not None else int(time.time()),
        "MsgType": "event",
        "Event": "subscribe_msg_popup_event",
        "List": {"TemplateId": template_id, "SubscribeStatusString": status, "PopupScene": "0"},
    }
    return post_push(stack, api, json.dumps(event), token=token, timestamp=timestamp)


def post_push(
    stack: LocalStack,
    api: httpx.Client,
    body: str | bytes,
    *,
    token: str | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    push_token = token or stack.secure_strings[stack.description.parameters["PushTokenParam"]]
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    nonce = str(secrets.randbelow(10**9))
    query = {"signature": crypto.signature(push_token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
    return api.post("/wechat/push", params=query, content=body, headers={"content-type": "application/json"})


def encrypted_push(
    stack: LocalStack,
    api: httpx.Client,
    event: dict[str, Any],
    *,
    appid: str | None = None,
    openid: str | None = None,
) -> httpx.Response:
    """A safe-mode push: the event AES-encrypted with the configured key, signed with msg_signature.

    The query's ``openid`` is the event's ``FromUserName`` unless ``openid`` is given.
    """
    names = stack.description.parameters
    push_token = stack.secure_strings[names["PushTokenParam"]]
    aes_key = stack.secure_strings[names["PushAesKeyParam"]]
    encrypted = crypto.encrypt(aes_key, json.dumps(event).encode(), appid or stack.appid)
    stamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    query = {
        "signature": crypto.signature(push_token, stamp, nonce),
        "timestamp": stamp,
        "nonce": nonce,
        "openid": openid or event["FromUserName"],
        "encrypt_type": "aes",
        "msg_signature": crypto.signature(push_token, stamp, nonce, encrypted),
    }
    body = json.dumps({"ToUserName": event["ToUserName"], "Encrypt": encrypted})
    return api.post("/wechat/push", params=query, content=body, headers={"content-type": "application/json"})


def aws_client(stack: LocalStack, service: str) -> Any:
    """A boto3 client on the stack's moto, with the stack's credentials."""
    return boto3.client(
        service,
        endpoint_url=stack.aws_endpoint,
        region_name=stack.region,
        aws_access_key_id=stack.credentials[0],
        aws_secret_access_key=stack.credentials[1],
    )


def stored_token(stack: LocalStack) -> dict[str, Any]:
    """The access-token SecureString as the refresher wrote it, with its SSM version."""
    name = stack.description.parameters["AccessTokenParam"]
    parameter = aws_client(stack, "ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    return {**json.loads(parameter["Value"]), "version": int(parameter["Version"])}
