"""The WeChat transport: the single errcode check, JSON whatever the content type, exact msgids.

DESIGN.md, send rules: only a failure before the request was written means "not sent"
(``WeChatUnreachable``); any answer that is not a clean WeChat body is ``WeChatAmbiguous``.
"""

from collections.abc import Iterator

import httpx
import pytest

from wxsub.wechat.api.auth import AuthApi
from wxsub.wechat.api.subscribe import OutgoingMessage, SubscribeApi
from wxsub.wechat.client import (
    ErrorKind,
    WeChatAmbiguous,
    WeChatApiError,
    WeChatTransport,
    WeChatUnreachable,
    classify,
)

SEND = "/cgi-bin/message/subscribe/send"


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


class CutOff(httpx.SyncByteStream):
    """A body whose connection closes half way: the peer sent part of a JSON answer, then nothing."""

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"errcode":0,"errmsg":"ok","msg'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def raising(error: type[httpx.TransportError]):
    def handler(request):
        raise error("failed", request=request)

    return handler


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502, content=b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        httpx.Response(404, content=b"404 not found"),
        httpx.Response(200, stream=CutOff()),
        httpx.Response(200, content=b"<html>upstream maintenance</html>"),
        httpx.Response(200, content=b'["errcode", 0]'),
        httpx.Response(200, content=b'{"errcode":"zero","errmsg":"ok"}'),
    ],
    ids=["502-page", "404", "cut-off-body", "not-json", "json-not-an-object", "malformed-errcode"],
)
def test_an_answer_that_is_not_a_clean_wechat_body_is_ambiguous(answer):
    transport = transport_answering(lambda request: answer)

    with pytest.raises(WeChatAmbiguous):
        transport.post(SEND, {}, {})


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteTimeout],
    ids=["read-timeout", "reset", "cut-off", "write-timeout"],
)
def test_a_failure_after_the_request_went_out_is_ambiguous(error):
    with pytest.raises(WeChatAmbiguous):
        transport_answering(raising(error)).post(SEND, {}, {})


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout],
    ids=["connect-error", "connect-timeout", "pool-timeout"],
)
def test_a_request_never_written_is_unreachable_and_not_ambiguous(error):
    with pytest.raises(WeChatUnreachable) as raised:
        transport_answering(raising(error)).post(SEND, {}, {})

    assert not isinstance(raised.value, WeChatAmbiguous)


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda api: api.code2session("secret", "code"), b'{"session_key":"k"}'),
        (lambda api: api.stable_token("secret"), b'{"expires_in":7200}'),
        (lambda api: api.stable_token("secret"), b'{"access_token":"T","expires_in":"7200"}'),
    ],
    ids=["code2session-without-openid", "stable-token-without-token", "stable-token-odd-expiry"],
)
def test_an_auth_answer_lacking_its_fields_is_ambiguous(call, body):
    api = AuthApi(transport_answering(lambda request: httpx.Response(200, content=body)), "wx-app")

    with pytest.raises(WeChatAmbiguous):
        call(api)


def test_a_template_list_without_its_data_is_ambiguous():
    body = b'{"errcode":0,"errmsg":"ok"}'
    api = SubscribeApi(transport_answering(lambda request: httpx.Response(200, content=body)))

    with pytest.raises(WeChatAmbiguous):
        api.templates("token")


def test_outgoing_message_wraps_values_and_omits_an_empty_page():
    payload = OutgoingMessage("o", "t", {"thing1": "a"}, "developer").payload()

    assert payload["data"] == {"thing1": {"value": "a"}}
    assert "page" not in payload
    assert payload["miniprogram_state"] == "developer"
