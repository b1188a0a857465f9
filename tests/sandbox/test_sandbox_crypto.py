"""The sandbox's own signature and AES code against the official vectors of wechat-api.md §7."""

from __future__ import annotations

import pytest

from sandbox import crypto

V1_KEY = "A" * 43
V1_APPID = "wxba5fad812f8e6fb9"
V1_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6Js"
    "XUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8Ea"
    "jAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
)
V1_MESSAGE = (
    b'{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,'
    b'"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
)
V1_REPLY_ENCRYPT = "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="

V2_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
V2_APPID = "wxb11529c136998cb6"
V2_RANDOM = b"aaaabbbbccccdddd"
V2_ENCRYPT = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
V2_XML = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]>"
    "</FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA["
    "eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]>"
    "</Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
V2_XML_ENCRYPT = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0G"
    "aUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHi"
    "DNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmF"
    "Q44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDah"
    "xAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k"
    "+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
)


def test_v1_request_signatures() -> None:
    assert crypto.signature("AAAAA", "1714112445", "415670741") == "6c5c811b55cc85e0e1b54100749188c20beb3f5d"
    msg_signature = crypto.signature("AAAAA", "1714112445", "415670741", V1_ENCRYPT)
    assert msg_signature == "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"


def test_v1_decrypts_to_the_official_message() -> None:
    message, appid = crypto.decrypt(V1_KEY, V1_ENCRYPT, V1_APPID)
    assert message == V1_MESSAGE
    assert len(message) == 167
    assert appid == V1_APPID


def test_v1_reply_encrypts_byte_for_byte() -> None:
    encrypted = crypto.encrypt(V1_KEY, b'{"demo_resp":"good luck"}', V1_APPID, b"707722b803182950")
    assert encrypted == V1_REPLY_ENCRYPT
    signature = crypto.signature("AAAAA", "1713424427", "415670741", encrypted)
    assert signature == "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"


def test_v2_encrypts_byte_for_byte() -> None:
    encrypted = crypto.encrypt(V2_KEY, "我是中文abcd123".encode(), V2_APPID, V2_RANDOM)
    assert encrypted == V2_ENCRYPT
    signature = crypto.signature("pamtest", "1409304348", "xxxxxx", encrypted)
    assert signature == "82c962d39941aa48552f90ef55aa323dc620cc10"


def test_v2_length_prefix_is_the_utf8_byte_length() -> None:
    assert len(V2_XML.encode()) == 435
    assert crypto.encrypt(V2_KEY, V2_XML.encode(), V2_APPID, V2_RANDOM) == V2_XML_ENCRYPT
    assert crypto.decrypt(V2_KEY, V2_XML_ENCRYPT, V2_APPID) == (V2_XML.encode(), V2_APPID)


def test_v2_aes_key_derivation() -> None:
    assert crypto.aes_key(V2_KEY).hex() == "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
    assert crypto.aes_key(V1_KEY) == bytes(32)


def test_url_check_and_plaintext_signatures() -> None:
    assert crypto.signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    assert crypto.signature("AAAAA", "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    assert crypto.signature("test", "1410685589", "test") == "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 64])
def test_pkcs7_pads_to_32_and_back(size: int) -> None:
    data = bytes(range(size))
    padded = crypto.pkcs7_pad(data)
    assert len(padded) % 32 == 0
    assert len(padded) - size == 32 - size % 32
    assert crypto.pkcs7_unpad(padded) == data


def test_wrong_appid_and_bad_input_are_rejected() -> None:
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(V1_KEY, V1_ENCRYPT, "wx0000000000000000")
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(V1_KEY, "not base64!")
    with pytest.raises(crypto.CryptoError):
        crypto.aes_key("too-short")
