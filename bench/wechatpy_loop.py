"""The baseline: one subscription message per user, one after another, as wechatpy sends them.

``python bench/wechatpy_loop.py JOB.json`` runs in the bench's wechatpy venv (bench/deps.py): a
``WeChatClient`` with the stack's access token, its ``wxa`` API pointed at the sandbox, and
``client.wxa.send_subscribe_message(openid, template_id, data)`` in a loop, which is what
wechatpy's users write. It prints one JSON line: sends, errors by errcode, seconds, latencies.

:func:`httpx_loop` is the fallback when wechatpy cannot be installed: the same POST per user to
``/cgi-bin/message/subscribe/send?access_token=...`` over one keep-alive connection, labelled so.
Both only ever call the ``api_base`` they are given (the sandbox on loopback).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

SEND_PATH = "cgi-bin/message/subscribe/send"


def _summary(latencies: list[float], errors: Counter[str], seconds: float, label: str) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "label": label,
        "sends": len(latencies),
        "ok": len(latencies) - sum(errors.values()),
        "errors": dict(errors),
        "seconds": seconds,
        "msg_per_s": len(latencies) / seconds if seconds else 0.0,
        "rtt_ms_median": statistics.median(ordered) * 1000 if ordered else 0.0,
        "rtt_ms_p95": ordered[int(len(ordered) * 0.95)] * 1000 if ordered else 0.0,
    }


def _loop(send: Callable[[str], None], openids: list[str]) -> tuple[list[float], Counter[str], float]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    for openid in openids:
        at = time.perf_counter()
        try:
            send(openid)
        except Exception as exc:  # wechatpy raises WeChatClientException per errcode
            errors[str(getattr(exc, "errcode", None) or type(exc).__name__)] += 1
        latencies.append(time.perf_counter() - at)
    return latencies, errors, time.perf_counter() - started


def wechatpy_loop(job: dict[str, Any]) -> dict[str, Any]:
    import wechatpy
    from wechatpy import WeChatClient

    client = WeChatClient(job["appid"], None, access_token=job["access_token"], timeout=10)
    client._http.trust_env = False  # loopback only: no proxy from the environment
    client.wxa.API_BASE_URL = job["api_base"].rstrip("/") + "/"
    data = {key: {"value": value} for key, value in job["data"].items()}

    def send(openid: str) -> None:
        client.wxa.send_subscribe_message(openid, job["template_id"], data)

    latencies, errors, seconds = _loop(send, job["openids"])
    return _summary(latencies, errors, seconds, f"wechatpy {wechatpy.__version__} sequential loop")


def httpx_loop(job: dict[str, Any], why: str) -> dict[str, Any]:
    """What wechatpy does, with httpx: one POST per user, JSON body, token in the query string."""
    import httpx

    data = {key: {"value": value} for key, value in job["data"].items()}
    url = job["api_base"].rstrip("/") + "/" + SEND_PATH
    with httpx.Client(timeout=10, trust_env=False) as client:

        def send(openid: str) -> None:
            body = {"touser": openid, "template_id": job["template_id"], "data": data}
            answer = client.post(
                url,
                params={"access_token": job["access_token"]},
                content=json.dumps(body, ensure_ascii=False).encode(),
            )
            answer.raise_for_status()
            errcode = answer.json().get("errcode", 0)
            if errcode:
                raise _Refused(errcode)

        latencies, errors, seconds = _loop(send, job["openids"])
    return _summary(latencies, errors, seconds, f"httpx sequential loop doing what wechatpy does ({why})")


class _Refused(Exception):
    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        print(json.dumps(wechatpy_loop(json.load(handle))))
