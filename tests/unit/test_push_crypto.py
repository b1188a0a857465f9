"""Signatures and AES of WeChat message push against the vectors of wechat-api.md §7.7."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxsub.errors import BadSignature, ConfigurationError, Misconfigured
from wxsub.wechat.crypto import WxCrypto, signature, signature_matches
from wxsub.wechat.push import PushConfig, encrypted_reply

# V1: the official DOC-push safe-mode example (Token AAAAA, EncodingAESKey 43×A).
V1_TOKEN, V1_KEY, V1_APPID = "AAAAA", "A" * 43, "wxba5fad812f8e6fb9"
V1_TIMESTAMP, V1_NONCE = "1714112445", "415670741"
V1_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv"
    "6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNq"
    "J4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
)
V1_MSG = (
    '{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,'
    '"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
)
V1_REPLY = (
    '{"Encrypt":"ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==",'
    '"MsgSignature":"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":1713424427,"Nonce":"415670741"}'
)

# V2: WeChat's own sample (WxJava WxCryptUtilTest; EasyWeChat uses the same key, token, appid).
V2_TOKEN, V2_KEY, V2_APPID = "pamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxb11529c136998cb6"
V2_RANDOM = b"aaaabbbbccccdddd"
V2_LONG_MSG = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA["
    "gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType>"
    "<Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId>"
    "<Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]>"
    "</Description></Video></xml>"
)
V2_LONG_ENCRYPT = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweIm"
    "X9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+"
    "UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0"
    "nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdf"
    "akjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqm"
    "A7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQ"
    "DajPkdPrEeOwofJb"
)

# V3: EasyWeChat's EncryptorTest (same key, token and appid as V2).
V3_ENCRYPT = (
    "rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgrkTqdFPwnhqbk+"
    "kIQ7rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0BtIu1pW9TjhOYrLQoU18nWYjWq"
    "DA1ynkmOytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBk"
    "C1U85oy0ktOY4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRUwPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q"
    "739o4c8t9QGPe31GT2Go/rOz1BsrASwvauNulCh+++yz+CQzBIuikA=="
)
V3_MSG = (
    "<xml><URL><![CDATA[http://wechat.laravel.so/server]]></URL><ToUserName><![CDATA[asdasdasd]]></ToUserName>"
    "<FromUserName><![CDATA[asdasdasdsadasd]]></FromUserName><CreateTime>1234567898</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>12345</MsgId></xml>"
)

# V4: wechatpy's WeCom test (the trailing id is a corp id; the algorithm is the same).
V4_TOKEN, V4_KEY, V4_ID = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
V4_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
V4_REPLY = (
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
    "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
)
V4_REPLY_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURn"
    "AtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oy"
    "KQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkd"
    "Q39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)
V4_PUSH_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283d"
    "Gymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwB"
    "iT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54S"
    "NdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91"
    "eBdCRxthuL0="
)


class TestSignature:
    def test_url_verification_example(self) -> None:
        # §7.2: sorted ["1514711492", "1714036504", "AAAAA"]
        assert signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"

    def test_plaintext_post_example(self) -> None:
        assert signature("AAAAA", "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"

    def test_v5_wechatpy(self) -> None:
        assert signature("test", "1410685589", "test") == "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"

    def test_v1_signature_and_msg_signature(self) -> None:
        assert signature(V1_TOKEN, V1_TIMESTAMP, V1_NONCE) == "6c5c811b55cc85e0e1b54100749188c20beb3f5d"
        assert (
            signature(V1_TOKEN, V1_TIMESTAMP, V1_NONCE, V1_ENCRYPT)
            == "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
        )

    def test_order_of_parts_does_not_matter(self) -> None:
        assert signature("AAAAA", "1514711492", "1714036504") == signature(
            "AAAAA", "1714036504", "1514711492"
        )

    def test_compares_without_raising_on_non_ascii(self) -> None:
        expected = signature("AAAAA", "1", "2")
        assert signature_matches(expected, expected)
        assert not signature_matches(expected, "签名")
        assert not signature_matches(expected, "")


class TestV1:
    def test_decrypts_the_official_push(self) -> None:
        msg, appid = WxCrypto(V1_KEY).decrypt(V1_ENCRYPT)
        assert msg.decode() == V1_MSG
        assert len(msg) == 167
        assert appid == V1_APPID

    def test_re_encrypting_with_its_random_gives_the_same_bytes(self) -> None:
        assert WxCrypto(V1_KEY).encrypt(V1_MSG, V1_APPID, b"a8eedb185eb2fecf") == V1_ENCRYPT

    def test_ciphertext_and_padding_sizes(self) -> None:
        assert len(base64.b64decode(V1_ENCRYPT)) == 224  # 205-byte FullStr + 19 pad bytes

    def test_json_reply_byte_for_byte(self) -> None:
        config = PushConfig(token=V1_TOKEN, appid=V1_APPID, aes_keys=(V1_KEY,))
        reply = encrypted_reply(
            config, '{"demo_resp":"good luck"}', V1_NONCE, 1713424427, "json", b"707722b803182950"
        )
        assert reply == V1_REPLY

    def test_xml_reply_carries_the_same_values(self) -> None:
        config = PushConfig(token=V1_TOKEN, appid=V1_APPID, aes_keys=(V1_KEY,))
        reply = encrypted_reply(
            config, '{"demo_resp":"good luck"}', V1_NONCE, 1713424427, "xml", b"707722b803182950"
        )
        expected = json.loads(V1_REPLY)
        assert reply == (
            f"<xml><Encrypt><![CDATA[{expected['Encrypt']}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{expected['MsgSignature']}]]></MsgSignature>"
            "<TimeStamp>1713424427</TimeStamp><Nonce><![CDATA[415670741]]></Nonce></xml>"
        )

    def test_reply_without_a_fixed_random_still_opens(self) -> None:
        config = PushConfig(token=V1_TOKEN, appid=V1_APPID, aes_keys=(V1_KEY,))
        first = json.loads(encrypted_reply(config, "hi", V1_NONCE, 1713424427, "json"))
        second = json.loads(encrypted_reply(config, "hi", V1_NONCE, 1713424427, "json"))
        assert first["Encrypt"] != second["Encrypt"]
        assert WxCrypto(V1_KEY).decrypt(first["Encrypt"]) == (b"hi", V1_APPID)
        assert first["MsgSignature"] == signature(V1_TOKEN, "1713424427", V1_NONCE, first["Encrypt"])

    def test_xml_reply_keeps_an_awkward_nonce_intact(self) -> None:
        config = PushConfig(token=V1_TOKEN, appid=V1_APPID, aes_keys=(V1_KEY,))
        reply = ET.fromstring(encrypted_reply(config, "hi", "a]]>b", 1713424427, "xml"))
        assert reply.findtext("Nonce") == "a]]>b"
        assert reply.findtext("MsgSignature") == signature(
            V1_TOKEN, "1713424427", "a]]>b", reply.findtext("Encrypt") or ""
        )

    def test_reply_needs_a_key(self) -> None:
        with pytest.raises(Misconfigured, match="EncodingAESKey"):
            encrypted_reply(PushConfig(token=V1_TOKEN, appid=V1_APPID), "hi", V1_NONCE, 1, "json")


class TestV2:
    def test_chinese_message_byte_for_byte(self) -> None:
        encrypt = WxCrypto(V2_KEY).encrypt("我是中文abcd123", V2_APPID, V2_RANDOM)
        assert encrypt == (
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        )
        assert (
            signature(V2_TOKEN, "1409304348", "xxxxxx", encrypt) == "82c962d39941aa48552f90ef55aa323dc620cc10"
        )

    def test_length_field_counts_utf8_bytes(self) -> None:
        assert WxCrypto(V2_KEY).encrypt(V2_LONG_MSG, V2_APPID, V2_RANDOM) == V2_LONG_ENCRYPT
        assert WxCrypto(V2_KEY).decrypt(V2_LONG_ENCRYPT) == (V2_LONG_MSG.encode(), V2_APPID)


class TestV3:
    def test_decrypts_easywechat_vector(self) -> None:
        assert signature(V2_TOKEN, "1458300676", "260774613", V3_ENCRYPT) == (
            "4f3ad57b6989f09f4eb392acce4f9e93942ed890"
        )
        assert WxCrypto(V2_KEY).decrypt(V3_ENCRYPT) == (V3_MSG.encode(), V2_APPID)
        assert WxCrypto(V2_KEY).encrypt(V3_MSG, V2_APPID, b"d43123b161a4ba84") == V3_ENCRYPT


class TestV4:
    def test_echostr(self) -> None:
        assert signature(V4_TOKEN, "1411443780", "437374425", V4_ECHOSTR) == (
            "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
        )
        assert WxCrypto(V4_KEY).decrypt(V4_ECHOSTR) == (b"5927782489442352469", V4_ID)

    def test_reply_encryption(self) -> None:
        encrypt = WxCrypto(V4_KEY).encrypt(V4_REPLY, V4_ID, b"1234567890123456")
        assert encrypt == V4_REPLY_ENCRYPT
        assert signature(V4_TOKEN, "1411525903", "461056294", encrypt) == (
            "407518b7649e86ef23978113f92d27afa9296533"
        )

    def test_push_decryption(self) -> None:
        assert signature(V4_TOKEN, "1411525903", "461056294", V4_PUSH_ENCRYPT) == (
            "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
        )
        msg, corp_id = WxCrypto(V4_KEY).decrypt(V4_PUSH_ENCRYPT)
        assert corp_id == V4_ID
        assert b"<Content><![CDATA[test]]></Content>" in msg
        assert b"4363689963896700987" in msg


class TestRoundTrip:
    @given(msg=st.text(), appid=st.text(), random16=st.binary(min_size=16, max_size=16))
    def test_encrypt_then_decrypt(self, msg: str, appid: str, random16: bytes) -> None:
        crypto = WxCrypto(V2_KEY)
        encrypt = crypto.encrypt(msg, appid, random16)
        assert len(base64.b64decode(encrypt)) % 32 == 0
        assert crypto.decrypt(encrypt) == (msg.encode(), appid)

    @given(msg=st.binary())
    def test_bytes_messages(self, msg: bytes) -> None:
        crypto = WxCrypto(V1_KEY)
        assert crypto.decrypt(crypto.encrypt(msg, V1_APPID)) == (msg, V1_APPID)


class TestRejections:
    @pytest.mark.parametrize(
        "encrypt",
        [
            pytest.param("not base64!", id="not-base64"),
            pytest.param("", id="empty"),
            pytest.param(base64.b64encode(b"x" * 20).decode(), id="not-whole-blocks"),
            pytest.param("签名", id="non-ascii"),
        ],
    )
    def test_malformed_ciphertext(self, encrypt: str) -> None:
        with pytest.raises(BadSignature):
            WxCrypto(V1_KEY).decrypt(encrypt)

    def test_wrong_key_is_reported_as_a_bad_ciphertext(self) -> None:
        with pytest.raises(BadSignature, match="does not decrypt under this EncodingAESKey"):
            WxCrypto(V2_KEY).decrypt(V1_ENCRYPT)

    def test_a_corrupted_pad_byte(self) -> None:
        # Given a ciphertext whose last block decrypts to garbage
        data = bytearray(base64.b64decode(V1_ENCRYPT))
        data[-17] ^= 0x40  # flips a bit of the last plaintext byte (CBC)
        # Then the padding no longer checks out
        with pytest.raises(BadSignature, match="bad padding"):
            WxCrypto(V1_KEY).decrypt(base64.b64encode(bytes(data)).decode())

    def test_a_length_field_past_the_end(self) -> None:
        crypto = WxCrypto(V1_KEY)
        data = bytearray(base64.b64decode(crypto.encrypt("hi", V1_APPID, b"0" * 16)))
        data[0] ^= 0x01  # CBC: flips byte 16 of the plaintext, the length field's first byte
        with pytest.raises(BadSignature, match="bad length field"):
            crypto.decrypt(base64.b64encode(bytes(data)).decode())

    @pytest.mark.parametrize("key", ["A" * 42, "A" * 44, "A" * 42 + "+", "A" * 42 + "="])
    def test_malformed_key(self, key: str) -> None:
        with pytest.raises(ConfigurationError, match="43 characters"):
            WxCrypto(key)

    def test_random_of_the_wrong_length(self) -> None:
        with pytest.raises(ValueError, match="16 bytes"):
            WxCrypto(V1_KEY).encrypt("hi", V1_APPID, b"short")

    def test_repr_hides_the_key(self) -> None:
        assert V2_KEY not in repr(WxCrypto(V2_KEY))
