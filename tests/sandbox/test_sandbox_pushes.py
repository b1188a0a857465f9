"""Message push (wechat-api.md §7): events, formats, modes, signatures, AES, retries, timing."""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
from sandbox_helpers import ORDER_DATA, SEND, Received, Receiver, WeChat

from sandbox import crypto
from sandbox.model import DEFAULT_APPID, DEFAULT_ORIGINAL_ID
from sandbox.server import SEEDED_LONG_TERM, SEEDED_ONE_TIME, SEEDED_ONE_TIME_3, Sandbox

TOKEN = "AAAAA"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _push_to(wechat: WeChat, receiver: Receiver, **config: Any) -> None:
    settings = {"push_url": receiver.url, "push_token": TOKEN, "push_timeout": 1.0} | config
    wechat.configure(**settings).raise_for_status()


def _plain_signature_ok(item: Received) -> bool:
    q = item.query
    return crypto.signature(TOKEN, q["timestamp"], q["nonce"]) == q["signature"]


def _decrypt(item: Received, encrypted: str) -> bytes:
    q = item.query
    assert crypto.signature(TOKEN, q["timestamp"], q["nonce"], encrypted) == q["msg_signature"]
    message, appid = crypto.decrypt(AES_KEY, encrypted, DEFAULT_APPID)
    assert appid == DEFAULT_APPID
    return message


def _xml_fields(root: ET.Element) -> dict[str, str]:
    return {child.tag: child.text or "" for child in root if len(child) == 0}


def test_popup_event_plain_json(wechat: WeChat, receiver: Receiver) -> None:
    _push_to(wechat, receiver)
    openid = wechat.user()
    wechat.accept(openid)
    (item,) = receiver.wait(1)
    assert (item.method, item.path) == ("POST", "/wechat/push")
    assert set(item.query) == {"signature", "timestamp", "nonce"}
    assert _plain_signature_ok(item)
    assert item.content_type == "application/json"
    body = item.json()
    assert body == {
        "ToUserName": DEFAULT_ORIGINAL_ID,
        "FromUserName": openid,
        "CreateTime": body["CreateTime"],
        "MsgType": "event",
        "Event": "subscribe_msg_popup_event",
        "List": {"TemplateId": SEEDED_ONE_TIME, "SubscribeStatusString": "accept", "PopupScene": "0"},
    }
    assert isinstance(body["CreateTime"], int)
    assert abs(body["CreateTime"] - time.time()) < 5


def test_popup_with_several_templates_pushes_a_list_array(wechat: WeChat, receiver: Receiver) -> None:
    _push_to(wechat, receiver)
    results = {SEEDED_ONE_TIME: "accept", SEEDED_ONE_TIME_3: "reject"}
    wechat.http.post("/sandbox/subscribe", json={"openid": wechat.user(), "results": results})
    (item,) = receiver.wait(1)
    assert [(i["TemplateId"], i["SubscribeStatusString"]) for i in item.json()["List"]] == list(
        results.items()
    )


def test_popup_event_plain_xml(wechat: WeChat, receiver: Receiver) -> None:
    _push_to(wechat, receiver, push_format="xml")
    openid = wechat.user()
    wechat.http.post(
        "/sandbox/subscribe",
        json={"openid": openid, "results": {SEEDED_ONE_TIME: "accept", SEEDED_ONE_TIME_3: "reject"}},
    )
    (item,) = receiver.wait(1)
    assert item.content_type == "text/xml"
    assert _plain_signature_ok(item)
    assert b"<FromUserName><![CDATA[" + openid.encode() + b"]]></FromUserName>" in item.body
    root = ET.fromstring(item.body)
    assert _xml_fields(root)["Event"] == "subscribe_msg_popup_event"
    lists = root.findall("./SubscribeMsgPopupEvent/List")
    assert [_xml_fields(e) for e in lists] == [
        {"TemplateId": SEEDED_ONE_TIME, "SubscribeStatusString": "accept", "PopupScene": "0"},
        {"TemplateId": SEEDED_ONE_TIME_3, "SubscribeStatusString": "reject", "PopupScene": "0"},
    ]


def test_safe_mode_json_is_signed_and_encrypted(wechat: WeChat, receiver: Receiver) -> None:
    _push_to(wechat, receiver, push_mode="safe", push_aes_key=AES_KEY)
    openid = wechat.user()
    wechat.accept(openid)
    (item,) = receiver.wait(1)
    assert item.query["encrypt_type"] == "aes"
    assert item.query["openid"] == openid
    assert _plain_signature_ok(item)
    body = item.json()
    assert set(body) == {"ToUserName", "Encrypt"}
    event = json.loads(_decrypt(item, body["Encrypt"]))
    assert event["Event"] == "subscribe_msg_popup_event"
    assert event["FromUserName"] == openid


def test_safe_mode_xml_is_signed_and_encrypted(wechat: WeChat, receiver: Receiver) -> None:
    _push_to(wechat, receiver, push_mode="safe", push_aes_key=AES_KEY, push_format="xml")
    openid = wechat.user()
    wechat.accept(openid)
    (item,) = receiver.wait(1)
    root = ET.fromstring(item.body)
    assert set(_xml_fields(root)) == {"ToUserName", "Encrypt"}
    event = ET.fromstring(_decrypt(item, _xml_fields(root)["Encrypt"]))
    assert _xml_fields(event)["FromUserName"] == openid


def test_compatible_mode_carries_plaintext_and_encrypt(wechat: WeChat, receiver: Receiver) -> None:
    _push_to(wechat, receiver, push_mode="compatible", push_aes_key=AES_KEY)
    wechat.accept(wechat.user())
    (item,) = receiver.wait(1)
    body = item.json()
    encrypted = body.pop("Encrypt")
    assert json.loads(_decrypt(item, encrypted)) == body
    assert body["Event"] == "subscribe_msg_popup_event"


def test_change_event(wechat: WeChat, receiver: Receiver) -> None:
    openid = wechat.user()
    wechat.accept(openid, SEEDED_LONG_TERM)
    _push_to(wechat, receiver)
    wechat.http.post("/sandbox/change", json={"openid": openid, "template_id": SEEDED_LONG_TERM})
    (item,) = receiver.wait(1)
    body = item.json()
    assert body["Event"] == "subscribe_msg_change_event"
    assert body["List"] == {"TemplateId": SEEDED_LONG_TERM, "SubscribeStatusString": "reject"}


def _sent_events(items: list[Received]) -> list[dict[str, Any]]:
    return [i.json() for i in items if i.json()["Event"] == "subscribe_msg_sent_event"]


def test_sent_event_carries_the_msgid(wechat: WeChat, receiver: Receiver) -> None:
    openid = wechat.user()
    wechat.accept(openid)
    _push_to(wechat, receiver)
    answer = wechat.send(openid)
    (event,) = _sent_events(receiver.wait(1))
    assert event["FromUserName"] == openid
    assert event["List"] == {
        "TemplateId": SEEDED_ONE_TIME,
        "MsgID": str(answer["msgid"]),
        "ErrorCode": "0",
        "ErrorStatus": "success",
    }


@pytest.mark.timeout(10)
def test_sent_event_is_pushed_after_the_send_is_answered(wechat: WeChat, receiver: Receiver) -> None:
    openid = wechat.user()
    wechat.accept(openid)
    answered = threading.Event()
    answer_seen_first: list[bool] = []

    def answer(item: Received) -> tuple[int, bytes]:
        answer_seen_first.append(answered.wait(2.0))
        return 200, b"success"

    receiver.answer = answer
    _push_to(wechat, receiver, push_timeout=4.0)
    assert wechat.send(openid)["errcode"] == 0
    answered.set()
    wechat.sandbox.wait_for_pushes()
    assert answer_seen_first == [True]


def test_failed_sends_push_nothing(wechat: WeChat, receiver: Receiver, sandbox: Sandbox) -> None:
    _push_to(wechat, receiver)
    assert wechat.send(wechat.user())["errcode"] == 43101
    assert sandbox.wait_for_pushes() == []


def test_numbers_scalars_write_msgid_raw(wechat: WeChat, receiver: Receiver) -> None:
    openid = wechat.user()
    wechat.accept(openid)
    _push_to(wechat, receiver, push_scalars="numbers")
    msgid = wechat.send(openid)["msgid"]
    (item,) = receiver.wait(1)
    assert f'"MsgID":{msgid},'.encode() in item.body
    assert json.loads(item.body)["List"]["ErrorCode"] == 0


def test_strings_scalars_write_create_time_as_a_string(wechat: WeChat, receiver: Receiver) -> None:
    _push_to(wechat, receiver, push_scalars="strings")
    wechat.accept(wechat.user())
    (item,) = receiver.wait(1)
    assert isinstance(item.json()["CreateTime"], str)


@pytest.mark.timeout(10)
def test_non_2xx_is_retried_three_times_in_total(
    wechat: WeChat, receiver: Receiver, sandbox: Sandbox
) -> None:
    receiver.answer = lambda item: (500, b"busy")
    _push_to(wechat, receiver, push_retry_delay=0.0)
    wechat.accept(wechat.user())
    (record,) = sandbox.wait_for_pushes()
    assert len(receiver.wait(3)) == 3
    assert record["state"] == "failed"
    assert [(a["status"], a["response"]) for a in record["attempts"]] == [(500, "busy")] * 3
    pushes = wechat.http.get("/sandbox/pushes").json()["pushes"]
    assert pushes[0]["event"] == "subscribe_msg_popup_event"
    assert pushes[0]["status"] == 500


@pytest.mark.timeout(10)
def test_timeout_is_retried_until_answered(wechat: WeChat, receiver: Receiver, sandbox: Sandbox) -> None:
    def slow_twice(item: Received) -> tuple[int, bytes]:
        if len(receiver.received) <= 2:
            time.sleep(0.6)
        return 200, b"success"

    receiver.answer = slow_twice
    _push_to(wechat, receiver, push_timeout=0.2, push_retry_delay=0.0)
    wechat.accept(wechat.user())
    (record,) = sandbox.wait_for_pushes()
    assert record["state"] == "delivered"
    assert [a["status"] for a in record["attempts"]] == [None, None, 200]
    assert all("timed out" in (a["error"] or "") for a in record["attempts"][:2])
    bodies = {i.body for i in receiver.wait(3)}
    assert len(bodies) == 1


@pytest.mark.timeout(10)
def test_ambiguous_timeout_still_pushes_the_sent_event(
    wechat: WeChat, receiver: Receiver, sandbox: Sandbox
) -> None:
    openid = wechat.user()
    wechat.accept(openid)
    _push_to(wechat, receiver)
    token = wechat.token()
    wechat.fault(path=SEND, hang=0.6, deliver=True)
    with pytest.raises(httpx.ReadTimeout):
        wechat.send_raw(
            {"touser": openid, "template_id": SEEDED_ONE_TIME, "data": ORDER_DATA}, token, timeout=0.2
        )
    (event,) = _sent_events(receiver.wait(1))
    assert event["List"]["MsgID"] == wechat.inbox(openid=openid)[0]["msgid"]


def test_url_verification_echoes(wechat: WeChat, receiver: Receiver) -> None:
    def echo(item: Received) -> tuple[int, bytes]:
        ok = item.method == "GET" and _plain_signature_ok(item)
        return 200, item.query["echostr"].encode() if ok else b"bad"

    receiver.answer = echo
    _push_to(wechat, receiver)
    assert wechat.http.post("/sandbox/verify").json()["ok"] is True


def test_push_configuration_is_validated(wechat: WeChat, receiver: Receiver) -> None:
    assert wechat.configure(push_url=receiver.url).status_code == 400
    assert wechat.configure(push_url=receiver.url, push_token=TOKEN, push_mode="safe").status_code == 400
    assert wechat.configure(push_aes_key="short").status_code == 400
    assert wechat.configure(nonsense=1).status_code == 400
    public = wechat.configure(push_url=receiver.url, push_token=TOKEN).json()
    assert public["push_url"] == receiver.url
    assert TOKEN not in json.dumps(public)


def test_constructor_push_settings() -> None:
    with Sandbox(
        push_url="http://127.0.0.1:9/push", push_token=TOKEN, push_mode="safe", push_aes_key=AES_KEY
    ) as sb:
        config = httpx.get(f"{sb.url}/sandbox/config").json()
        assert (config["push_mode"], config["push_aes_key_set"]) == ("safe", True)
    with pytest.raises(ValueError):
        Sandbox(push_url="http://127.0.0.1:9/push")
