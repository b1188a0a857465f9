"""``python -m local.demo`` (what ``make demo`` runs): the main job, end to end, over HTTP.

A phone logs in (the sandbox's ``wx.login``), the mini program exchanges the code at
``POST /login``, WeChat's access token is kept fresh in SSM by ``RefreshTokenFunction``, the user
accepts a one-time template in the subscription popup and the mini program reports it at
``POST /subscriptions``, a trusted backend sends a message with a SigV4-signed ``POST /messages``,
the message arrives in the sandbox inbox, and WeChat's sent event turns its receipt
(``GET /messages/{id}``) to ``delivered``. Each step is printed (the access token's version, age
and expiry, never its value), then the same flow as curl commands to paste; the exit status is
non-zero when a step fails.

It drives a running stack when there is one: the one ``WXSUB_API_URL`` and ``WXSUB_SANDBOX_URL``
name (``make local`` prints them), else a ``make local`` listening on ``PORT`` (3000), signing with
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or the local defaults). Otherwise it starts a
stack on free ports and stops it afterwards; only then does it also move the sandbox's clock to
show a token rotation, since that is not a change to make to someone else's running stack.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from local import running
from local.sigv4 import SigV4Auth
from local.stack import DEFAULT_CREDENTIALS, DEFAULT_REGION, InvocationError, LocalStack
from local.template import TemplateError, load_yaml

ONE_TIME_TEMPLATE = "SbxOrderShipped1-one_time-tmpl-000000000001"
TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
RECEIPT_WAIT_SECONDS = 15.0
# how long the token has left once the sandbox's clock moved: inside WeChat's last 5 minutes,
# when stable_token (normal mode) hands out the next token
ROTATION_LEFT_SECONDS = 240


class StepFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    """The stack to drive.

    ``aws`` is its local AWS endpoint when known: the demo then reads the access token's record at
    ``ssm_parameter`` (its version, age and expiry). ``refresh`` runs ``RefreshTokenFunction`` now;
    it is given only for a stack the demo started itself.
    """

    api: str
    sandbox: str
    credentials: tuple[str, str]
    region: str
    aws: str | None = None
    ssm_parameter: str = "/wxsub/dev/access-token"
    refresh: Callable[[], Any] | None = None

    @classmethod
    def of(cls, stack: LocalStack) -> Target:
        """A stack started here: its refresher may be run and its token record read."""
        assert stack.sandbox_url is not None
        return cls(
            stack.api_url,
            stack.sandbox_url,
            stack.credentials,
            stack.region,
            stack.aws_endpoint,
            str(stack.description.parameters["AccessTokenParam"]),
            lambda: stack.run_schedule("RefreshTokenFunction"),
        )


@dataclass(frozen=True)
class Sent:
    """What the re-run commands need from this run."""

    openid: str
    body: dict[str, Any]
    message_id: str


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


def run(target: Target) -> Sent:
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

        _step(3, "WeChat's access token: RefreshTokenFunction keeps it fresh in SSM (every minute)")
        _token_refresh(http, target)

        _step(4, f"The user accepts the one-time template {ONE_TIME_TEMPLATE} in the subscription popup")
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

        _step(5, "A trusted backend sends the message: POST /messages, signed with SigV4 (IAM)")
        key = f"demo-{uuid.uuid4()}"
        body = {"openid": openid, "template_id": ONE_TIME_TEMPLATE, "data": order_shipped_data()}
        auth = SigV4Auth(*target.credentials, target.region)
        sent = _expect(
            http.post(f"{target.api}/messages", json=body, headers={"idempotency-key": key}, auth=auth),
            200,
            "status",
            "message_id",
            "msgid",
        )
        _show("key", key)
        _show("answer", sent)

        _step(6, "WeChat delivers it: the user's inbox in the sandbox")
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

        _step(7, "WeChat's sent event settles the receipt: GET /messages/{message_id} (IAM)")
        receipt = _receipt(http, target, auth, sent["message_id"])
        _show("receipt", {k: receipt.get(k) for k in ("message_id", "status", "msgid", "error_status")})
    return Sent(openid, body, sent["message_id"])


def _receipt(http: httpx.Client, target: Target, auth: SigV4Auth, message_id: str) -> dict[str, Any]:
    """The delivery record once it says ``delivered`` (the sent event comes a moment after the send)."""
    deadline = time.monotonic() + RECEIPT_WAIT_SECONDS
    while True:
        record = _expect(http.get(f"{target.api}/messages/{message_id}", auth=auth), 200, "status")
        if record["status"] == "delivered":
            return record
        if time.monotonic() > deadline:
            raise StepFailed(
                f"message {message_id} is still {record['status']!r} after the sent event's wait"
            )
        time.sleep(0.2)


def _token_refresh(http: httpx.Client, target: Target) -> None:
    calls = _expect(
        http.get(f"{target.sandbox}/sandbox/calls", params={"path": "/cgi-bin/stable_token"}), 200, "calls"
    )["calls"]
    codes = sorted({str(c.get("errcode")) for c in calls})
    times = "once" if len(calls) == 1 else f"{len(calls)} times"
    _show("asked", f"POST /cgi-bin/stable_token {times} so far, errcode {', '.join(codes) or '-'}")
    if target.aws is None:
        _show("in SSM", f"{target.ssm_parameter} (the local AWS endpoint is unknown here: not read)")
        return
    ssm = _ssm(target)
    before = _token_record(ssm, target.ssm_parameter)
    _show("in SSM", _describe(target.ssm_parameter, before) + "  (the value itself is never shown)")
    if target.refresh is None:
        _show(
            "rotation",
            "SSM is written only when WeChat hands out a new token, in the old one's last 5 minutes",
        )
        return
    advance = max(0, before["expires_in"] - ROTATION_LEFT_SECONDS)
    _expect(http.post(f"{target.sandbox}/sandbox/clock", json={"advance": advance}), 200, "now")
    _show(
        "later",
        f"the sandbox's clock moves {_duration(advance)} ahead: the token has {ROTATION_LEFT_SECONDS} s left",
    )
    try:
        result = target.refresh()
    except InvocationError as exc:
        raise StepFailed(f"RefreshTokenFunction failed: {exc}") from None
    after = _token_record(ssm, target.ssm_parameter)
    if after["version"] == before["version"]:
        raise StepFailed(
            f"RefreshTokenFunction answered {result} but SSM still holds version {before['version']}"
        )
    _show("refreshed", _describe(target.ssm_parameter, after))
    _show("", "a new token from stable_token; the old one keeps working until it expires")


def _ssm(target: Target) -> Any:
    access_key, secret = target.credentials
    return boto3.client(
        "ssm",
        endpoint_url=target.aws,
        region_name=target.region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
    )


def _token_record(ssm: Any, name: str) -> dict[str, Any]:
    """Version, age and time left of the access token's SSM record; the token is read and dropped."""
    try:
        parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        expires_at = int(json.loads(parameter["Value"])["expires_at"])
    except (BotoCoreError, ClientError, ValueError, KeyError, TypeError) as exc:
        raise StepFailed(f"the access token's record {name} could not be read: {exc}") from None
    written: datetime = parameter["LastModifiedDate"]
    return {
        "version": int(parameter["Version"]),
        "age": max(0, round(datetime.now(UTC).timestamp() - written.timestamp())),
        "expires_in": max(0, expires_at - int(time.time())),
    }


def _describe(name: str, record: dict[str, Any]) -> str:
    return (
        f"{name} version {record['version']}, written {record['age']} s ago, "
        f"expires in {record['expires_in']} s"
    )


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


RERUN = """\
SIGN=(--aws-sigv4 aws:amz:@REGION@:execute-api --user @USER@)
JSON='content-type: application/json'
field() { python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; \
print(v if isinstance(v, str) else json.dumps(v))' "$1"; }
CODE=$(curl -s -X POST $WXSUB_SANDBOX_URL/sandbox/login -H "$JSON" -d '@LOGIN@' | field code)
SESSION=$(curl -s -X POST $WXSUB_API_URL/login -H "$JSON" -d "{\\"code\\": \\"$CODE\\"}" | field token)
RESULT=$(curl -s -X POST $WXSUB_SANDBOX_URL/sandbox/subscribe -H "$JSON" \\
  -d '@POPUP@' | field result)
curl -s -w '\\n' -X POST $WXSUB_API_URL/subscriptions -H "authorization: Bearer $SESSION" -H "$JSON" \\
  -d "$RESULT"
SENT=$(curl -s $WXSUB_API_URL/messages "${SIGN[@]}" -H "$JSON" -H "Idempotency-Key: demo-$(date +%s)" \\
  -d '@BODY@')
echo "$SENT"
sleep 2
curl -s -w '\\n' $WXSUB_API_URL/messages/$(echo "$SENT" | field message_id) "${SIGN[@]}"
"""


def rerun_commands(target: Target, sent: Sent, *, still_running: bool) -> list[str]:
    """This run's flow as shell lines (bash or zsh, curl 7.75 or later, python3) for ``make local``.

    The values are this run's: the user (the sandbox logs the same openid in again), the template
    and the data; the Idempotency-Key is new at each run of the lines. With ``still_running``
    the lines start with the stack's URLs and this run's own receipt.
    """
    user = (
        "testing:testing"
        if target.credentials == DEFAULT_CREDENTIALS
        else '"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
    )
    popup = {"openid": sent.openid, "template_id": ONE_TIME_TEMPLATE, "status": "accept"}
    values = {
        "@REGION@": target.region,
        "@USER@": user,
        "@LOGIN@": json.dumps({"openid": sent.openid}),
        "@POPUP@": json.dumps(popup),
        "@BODY@": json.dumps(sent.body, ensure_ascii=False),
    }
    text = RERUN
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    lines = text.splitlines()
    if still_running:
        receipt = (
            f"curl -s -w '\\n' $WXSUB_API_URL/messages/{sent.message_id} \"${{SIGN[@]}}\""
            "    # this run's receipt"
        )
        lines = [
            f"export WXSUB_API_URL={target.api} WXSUB_SANDBOX_URL={target.sandbox}",
            lines[0],
            receipt,
            "# the same flow again, for the same user",
            *lines[1:],
        ]
    return lines


def _print_rerun(target: Target, sent: Sent, *, still_running: bool) -> None:
    where = (
        "against the stack this demo drove"
        if still_running
        else "against `make local` (after pasting the `export WXSUB_API_URL=...` line it prints)"
    )
    print(f"\nBy hand, {where}; bash or zsh, curl 7.75+, python3:", flush=True)
    for line in rerun_commands(target, sent, still_running=still_running):
        print(f"    {line}", flush=True)


def _credentials() -> tuple[str, str]:
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    return DEFAULT_CREDENTIALS


def _ssm_parameter() -> str:
    try:
        return str(load_yaml(TEMPLATE)["Parameters"]["AccessTokenParam"]["Default"])
    except (TemplateError, KeyError, TypeError, OSError):
        return Target.ssm_parameter


def _running_target() -> Target | None:
    """The stack named by ``WXSUB_API_URL``/``WXSUB_SANDBOX_URL``, else a ``make local`` on ``PORT``."""
    credentials = _credentials()
    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    api, sandbox = os.environ.get("WXSUB_API_URL"), os.environ.get("WXSUB_SANDBOX_URL")
    if api and sandbox:
        api = api.rstrip("/")
        record = running.find(urlsplit(api).port or 80)
        aws = record.get("aws_endpoint") if record and record.get("api_url") == api else None
        return Target(api, sandbox.rstrip("/"), credentials, region, aws, _ssm_parameter())
    record = running.find(int(os.environ.get("PORT") or 3000))
    if record is None or not record.get("sandbox_url"):
        return None
    if record["access_key"] != credentials[0]:
        raise StepFailed(
            f"the stack at {record['api_url']} accepts access key {record['access_key']}: "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as it has them"
        )
    return Target(
        record["api_url"],
        record["sandbox_url"],
        credentials,
        record["region"],
        record.get("aws_endpoint"),
        _ssm_parameter(),
    )


def _own_stack() -> tuple[LocalStack, Target]:
    print("Starting the local stack on free ports (moto, the WeChat sandbox, the API)...", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECHAT_")}
    stack = LocalStack(TEMPLATE, env=env).start()
    target = Target.of(stack)
    print(f"   API {target.api}, AWS {stack.aws_endpoint}, WeChat sandbox {target.sandbox}", flush=True)
    return stack, target


def main() -> int:
    started = time.perf_counter()
    stack: LocalStack | None = None
    try:
        target = _running_target()
        if target is None:
            stack, target = _own_stack()
        else:
            print(f"Using the running stack: API {target.api}, WeChat sandbox {target.sandbox}", flush=True)
        sent = run(target)
    except (StepFailed, httpx.HTTPError, TemplateError, OSError, ImportError) as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr, flush=True)
        if stack is not None:
            print("\nThe stack's log:\n" + "\n".join(stack.logs()[-40:]), file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.stop()
    print(
        f"\nDone in {time.perf_counter() - started:.1f} s: login -> grant -> send -> delivered -> receipt.",
        flush=True,
    )
    _print_rerun(target, sent, still_running=stack is None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
