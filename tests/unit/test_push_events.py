"""Verifying and parsing WeChat pushes: modes, formats, rejections, key rotation, dedupe."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from wxsub.errors import BadSignature, ConfigurationError, InvalidRequest, Misconfigured
from wxsub.wechat.crypto import WxCrypto, signature
from wxsub.wechat.push import PushConfig, PushItem, PushMessage, open_push, verify_url

TOKEN, APPID = "AAAAA", "wxba5fad812f8e6fb9"
KEY, OLD_KEY, STRANGER_KEY = "A" * 43, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "B" * 43
NOW = 1714112445
NONCE = "415670741"

PLAIN = PushConfig(token=TOKEN, appid=APPID)
SAFE = PushConfig(token=TOKEN, appid=APPID, aes_keys=(KEY,), require_encryption=True)
ROTATING = PushConfig(token=TOKEN, appid=APPID, aes_keys=(KEY, OLD_KEY), require_encryption=True)

# The official V1 request (wechat-api.md §7.7).
V1_QUERY = {
    "signature": "6c5c811b55cc85e0e1b54100749188c20beb3f5d",
    "timestamp": "1714112445",
    "nonce": "415670741",
    "openid": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
    "encrypt_type": "aes",
    "msg_signature": "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3",
}
V1_BODY = (
    b'{"ToUserName":"gh_97417a04a28d","Encrypt":"+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05'
    b"JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMu"
    b"FUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIY"
    b'nSeOBrebufAlr7F9mFUPAJGj04="}'
)

# The §7.6 examples. The official JSON popup snippet ends in a trailing comma; this is it made valid.
POPUP_XML = (
    "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]>"
    "</FromUserName>\n<CreateTime>1610969440</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA["
    "subscribe_msg_popup_event]]></Event>\n<SubscribeMsgPopupEvent>\n <List><TemplateId><![CDATA["
    "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><SubscribeStatusString><![CDATA[accept]]>"
    "</SubscribeStatusString><PopupScene>2</PopupScene></List>\n <List><TemplateId><![CDATA["
    "9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI]]></TemplateId><SubscribeStatusString><![CDATA[reject]]>"
    "</SubscribeStatusString><PopupScene>2</PopupScene></List>\n</SubscribeMsgPopupEvent></xml>"
)
POPUP_JSON = (
    '{"ToUserName":"gh_123456789abc","FromUserName":"o7esq5OI1Uej6Xixw1lA2H7XDVbc","CreateTime":"1620973045",'
    '"MsgType":"event","Event":"subscribe_msg_popup_event","List":[{"TemplateId":'
    '"hD-ixGOhYmUfjOnI8MCzQMPshzGVeux_2vzyvQu7O68","SubscribeStatusString":"accept","PopupScene":"0"}]}'
)
CHANGE_XML = (
    "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]>"
    "</FromUserName><CreateTime>1610969440</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA["
    "subscribe_msg_change_event]]></Event><SubscribeMsgChangeEvent><List><TemplateId><![CDATA["
    "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><SubscribeStatusString><![CDATA[reject]]>"
    "</SubscribeStatusString></List></SubscribeMsgChangeEvent></xml>"
)
CHANGE_JSON = (
    '{"ToUserName":"xxxxx","FromUserName":"xxxxx","CreateTime":1625575518,"MsgType":"event",'
    '"Event":"subscribe_msg_change_event","List":{"SubscribeStatusString":"reject",'
    '"TemplateId":"NQezXFstp4zZV2q7u5aSprQZEx061ODkFJGLdungfoI"}}'
)
SENT_XML = (
    "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]>"
    "</FromUserName><CreateTime>1610969468</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA["
    "subscribe_msg_sent_event]]></Event><SubscribeMsgSentEvent><List><TemplateId><![CDATA["
    "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><MsgID>1700827132819554304</MsgID><ErrorCode>0"
    "</ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent></xml>"
)
SENT_JSON = (
    '{"ToUserName":"gh_123456789abc","FromUserName":"o7esq5PHRGBQYmeNyfG064wEFVpQ","CreateTime":"1620963428",'
    '"MsgType":"event","Event":"subscribe_msg_sent_event","List":{"TemplateId":'
    '"BEwX0BO-T3MqK3Uc5oTU3CGBqzjpndk2jzUf7VfExd8","MsgID":"1864323726461255680","ErrorCode":"0",'
    '"ErrorStatus":"success"}}'
)


def plain_query(timestamp: int = NOW, nonce: str = NONCE) -> dict[str, str]:
    return {"signature": signature(TOKEN, str(timestamp), nonce), "timestamp": str(timestamp), "nonce": nonce}


def safe_push(
    msg: str,
    *,
    key: str = KEY,
    appid: str = APPID,
    timestamp: int = NOW,
    nonce: str = NONCE,
    fmt: str = "json",
    random16: bytes | None = None,
) -> tuple[dict[str, str], bytes]:
    """A safe-mode request as WeChat sends it: the query and the envelope body."""
    encrypt = WxCrypto(key).encrypt(msg, appid, random16)
    query = {
        **plain_query(timestamp, nonce),
        "encrypt_type": "aes",
        "msg_signature": signature(TOKEN, str(timestamp), nonce, encrypt),
    }
    if fmt == "json":
        return query, json.dumps({"ToUserName": "gh_123456789abc", "Encrypt": encrypt}).encode()
    body = f"<xml><ToUserName>gh_123456789abc</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return query, body.encode()


def open_plain(body: str, config: PushConfig = PLAIN, content_type: str | None = None) -> PushMessage:
    return open_push(config, plain_query(), body.encode(), content_type, NOW)


class TestUrlVerification:
    QUERY: ClassVar[dict[str, str]] = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "echostr": "4375120948345356249",
        "timestamp": "1714036504",
        "nonce": "1514711492",
    }

    def test_official_example_answers_the_raw_echostr(self) -> None:
        assert verify_url(PLAIN, self.QUERY, now=1714036504) == "4375120948345356249"

    def test_forged_signature(self) -> None:
        query = {**self.QUERY, "signature": "0" * 40}
        with pytest.raises(BadSignature, match="signature does not match"):
            verify_url(PLAIN, query, now=1714036504)

    def test_stale_timestamp(self) -> None:
        with pytest.raises(BadSignature, match="old"):
            verify_url(PLAIN, self.QUERY, now=1714036504 + 301)

    @pytest.mark.parametrize("missing", ["signature", "timestamp", "nonce"])
    def test_missing_signature_parameter(self, missing: str) -> None:
        query = {name: value for name, value in self.QUERY.items() if name != missing}
        with pytest.raises(BadSignature, match=missing):
            verify_url(PLAIN, query, now=1714036504)

    def test_missing_echostr(self) -> None:
        query = {name: value for name, value in self.QUERY.items() if name != "echostr"}
        with pytest.raises(InvalidRequest, match="echostr"):
            verify_url(PLAIN, query, now=1714036504)


class TestPlaintextMode:
    def test_official_example(self) -> None:
        # Given the §7.3 request, signed over token, timestamp and nonce only
        query = {
            "signature": "899cf89e464efb63f54ddac96b0a0a235f53aa78",
            "timestamp": "1714037059",
            "nonce": "486452656",
        }
        body = (
            b'{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714037059,'
            b'"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
        )
        # When it is opened
        message = open_push(PLAIN, query, body, "application/json", now=1714037059)
        # Then it is a debug event with no subscription items
        assert message == PushMessage(
            to_user="gh_97417a04a28d",
            from_user="o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
            create_time=1714037059,
            msg_type="event",
            event="debug_demo",
        )
        assert message.raw["debug_str"] == "hello world"

    def test_format_is_told_by_content_not_header(self) -> None:
        assert open_plain(POPUP_XML, content_type="application/json").event == "subscribe_msg_popup_event"
        assert open_plain(POPUP_JSON, content_type="text/xml").event == "subscribe_msg_popup_event"
        assert open_plain("\ufeff  " + CHANGE_JSON, content_type=None).event == "subscribe_msg_change_event"

    def test_xml_declaration_is_accepted(self) -> None:
        assert open_plain('<?xml version="1.0" encoding="utf-8"?>' + SENT_XML).create_time == 1610969468


class TestSafeMode:
    def test_official_v1_request(self) -> None:
        message = open_push(SAFE, V1_QUERY, V1_BODY, "application/json", now=NOW)
        assert message.from_user == "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
        assert message.create_time == 1714112445
        assert message.event == "debug_demo"
        assert message.items == ()

    def test_xml_envelope(self) -> None:
        query, body = safe_push(SENT_XML, fmt="xml")
        assert open_push(SAFE, query, body, "text/xml", NOW).items[0].msg_id == "1700827132819554304"

    def test_compatible_mode_trusts_only_the_ciphertext(self) -> None:
        # Given a compatible-mode body whose plaintext copy was tampered with
        query, body = safe_push(POPUP_JSON)
        envelope = {**json.loads(POPUP_JSON), "FromUserName": "attacker", **json.loads(body)}
        # When it is opened
        message = open_push(SAFE, query, json.dumps(envelope).encode(), "application/json", NOW)
        # Then the decrypted content wins
        assert message.from_user == "o7esq5OI1Uej6Xixw1lA2H7XDVbc"

    def test_safe_mode_is_accepted_without_require_encryption(self) -> None:
        config = PushConfig(token=TOKEN, appid=APPID, aes_keys=(KEY,))
        assert open_push(config, V1_QUERY, V1_BODY, None, NOW).event == "debug_demo"


class TestKeyRotation:
    def test_previous_key_still_opens(self) -> None:
        query, body = safe_push(SENT_JSON, key=OLD_KEY)
        assert open_push(ROTATING, query, body, None, NOW).items[0].msg_id == "1864323726461255680"

    def test_current_key_opens(self) -> None:
        query, body = safe_push(SENT_JSON, key=KEY)
        assert open_push(ROTATING, query, body, None, NOW).event == "subscribe_msg_sent_event"

    def test_unknown_key(self) -> None:
        query, body = safe_push(SENT_JSON, key=STRANGER_KEY)
        with pytest.raises(BadSignature, match="no configured EncodingAESKey opens Encrypt"):
            open_push(ROTATING, query, body, None, NOW)


class TestParsing:
    def test_xml_popup_with_two_items(self) -> None:
        message = open_plain(POPUP_XML)
        assert (message.to_user, message.from_user) == ("gh_123456789abc", "otFpruAK8D-E6EfStSYonYSBZ8_4")
        assert message.create_time == 1610969440
        assert message.items == (
            PushItem("VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc", status="accept", popup_scene="2"),
            PushItem("9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI", status="reject", popup_scene="2"),
        )

    def test_json_popup_list_as_array(self) -> None:
        message = open_plain(POPUP_JSON)
        assert message.create_time == 1620973045
        assert message.items == (
            PushItem("hD-ixGOhYmUfjOnI8MCzQMPshzGVeux_2vzyvQu7O68", status="accept", popup_scene="0"),
        )

    def test_xml_change(self) -> None:
        message = open_plain(CHANGE_XML)
        assert message.event == "subscribe_msg_change_event"
        assert message.items == (PushItem("VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc", status="reject"),)

    def test_json_change_list_as_object(self) -> None:
        message = open_plain(CHANGE_JSON)
        assert message.create_time == 1625575518
        assert message.items == (PushItem("NQezXFstp4zZV2q7u5aSprQZEx061ODkFJGLdungfoI", status="reject"),)

    def test_xml_sent(self) -> None:
        item = open_plain(SENT_XML).items[0]
        assert item == PushItem(
            "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc",
            msg_id="1700827132819554304",
            error_code=0,
            error_status="success",
        )

    def test_json_sent_with_string_scalars(self) -> None:
        message = open_plain(SENT_JSON)
        assert message.create_time == 1620963428
        assert message.items[0].msg_id == "1864323726461255680"
        assert message.items[0].error_code == 0

    def test_msg_id_as_a_json_number_above_2_53_stays_exact(self) -> None:
        body = SENT_JSON.replace('"MsgID":"1864323726461255680"', '"MsgID":1864323726461255681')
        assert 1864323726461255681 > 2**53
        assert open_plain(body).items[0].msg_id == "1864323726461255681"

    def test_create_time_string_or_number(self) -> None:
        as_number = POPUP_JSON.replace('"CreateTime":"1620973045"', '"CreateTime":1620973045')
        assert open_plain(as_number) == open_plain(POPUP_JSON)

    def test_json_list_with_several_objects(self) -> None:
        fields = json.loads(POPUP_JSON)
        fields["List"] = [
            {**fields["List"][0], "PopupScene": 0},
            {"TemplateId": "t2", "SubscribeStatusString": "reject"},
        ]
        message = open_plain(json.dumps(fields))
        assert [item.template_id for item in message.items] == [fields["List"][0]["TemplateId"], "t2"]
        assert message.items[0].popup_scene == "0"

    def test_non_subscription_event_has_no_items(self) -> None:
        body = (
            '{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"event",'
            '"Event":"user_enter_tempsession"}'
        )
        assert open_plain(body).items == ()

    def test_user_message_without_event(self) -> None:
        body = (
            "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>"
            "<MsgType>text</MsgType><Content>hi</Content><MsgId>4363689963896700987</MsgId></xml>"
        )
        message = open_plain(body)
        assert (message.msg_type, message.event, message.raw["MsgId"]) == (
            "text",
            None,
            "4363689963896700987",
        )


class TestDedupeKey:
    def test_retry_with_new_encryption_nonce_and_timestamp_maps_to_the_same_key(self) -> None:
        # Given one event pushed in plaintext XML, then retried encrypted as JSON with a new nonce
        first = open_plain(SENT_XML)
        sent_json = json.dumps(
            {
                "ToUserName": "gh_123456789abc",
                "FromUserName": "otFpruAK8D-E6EfStSYonYSBZ8_4",
                "CreateTime": 1610969468,
                "MsgType": "event",
                "Event": "subscribe_msg_sent_event",
                "List": {
                    "TemplateId": "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc",
                    "MsgID": 1700827132819554304,
                    "ErrorCode": 0,
                    "ErrorStatus": "success",
                },
            }
        )
        query, body = safe_push(sent_json, timestamp=NOW + 5, nonce="99")
        retry = open_push(SAFE, query, body, None, NOW + 5)
        # Then both map to one key
        assert retry.dedupe_key == first.dedupe_key

    def test_item_order_does_not_matter(self) -> None:
        swapped = POPUP_XML.replace("accept", "@").replace("reject", "accept").replace("@", "reject")
        fields = json.loads(POPUP_JSON)
        one, two = {"TemplateId": "a", "SubscribeStatusString": "accept"}, {"TemplateId": "b"}
        forward = open_plain(json.dumps({**fields, "List": [one, two]}))
        backward = open_plain(json.dumps({**fields, "List": [two, one]}))
        assert forward.dedupe_key == backward.dedupe_key
        assert open_plain(swapped).dedupe_key != open_plain(POPUP_XML).dedupe_key

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ('"CreateTime":"1620963428"', '"CreateTime":"1620963429"'),
            ('"MsgID":"1864323726461255680"', '"MsgID":"1864323726461255681"'),
            ('"FromUserName":"o7esq5PHRGBQYmeNyfG064wEFVpQ"', '"FromUserName":"someone-else"'),
        ],
    )
    def test_different_events_differ(self, old: str, new: str) -> None:
        assert open_plain(SENT_JSON.replace(old, new)).dedupe_key != open_plain(SENT_JSON).dedupe_key


class TestRejections:
    def test_forged_signature(self) -> None:
        query = {**plain_query(), "signature": signature("not-the-token", str(NOW), NONCE)}
        with pytest.raises(BadSignature, match="signature does not match"):
            open_push(PLAIN, query, SENT_JSON.encode(), None, NOW)

    def test_wrong_msg_signature(self) -> None:
        query = {**V1_QUERY, "msg_signature": signature(TOKEN, V1_QUERY["timestamp"], NONCE, "other")}
        with pytest.raises(BadSignature, match="msg_signature does not match"):
            open_push(SAFE, query, V1_BODY, None, NOW)

    def test_tampered_ciphertext_fails_msg_signature(self) -> None:
        body = V1_BODY.replace(b"+qdx1", b"+qdx2")
        with pytest.raises(BadSignature, match="msg_signature"):
            open_push(SAFE, V1_QUERY, body, None, NOW)

    def test_wrong_appid_after_decrypt(self) -> None:
        query, body = safe_push(SENT_JSON, appid="wx0000000000000000")
        with pytest.raises(BadSignature, match="AppID"):
            open_push(SAFE, query, body, None, NOW)

    def test_stale_timestamp(self) -> None:
        query, body = safe_push(SENT_JSON, timestamp=NOW - 301)
        with pytest.raises(BadSignature, match="301 s old; the window is 300 s"):
            open_push(SAFE, query, body, None, NOW)

    def test_future_timestamp_beyond_the_window(self) -> None:
        with pytest.raises(BadSignature, match="in the future"):
            open_push(PLAIN, plain_query(NOW + 301), SENT_JSON.encode(), None, NOW)

    def test_timestamp_at_the_edge_of_the_window(self) -> None:
        assert open_push(PLAIN, plain_query(NOW - 300), SENT_JSON.encode(), None, NOW).items
        assert open_push(PLAIN, plain_query(NOW + 300), SENT_JSON.encode(), None, NOW).items

    def test_window_is_configurable(self) -> None:
        config = PushConfig(token=TOKEN, appid=APPID, max_skew_seconds=30)
        with pytest.raises(BadSignature, match="window is 30 s"):
            open_push(config, plain_query(NOW - 31), SENT_JSON.encode(), None, NOW)

    def test_non_numeric_timestamp(self) -> None:
        query = {
            "signature": signature(TOKEN, "1_714_112_445", NONCE),
            "timestamp": "1_714_112_445",
            "nonce": NONCE,
        }
        with pytest.raises(BadSignature, match="timestamp"):
            open_push(PLAIN, query, SENT_JSON.encode(), None, NOW)

    def test_plaintext_when_encryption_is_required(self) -> None:
        with pytest.raises(BadSignature, match="plaintext push refused"):
            open_push(SAFE, plain_query(), SENT_JSON.encode(), None, NOW)

    def test_encrypt_in_the_body_without_msg_signature(self) -> None:
        _, body = safe_push(SENT_JSON)
        with pytest.raises(BadSignature, match="no msg_signature"):
            open_push(PLAIN, plain_query(), body, None, NOW)

    def test_safe_mode_query_without_encrypt_in_the_body(self) -> None:
        query = {**V1_QUERY, "msg_signature": signature(TOKEN, V1_QUERY["timestamp"], NONCE, "")}
        with pytest.raises(BadSignature, match="without an Encrypt"):
            open_push(SAFE, query, SENT_JSON.encode(), None, NOW)

    def test_safe_mode_query_without_msg_signature(self) -> None:
        query = {name: value for name, value in V1_QUERY.items() if name != "msg_signature"}
        with pytest.raises(BadSignature, match="'msg_signature' is missing"):
            open_push(SAFE, query, V1_BODY, None, NOW)

    def test_encrypted_push_without_a_configured_key(self) -> None:
        with pytest.raises(Misconfigured, match="no EncodingAESKey"):
            open_push(PLAIN, V1_QUERY, V1_BODY, None, NOW)

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            pytest.param(b"", "neither a JSON object nor XML", id="empty"),
            pytest.param(b"hello", "neither a JSON object nor XML", id="text"),
            pytest.param(b"[1, 2]", "neither a JSON object nor XML", id="json-array"),
            pytest.param(b'{"ToUserName": ', "not valid JSON", id="truncated-json"),
            pytest.param(b"<xml><ToUserName>", "not well-formed XML", id="truncated-xml"),
            pytest.param(b"\xff\xfe<\x00x\x00", "not UTF-8", id="utf-16"),
            pytest.param(b"<xml>text only</xml>", "holds no fields", id="xml-without-fields"),
            pytest.param(b'{"List": 5}', "is missing", id="no-common-fields"),
            pytest.param(b"[" * 100_000 + b"]" * 100_000, "neither", id="deep-array"),
            pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "not valid JSON", id="deep-json"),
            pytest.param(b"<a>" * 20 + b"</a>" * 20, "nested too deeply", id="deep-xml"),
        ],
    )
    def test_undecodable_body(self, body: bytes, reason: str) -> None:
        with pytest.raises(InvalidRequest, match=reason):
            open_push(PLAIN, plain_query(), body, "application/json", NOW)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(
                '<!DOCTYPE xml [<!ENTITY x "boom">]><xml><ToUserName>&x;</ToUserName></xml>', id="entity"
            ),
            pytest.param(
                '<?xml version="1.0"?>\n<!doctype xml SYSTEM "file:///etc/passwd"><xml/>', id="doctype"
            ),
            pytest.param("<xml><!ENTITY a 'b'></xml>", id="entity-anywhere"),
        ],
    )
    def test_doctype_and_entities_are_refused(self, body: str) -> None:
        with pytest.raises(InvalidRequest, match="DOCTYPE or ENTITY"):
            open_plain(body)

    def test_decrypted_body_that_is_not_an_event(self) -> None:
        query, body = safe_push("not json or xml")
        with pytest.raises(InvalidRequest, match="neither"):
            open_push(SAFE, query, body, None, NOW)

    @pytest.mark.parametrize(
        ("old", "new", "reason"),
        [
            ('"CreateTime":"1620963428"', '"CreateTime":"yesterday"', "CreateTime must be an integer"),
            (
                '"CreateTime":"1620963428"',
                '"CreateTime":1.620963428e9',
                "CreateTime must be a string or an integer",
            ),
            ('"FromUserName":"o7esq5PHRGBQYmeNyfG064wEFVpQ",', "", "FromUserName is missing"),
            ('"ErrorCode":"0"', '"ErrorCode":"ok"', r"List\[0\]\.ErrorCode must be an integer"),
            ('"MsgID":"1864323726461255680"', '"MsgID":1.8643237264612557e18', r"List\[0\]\.MsgID must be"),
            (
                '"TemplateId":"BEwX0BO-T3MqK3Uc5oTU3CGBqzjpndk2jzUf7VfExd8",',
                "",
                r"List\[0\]\.TemplateId is missing",
            ),
            ('"MsgType":"event"', '"MsgType":true', "MsgType must be a string or an integer"),
        ],
    )
    def test_mistyped_fields_are_named(self, old: str, new: str, reason: str) -> None:
        assert old in SENT_JSON
        with pytest.raises(InvalidRequest, match=reason):
            open_plain(SENT_JSON.replace(old, new))

    def test_list_of_the_wrong_shape(self) -> None:
        with pytest.raises(InvalidRequest, match="List must be an object or an array of objects"):
            open_plain(POPUP_JSON.replace('"List":[{', '"List":["x",{'))

    def test_messages_never_carry_secrets_or_the_body(self) -> None:
        # Given failures deep inside decryption and parsing
        query, body = safe_push("<xml><FromUserName>secret-openid</FromUserName></xml>")
        failures: list[Exception] = []
        for config, q, b in [
            (SAFE, query, body),
            (ROTATING, *safe_push(SENT_JSON, key=STRANGER_KEY)),
            (SAFE, *safe_push(SENT_JSON, appid="wx-someone-else")),
        ]:
            with pytest.raises((BadSignature, InvalidRequest)) as caught:
                open_push(config, q, b, None, NOW)
            failures.append(caught.value)
        # Then no message mentions the token, a key, an AppID seen inside or the decrypted content
        for failure in failures:
            for secret in (TOKEN, KEY, OLD_KEY, STRANGER_KEY, "secret-openid", "wx-someone-else"):
                assert secret not in str(failure)


class TestConfig:
    def test_repr_hides_token_and_keys(self) -> None:
        text = repr(ROTATING)
        assert TOKEN not in text and KEY not in text and OLD_KEY not in text
        assert APPID in text

    def test_require_encryption_needs_a_key(self) -> None:
        with pytest.raises(ConfigurationError, match="EncodingAESKey"):
            PushConfig(token=TOKEN, appid=APPID, require_encryption=True)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"token": "", "appid": APPID},
            {"token": TOKEN, "appid": ""},
            {"token": TOKEN, "appid": APPID, "max_skew_seconds": 0},
            {"token": TOKEN, "appid": APPID, "aes_keys": ("short",)},
        ],
    )
    def test_invalid_settings_fail_at_construction(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ConfigurationError):
            PushConfig(**kwargs)  # type: ignore[arg-type]
