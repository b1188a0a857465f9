"""The events in ``events/``, made real for one run and checked by what a user would look at.

Every file in ``events/`` is a valid event for its function, but some values exist only in a
running stack: a ``wx.login`` code (single-use), a session token, an openid that granted the
template, a campaign, a push signature made with this run's Token. :func:`run` fills those in
(``REPLACE_WITH_...`` in the files), setting the state up through the stack's own functions and
the sandbox, invokes the function through ``sam local invoke``, and checks the outcome where the
user would see it: the sandbox inbox, ``GET /messages/{id}``, the token in SSM, the registry.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx

from local.sigv4 import SigV4Auth

if TYPE_CHECKING:
    from local.sam_local import Invocation, SamLocal
    from local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
# the sandbox's seeded one-time template "订单发货通知" (what the events name)
ONE_TIME = "SbxOrderShipped1-one_time-tmpl-000000000001"
EVENT_FILES = {
    "LoginFunction": "login.json",
    "SubscriptionsFunction": "subscriptions.json",
    "SendMessageFunction": "send_message.json",
    "RefreshTokenFunction": "refresh_token.json",
    "SyncTemplatesFunction": "sync_templates.json",
    "WeChatPushFunction": "wechat_push_popup.json",
    "SettleDeliveriesFunction": "settle_deliveries.json",
    "CampaignsFunction": "campaigns.json",
    "StartCampaignFunction": "start_campaign.json",
    "SendWorkerFunction": "send_worker.json",
    "CountDeliveriesFunction": "count_deliveries.json",
    "ApiDocsFunction": "api_docs.json",
}


class NotAsExpected(AssertionError):
    """The function ran but the outcome is not the one a user expects."""


@dataclass
class Outcome:
    invocation: Invocation
    ok: bool
    seen: list[str] = field(default_factory=list)  # what the check looked at, one line each

    def report(self) -> str:
        inv = self.invocation
        lines = [f"{inv.function}: sam local invoke in {inv.seconds:.1f} s"]
        lines.append("  returned " + json.dumps(inv.result, ensure_ascii=False)[:600])
        lines += [f"  {line}" for line in self.seen]
        lines.append("  OK: the expected outcome" if self.ok else "  NOT the expected outcome")
        if not self.ok:
            lines.append(
                "  its log:\n" + "\n".join("    " + s for s in inv.stderr.strip().splitlines()[-30:])
            )
        return "\n".join(lines)


def function_of(event_file: str) -> str:
    """The function an event file in ``events/`` is for."""
    if event_file == "wechat_push.json":  # WeChat's URL check, the same function as its pushes
        return "WeChatPushFunction"
    return next(function for function, name in EVENT_FILES.items() if name == event_file)


def default_event(function: str) -> Path:
    return EVENTS / EVENT_FILES.get(function, f"{function}.json")


class Setup:
    """State put in place through the stack's own functions and the sandbox, as a user would."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.sandbox_url is not None
        self.stack = stack
        self.sandbox = httpx.Client(base_url=stack.sandbox_url, timeout=30)
        self.api = httpx.Client(base_url=stack.api_url, timeout=60)
        self.signed = httpx.Client(
            base_url=stack.api_url, timeout=60, auth=SigV4Auth(*stack.credentials, stack.region)
        )

    def close(self) -> None:
        for client in (self.sandbox, self.api, self.signed):
            client.close()

    def code(self) -> tuple[str, str]:
        answer = _ok(self.sandbox.post("/sandbox/login", json={}))
        return answer["code"], answer["openid"]

    def ready_to_send(self) -> None:
        """An access token and the template registry, as the schedules leave them."""
        self.stack.run_schedule("RefreshTokenFunction")
        self.stack.run_schedule("SyncTemplatesFunction")

    def user(self) -> tuple[str, str]:
        """A user logged in through the stack: (openid, session token)."""
        code, _ = self.code()
        session = _ok(self.api.post("/login", json={"code": code}))
        return session["openid"], session["token"]

    def popup(self, openid: str, template_id: str = ONE_TIME) -> dict[str, Any]:
        """The user accepts the template in the popup: what wx.requestSubscribeMessage resolves with."""
        answer = _ok(
            self.sandbox.post(
                "/sandbox/subscribe", json={"openid": openid, "template_id": template_id, "status": "accept"}
            )
        )
        return dict(answer["result"])

    def granted_user(self) -> str:
        """A user who accepted the one-time template, reported by the mini program."""
        self.ready_to_send()
        openid, token = self.user()
        result = self.popup(openid)
        _ok(self.api.post("/subscriptions", json=result, headers={"authorization": f"Bearer {token}"}))
        return openid

    def campaign(self, openid: str) -> str:
        """A campaign to one granted user, accepted by the API and waiting in ExpandQueue."""
        body = {"template_id": ONE_TIME, "data": order_shipped_data(), "audience": {"openids": [openid]}}
        answer = _ok(
            self.signed.post("/campaigns", json=body, headers={"idempotency-key": uuid.uuid4().hex}), 202
        )
        return str(answer["campaign_id"])

    def queued(self, queue_logical_id: str) -> list[dict[str, Any]]:
        """The bodies waiting in a queue (received and left visible again)."""
        sqs = self.aws("sqs")
        url = next(q.url for q in self.stack.description.queues if q.logical_id == queue_logical_id)
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.stack.aws_endpoint,
            region_name=self.stack.region,
            aws_access_key_id=self.stack.credentials[0],
            aws_secret_access_key=self.stack.credentials[1],
        )

    def inbox(self, openid: str) -> list[dict[str, Any]]:
        return list(_ok(self.sandbox.get("/sandbox/inbox", params={"openid": openid}))["messages"])

    def receipt(self, message_id: str, *, settled: bool = True, timeout: float = 20) -> dict[str, Any]:
        """``GET /messages/{id}``; with ``settled``, once WeChat's sent event marked it delivered."""
        deadline = time.monotonic() + timeout
        while True:
            record = _ok(self.signed.get(f"/messages/{message_id}"))
            if not settled or record.get("status") in ("delivered", "failed") or time.monotonic() > deadline:
                return record
            time.sleep(0.3)

    def token_parameter(self) -> dict[str, Any]:
        name = str(self.stack.description.parameters["AccessTokenParam"])
        parameter = self.aws("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
        return {"name": name, "version": int(parameter["Version"]), **json.loads(parameter["Value"])}

    def templates(self) -> list[str]:
        table = next(t.name for t in self.stack.description.tables if t.logical_id == "TemplatesTable")
        items = self.aws("dynamodb").scan(TableName=table, ProjectionExpression="template_id")["Items"]
        return sorted(item["template_id"]["S"] for item in items)

    def grants(self, openid: str) -> list[str]:
        table = next(t.name for t in self.stack.description.tables if t.logical_id == "GrantsTable")
        answer = self.aws("dynamodb").query(
            TableName=table,
            KeyConditionExpression="openid = :o",
            ExpressionAttributeValues={":o": {"S": openid}},
        )
        return [item["template_id"]["S"] for item in answer["Items"]]


def order_shipped_data() -> dict[str, str]:
    """Values that satisfy each keyword rule of the seeded "订单发货通知" template."""
    return {
        "thing1": "机械键盘",
        "time2": datetime.now().strftime("%Y年%m月%d日 %H:%M"),
        "character_string3": "KHDD" + uuid.uuid4().hex[:10].upper(),
        "amount4": "¥100.00",
        "phrase5": "配送中",
    }


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    if response.status_code != status:
        raise NotAsExpected(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: "
            + response.text[:300]
        )
    return dict(response.json())


def _replace(event: Any, values: dict[str, str]) -> Any:
    """``REPLACE_WITH_<NAME>`` placeholders (in any string, JSON bodies included) → this run's values."""
    text = json.dumps(event, ensure_ascii=False)
    for name, value in values.items():
        text = text.replace(f"REPLACE_WITH_{name}", value)
    if "REPLACE_WITH_" in text:
        left = text[text.index("REPLACE_WITH_") :].split('"')[0].split("\\")[0]
        raise NotAsExpected(f"the event still has {left}: nothing in this run gives it a value")
    return json.loads(text)


def _body(result: Any, status: int) -> dict[str, Any]:
    if not isinstance(result, dict) or result.get("statusCode") != status:
        raise NotAsExpected(f"expected an HTTP {status} answer, got {json.dumps(result)[:300]}")
    body = json.loads(result.get("body") or "null")
    return body if isinstance(body, dict) else {"body": body}


Check = Callable[["Invocation"], list[str]]
Prepare = Callable[[Setup, Any], tuple[Any, Check]]


def _login(setup: Setup, event: Any) -> tuple[Any, Check]:
    code, openid = setup.code()

    def check(inv: Invocation) -> list[str]:
        body = _body(inv.result, 200)
        if body.get("openid") != openid or not str(body.get("token", "")).count(".") == 2:
            raise NotAsExpected(f"no session token for {openid}: {body}")
        return [f"session token {body['token'][:16]}… for openid {openid}, expires in {body['expires_in']} s"]

    return _replace(event, {"A_WX_LOGIN_CODE": code}), check


def _subscriptions(setup: Setup, event: Any) -> tuple[Any, Check]:
    setup.ready_to_send()
    openid, token = setup.user()
    result = setup.popup(openid)

    def check(inv: Invocation) -> list[str]:
        body = _body(inv.result, 200)
        grant = next((g for g in body.get("grants", []) if g.get("template_id") == ONE_TIME), None)
        if not grant or grant.get("one_time", 0) < 1:
            raise NotAsExpected(f"no one-time grant for {ONE_TIME}: {body}")
        return [f"{openid} holds {grant['one_time']} one-time send(s) of {ONE_TIME}"]

    prepared = _replace(event, {"SESSION_TOKEN": token, "TEMPLATE_ID": ONE_TIME})
    prepared["body"] = json.dumps({**json.loads(prepared["body"]), **result})
    return prepared, check


def _to_granted_user(setup: Setup, event: Any) -> tuple[Any, str]:
    """A send or campaign event addressed to a user who granted the template, with this
    minute's data and a key of its own: (the event, the openid)."""
    openid = setup.granted_user()
    prepared = _replace(event, {"OPENID": openid, "TEMPLATE_ID": ONE_TIME})
    body = json.loads(prepared["body"])
    body["data"] = order_shipped_data()
    prepared["body"] = json.dumps(body, ensure_ascii=False)
    prepared["headers"]["idempotency-key"] = f"sam-{uuid.uuid4().hex[:12]}"
    return prepared, openid


def _send_message(setup: Setup, event: Any) -> tuple[Any, Check]:
    prepared, openid = _to_granted_user(setup, event)

    def check(inv: Invocation) -> list[str]:
        answer = _body(inv.result, 200)
        if answer.get("status") != "sent":
            raise NotAsExpected(f"not sent: {answer}")
        delivered = [m for m in setup.inbox(openid) if str(m.get("msgid")) == str(answer["msgid"])]
        if not delivered:
            raise NotAsExpected(f"msgid {answer['msgid']} is not in {openid}'s inbox")
        receipt = setup.receipt(answer["message_id"])
        if receipt.get("status") != "delivered":
            raise NotAsExpected(f"GET /messages/{answer['message_id']} says {receipt}")
        return [
            f"sandbox inbox of {openid}: msgid {answer['msgid']}, {delivered[0].get('template_id')}",
            f"GET /messages/{answer['message_id']}: {receipt['status']}",
        ]

    return prepared, check


def _refresh(setup: Setup, event: Any) -> tuple[Any, Check]:
    # as on a new stack: no token yet (SSM outlives a reset of the tables)
    name = str(setup.stack.description.parameters["AccessTokenParam"])
    with contextlib.suppress(setup.aws("ssm").exceptions.ParameterNotFound):
        setup.aws("ssm").delete_parameter(Name=name)

    def check(inv: Invocation) -> list[str]:
        stored = setup.token_parameter()
        if not stored.get("access_token") or not inv.result or not inv.result.get("changed"):
            raise NotAsExpected(f"no new access token in SSM: {inv.result}")
        return [f"access token in SSM {stored['name']} (version {stored['version']}; the value is not shown)"]

    return event, check


def _sync(setup: Setup, event: Any) -> tuple[Any, Check]:
    setup.stack.run_schedule("RefreshTokenFunction")
    if setup.templates():
        raise NotAsExpected("the registry is not empty before the sync")

    def check(inv: Invocation) -> list[str]:
        names = setup.templates()
        if ONE_TIME not in names:
            raise NotAsExpected(f"the registry lacks {ONE_TIME}: {names}")
        return [f"{len(names)} templates in the registry: {', '.join(names)}"]

    return event, check


def _push(setup: Setup, event: Any) -> tuple[Any, Check]:
    """A POST is a signed popup event (answer ``success``, a grant); a GET is the URL check."""
    from sandbox import crypto

    push_token = setup.stack.secure_strings[str(setup.stack.description.parameters["PushTokenParam"])]
    stamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    signed = {"timestamp": stamp, "nonce": nonce, "signature": crypto.signature(push_token, stamp, nonce)}
    if event.get("requestContext", {}).get("http", {}).get("method") == "GET":
        echostr = str(event["queryStringParameters"]["echostr"])
        query = {**event["queryStringParameters"], **signed}
        prepared = {**event, "queryStringParameters": query, "rawQueryString": str(httpx.QueryParams(query))}

        def check_url(inv: Invocation) -> list[str]:
            if not isinstance(inv.result, dict) or inv.result.get("body") != echostr:
                raise NotAsExpected(f"WeChat's URL check expects echostr {echostr} back: {inv.result}")
            return [f"URL check answered with echostr {echostr}"]

        return prepared, check_url

    setup.ready_to_send()
    _, openid = setup.code()
    values = {"OPENID": openid, "TEMPLATE_ID": ONE_TIME, "CREATE_TIME": stamp}
    values.update({name.upper(): value for name, value in signed.items()})

    def check(inv: Invocation) -> list[str]:
        if not isinstance(inv.result, dict) or inv.result.get("body") != "success":
            raise NotAsExpected(f"WeChat expects the body `success`: {inv.result}")
        if ONE_TIME not in setup.grants(openid):
            raise NotAsExpected(f"no grant recorded for {openid}")
        return [f"answered `success`; {openid} now holds a grant for {ONE_TIME}"]

    return _replace(event, values), check


def _settle(setup: Setup, event: Any) -> tuple[Any, Check]:
    def check(inv: Invocation) -> list[str]:
        if not isinstance(inv.result, dict) or "given_up" not in inv.result:
            raise NotAsExpected(f"no sweep summary: {inv.result}")
        return [f"the sweep gave up {inv.result['given_up']} send(s) left unknown past the settle window"]

    return event, check


def _campaigns(setup: Setup, event: Any) -> tuple[Any, Check]:
    prepared, _ = _to_granted_user(setup, event)

    def check(inv: Invocation) -> list[str]:
        answer = _body(inv.result, 202)
        queued = [m for m in setup.queued("ExpandQueue") if m.get("campaign_id") == answer.get("campaign_id")]
        if not queued:
            raise NotAsExpected(f"campaign {answer.get('campaign_id')} is not in ExpandQueue")
        return [f"campaign {answer['campaign_id']}: {answer['state']}, its first page waiting in ExpandQueue"]

    return prepared, check


def _start_campaign(setup: Setup, event: Any) -> tuple[Any, Check]:
    openid = setup.granted_user()
    campaign_id = setup.campaign(openid)

    def check(inv: Invocation) -> list[str]:
        if not isinstance(inv.result, dict) or inv.result.get("batchItemFailures"):
            raise NotAsExpected(f"the batch was not taken: {inv.result}")
        sends = [m for m in setup.queued("SendQueue") if m.get("campaign_id") == campaign_id]
        if [m.get("openid") for m in sends] != [openid]:
            raise NotAsExpected(f"SendQueue holds {sends}, not one send to {openid}")
        return [f"campaign {campaign_id} expanded: one send to {openid} waiting in SendQueue"]

    return _replace(event, {"CAMPAIGN_ID": campaign_id, "RECEIPT_HANDLE": uuid.uuid4().hex}), check


def _expanded_campaign(setup: Setup) -> tuple[str, str]:
    """A campaign to one granted user, expanded by the stack's own StartCampaign."""
    openid = setup.granted_user()
    campaign_id = setup.campaign(openid)
    page = default_event("StartCampaignFunction")
    started = _replace(
        json.loads(page.read_text()), {"CAMPAIGN_ID": campaign_id, "RECEIPT_HANDLE": uuid.uuid4().hex}
    )
    setup.stack.invoke("StartCampaignFunction", started)
    return campaign_id, openid


def _send_worker(setup: Setup, event: Any) -> tuple[Any, Check]:
    campaign_id, openid = _expanded_campaign(setup)

    def check(inv: Invocation) -> list[str]:
        if not isinstance(inv.result, dict) or inv.result.get("batchItemFailures"):
            raise NotAsExpected(f"the send was handed back: {inv.result}")
        inbox = setup.inbox(openid)
        if not inbox:
            raise NotAsExpected(f"{openid}'s inbox is empty")
        return [f"campaign {campaign_id}: sandbox inbox of {openid} holds msgid {inbox[-1].get('msgid')}"]

    values = {"CAMPAIGN_ID": campaign_id, "OPENID": openid, "RECEIPT_HANDLE": uuid.uuid4().hex}
    return _replace(event, values), check


def _count_deliveries(setup: Setup, event: Any) -> tuple[Any, Check]:
    campaign_id, openid = _expanded_campaign(setup)
    worker = _replace(
        json.loads(default_event("SendWorkerFunction").read_text()),
        {"CAMPAIGN_ID": campaign_id, "OPENID": openid, "RECEIPT_HANDLE": uuid.uuid4().hex},
    )
    setup.stack.invoke("SendWorkerFunction", worker)  # the send whose status change the stream carries
    before = _ok(setup.signed.get(f"/campaigns/{campaign_id}"))["counts"]

    def check(inv: Invocation) -> list[str]:
        counts = _ok(setup.signed.get(f"/campaigns/{campaign_id}"))["counts"]
        if counts.get("sent", 0) != before.get("sent", 0) + 1:
            raise NotAsExpected(f"campaign counts went from {before} to {counts}")
        return [f"campaign {campaign_id} counts sent {before.get('sent', 0)} → {counts['sent']}"]

    values = {"CAMPAIGN_ID": campaign_id, "OPENID": openid, "TEMPLATE_ID": ONE_TIME}
    prepared = _replace(event, values)
    for record in prepared["Records"]:  # each stream record has its own id and sequence number
        record["eventID"] = uuid.uuid4().hex
        record["dynamodb"]["SequenceNumber"] = str(time.time_ns())
    return prepared, check


def _api_docs(setup: Setup, event: Any) -> tuple[Any, Check]:
    def check(inv: Invocation) -> list[str]:
        document = _body(inv.result, 200)
        paths = document.get("paths") or {}
        if not str(document.get("openapi", "")).startswith("3.") or "/messages" not in paths:
            raise NotAsExpected(f"not the OpenAPI document: {str(document)[:200]}")
        return [f"OpenAPI {document['openapi']} with {len(paths)} paths"]

    return event, check


PREPARERS: dict[str, Prepare] = {
    "LoginFunction": _login,
    "SubscriptionsFunction": _subscriptions,
    "SendMessageFunction": _send_message,
    "RefreshTokenFunction": _refresh,
    "SyncTemplatesFunction": _sync,
    "WeChatPushFunction": _push,
    "SettleDeliveriesFunction": _settle,
    "CampaignsFunction": _campaigns,
    "StartCampaignFunction": _start_campaign,
    "SendWorkerFunction": _send_worker,
    "CountDeliveriesFunction": _count_deliveries,
    "ApiDocsFunction": _api_docs,
}


def run(
    runner: SamLocal,
    function: str,
    event: Any,
    invoke: Callable[[str, Any], Invocation] | None = None,
) -> Outcome:
    """Prepare ``event`` for ``function``, ``sam local invoke`` it (or ``invoke`` it, e.g. through
    ``sam local start-lambda``), and check the outcome."""
    setup = Setup(runner.stack)
    try:
        prepare = PREPARERS.get(function)
        check: Check | None = None
        if prepare is not None:
            event, check = prepare(setup, event)
        invocation = (invoke or runner.invoke)(function, event)
        seen: list[str] = []
        if invocation.returncode != 0:
            return Outcome(invocation, False, [f"sam local invoke exited {invocation.returncode}"])
        if check is None:
            return Outcome(invocation, True, ["(no check for this function)"])
        try:
            seen = check(invocation)
        except NotAsExpected as exc:
            return Outcome(invocation, False, [str(exc)])
        return Outcome(invocation, True, seen)
    finally:
        setup.close()


def api_banner(runner: SamLocal, url: str) -> str:
    stack = runner.stack
    return "\n".join(
        [
            f"sam local start-api: {url}  (SAM's local API does not check IAM: any or no signature passes)",
            f"  AWS      {stack.aws_endpoint}  (moto, resources from template.yaml)",
            f"  WeChat   {stack.sandbox_url}  (sandbox, AppID {stack.appid}; pushes go to {url}/wechat/push)",
            "  schedules, queues and the deliveries stream run in the local stack's own workers"
            " (SAM CLI serves only the HTTP routes)",
            f"  {runner.image.note}",
            f"export WXSUB_API_URL={url} WXSUB_SANDBOX_URL={stack.sandbox_url}"
            f" WXSUB_AWS_URL={stack.aws_endpoint}",
            "Ctrl-C stops it (and the containers, the local AWS and the sandbox).",
        ]
    )
