"""The WeChat transport: the single errcode check, JSON whatever the content type, exact msgids."""

import httpx
import pytest

from wxsub.wechat.api.subscribe import OutgoingMessage, SubscribeApi
from wxsub.wechat.client import (
    ErrorKind,
    WeChatApiError,
    WeChatTimeout,
    WeChatTransport,
    WeChatUnreachable,
    classify,
)


def transport_answering(handler):
    client = httpx.Client(base_url="https://wechat.test", transport=httpx.MockTransport(handler))
    return WeChatTransport("https://wechat.test", 1.0, http=client)


@pytest.mark.parametrize(
    ("errcode", "kind"),
    [
        (40001, ErrorKind.TOKEN),
        (40014, ErrorKind.TOKEN),
        (42001, ErrorKind.TOKEN),
        (-1, ErrorKind.RETRYABLE),
        (45011, ErrorKind.RETRYABLE),
        (43108, ErrorKind.RETRYABLE),
        (45009, ErrorKind.QUOTA),
        (40013, ErrorKind.CREDENTIAL),
        (40125, ErrorKind.CREDENTIAL),
        (40164, ErrorKind.CREDENTIAL),
        (43101, ErrorKind.PERMANENT),
        (47003, ErrorKind.PERMANENT),
        (40029, ErrorKind.PERMANENT),
    ],
)
def test_every_documented_errcode_has_a_kind(errcode, kind):
    assert classify(errcode) is kind


def test_msgid_above_2_pow_53_is_kept_exact_as_a_string():
    raw = b'{"errcode":0,"errmsg":"ok","msgid":1988810812324364291}'
    api = SubscribeApi(transport_answering(lambda request: httpx.Response(200, content=raw)))
    message = OutgoingMessage("openid", "tmpl", {"thing1": "x"}, "formal")

    assert api.send("token", message) == "1988810812324364291"


def test_error_body_labelled_text_plain_is_still_parsed():
    body = b'{"errcode":40029,"errmsg":"invalid code, rid: 6472dfd0-536f4e2c-16f28abc"}'
    transport = transport_answering(
        lambda request: httpx.Response(200, content=body, headers={"content-type": "text/plain"})
    )

    with pytest.raises(WeChatApiError) as caught:
        transport.get("/sns/jscode2session", {})

    assert caught.value.errcode == 40029
    assert "rid" not in str(caught.value)


def test_success_without_errcode_is_success():
    transport = transport_answering(
        lambda request: httpx.Response(200, json={"access_token": "T", "expires_in": 7200})
    )

    assert transport.post("/cgi-bin/stable_token", {}, {})["expires_in"] == 7200


def test_non_200_answer_means_unavailable():
    transport = transport_answering(lambda request: httpx.Response(404, content=b"404 not found"))

    with pytest.raises(WeChatUnreachable):
        transport.get("/nowhere", {})


def test_read_timeout_is_ambiguous_but_connect_failure_is_not():
    def read_timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(WeChatTimeout):
        transport_answering(read_timeout).post("/cgi-bin/message/subscribe/send", {}, {})
    with pytest.raises(WeChatUnreachable):
        transport_answering(refused).post("/cgi-bin/message/subscribe/send", {}, {})


def test_outgoing_message_wraps_values_and_omits_an_empty_page():
    payload = OutgoingMessage("o", "t", {"thing1": "a"}, "developer").payload()

    assert payload["data"] == {"thing1": {"value": "a"}}
    assert "page" not in payload
    assert payload["miniprogram_state"] == "developer"
