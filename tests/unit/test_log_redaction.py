"""httpx logs request URLs at INFO; jscode2session's URL carries the AppSecret."""

import logging

import httpx

import wxsub.observability  # noqa: F401  (installs the guard)


def test_httpx_request_lines_lose_their_query_string(caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    try:
        client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
        client.get("https://wechat.test/sns/jscode2session?appid=wx1&secret=TOPSECRET&js_code=c")
    finally:
        logging.getLogger("httpx").setLevel(logging.WARNING)

    assert "TOPSECRET" not in caplog.text
    assert "jscode2session?<redacted>" in caplog.text


def test_transport_loggers_stay_quiet_at_info():
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING
