"""``python -m local.demo`` (what ``make demo`` runs): the main job, end to end, over HTTP.

A phone logs in (the sandbox's ``wx.login``), the mini program exchanges the code at
``POST /login``, the user accepts a one-time template in the subscription popup and the mini
program reports it at ``POST /subscriptions``, a trusted backend sends a message with a
SigV4-signed ``POST /messages``, and the message arrives in the sandbox inbox. Each step is
printed; the exit status is non-zero when one fails.

It drives a running stack when there is one: the one ``WXSUB_API_URL`` and ``WXSUB_SANDBOX_URL``
name (``make local`` prints them), else a ``make local`` listening on ``PORT`` (3000), signing with
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or the local defaults). Otherwise it starts a
stack on free ports and stops it afterwards.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from local import running
from local.sigv4 import SigV4Auth
from local.stack import DEFAULT_CREDENTIALS, DEFAULT_REGION, LocalStack
from local.template import TemplateError

ONE_TIME_TEMPLATE = "SbxOrderShipped1-one_time-tmpl-000000000001"
TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


class StepFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    api: str
    sandbox: str
    credentials: tuple[str, str]
    region: str


def order_shipped_data() -> dict[str, dict[str, str]]:
    """Values that satisfy each keyword rule of the sandbox's seeded "订单发货通知" template."""
    return {
        "thing1": {"value": "机械键盘"},
        "time2": {"value": datetime.now().strftime("%Y年%m月%d日 %H:%M")},
        "character_string3": {"value": "KHDD" + uuid.uuid4().hex[:10].upper()},
        "amount4": {"value": "¥100.00"},
        "phrase5": {"value": "配送中"},
    }


def _step(number: int, title: str) -> None:
    print(f"\n{number}. {title}", flush=True)


def _show(label: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    print(f"   {label:<9} {text}", flush=True)


def _expect(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"raw": response.text[:500]}
    missing = [f for f in fields if not isinstance(body, dict) or f not in body]
    if response.status_code != status or missing:
        raise StepFailed(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: {body}"
        )
    return dict(body)


def run(target: Target) -> None:
    """The steps; raises :class:`StepFailed` at the first answer that is not the documented one."""
    with httpx.Client(timeout=30) as http:
        _step(1, "A user opens the mini program; wx.login gives it a code (the sandbox plays WeChat)")
        login = _expect(http.post(f"{target.sandbox}/sandbox/login", json={}), 200, "code", "openid")
        _show("code", login["code"])

        _step(2, "The mini program exchanges the code: POST /login")
        session = _expect(
            http.post(f"{target.api}/login", json={"code": login["code"]}), 200, "token", "openid"
        )
        _show("token", session["token"][:12] + "…  (a session token; session_key stays in the backend)")
        _show("openid", session["openid"])
        _show("expires", f"{session.get('expires_in')} s")
        openid = session["openid"]

        _step(3, f"The user accepts the one-time template {ONE_TIME_TEMPLATE} in the subscription popup")
        popup = _expect(
            http.post(
                f"{target.sandbox}/sandbox/subscribe",
                json={"openid": openid, "template_id": ONE_TIME_TEMPLATE, "status": "accept"},
            ),
            200,
            "result",
        )
        _show("popup", popup["result"])
        reported = _expect(
            http.post(
                f"{target.api}/subscriptions",
                json=popup["result"],
                headers={"authorization": f"Bearer {session['token']}"},
            ),
            200,
            "grants",
        )
        grant: dict[str, Any] = next(
            (g for g in reported["grants"] if g.get("template_id") == ONE_TIME_TEMPLATE), {}
        )
        _show("reported", f"POST /subscriptions -> one-time sends left: {grant.get('one_time')}")

        _step(4, "A trusted backend sends the message: POST /messages, signed with SigV4 (IAM)")
        key = f"demo-{uuid.uuid4()}"
        sent = _expect(
            http.post(
                f"{target.api}/messages",
                json={"openid": openid, "template_id": ONE_TIME_TEMPLATE, "data": order_shipped_data()},
                headers={"idempotency-key": key},
                auth=SigV4Auth(*target.credentials, target.region),
            ),
            200,
            "status",
            "message_id",
            "msgid",
        )
        _show("key", key)
        _show("answer", sent)

        _step(5, "WeChat delivers it: the user's inbox in the sandbox")
        inbox = _expect(
            http.get(f"{target.sandbox}/sandbox/inbox", params={"openid": openid}), 200, "messages"
        )
        delivered = [m for m in inbox["messages"] if str(m.get("msgid")) == str(sent["msgid"])] or inbox[
            "messages"
        ]
        if not delivered:
            raise StepFailed(f"the inbox of {openid} is empty")
        message = delivered[-1]
        _show("template", message.get("template_id"))
        for name, value in (message.get("data") or {}).items():
            _show(name, value.get("value") if isinstance(value, dict) else value)


def _running_target() -> Target | None:
    """The stack named by ``WXSUB_API_URL``/``WXSUB_SANDBOX_URL``, else a ``make local`` on ``PORT``."""
    credentials = (
        (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
        else DEFAULT_CREDENTIALS
    )
    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    api, sandbox = os.environ.get("WXSUB_API_URL"), os.environ.get("WXSUB_SANDBOX_URL")
    if api and sandbox:
        return Target(api.rstrip("/"), sandbox.rstrip("/"), credentials, region)
    record = running.find(int(os.environ.get("PORT") or 3000))
    if record is None or not record.get("sandbox_url"):
        return None
    if record["access_key"] != credentials[0]:
        raise StepFailed(
            f"the stack at {record['api_url']} accepts access key {record['access_key']}: "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as it has them"
        )
    return Target(record["api_url"], record["sandbox_url"], credentials, record["region"])


def main() -> int:
    started = time.perf_counter()
    stack: LocalStack | None = None
    try:
        target = _running_target()
        if target is None:
            print("Starting the local stack on free ports (moto, the WeChat sandbox, the API)...", flush=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("WECHAT_")}
            stack = LocalStack(TEMPLATE, env=env).start()
            assert stack.sandbox_url is not None
            target = Target(stack.api_url, stack.sandbox_url, stack.credentials, stack.region)
            print(
                f"   API {target.api}, AWS {stack.aws_endpoint}, WeChat sandbox {target.sandbox}", flush=True
            )
        else:
            print(f"Using the running stack: API {target.api}, WeChat sandbox {target.sandbox}", flush=True)
        run(target)
    except (StepFailed, httpx.HTTPError, TemplateError, OSError, ImportError) as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr, flush=True)
        if stack is not None:
            print("\nThe stack's log:\n" + "\n".join(stack.logs()[-40:]), file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.stop()
    print(
        f"\nDone in {time.perf_counter() - started:.1f} s: login -> grant -> send -> delivered.", flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
