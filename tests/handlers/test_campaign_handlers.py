"""The campaign functions' events from ``events/`` through their handlers, against moto and the sandbox.

A campaign is created through the campaigns function; its ExpandQueue and SendQueue messages are
read from moto and handed to start_campaign and send_worker inside their checked-in events, as the
SQS event source would hand them over.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import boto3
import httpx
import pytest
from handler_kit import Invoke, load_event

from local.stack import LocalStack
from wxsub.services.campaigns import Window

DATA = {"thing1": "Order shipped", "time2": "2026-11-24 10:30"}  # the data of events/campaigns.json


def _sandbox(stack: LocalStack) -> httpx.Client:
    assert stack.sandbox_url is not None
    return httpx.Client(base_url=stack.sandbox_url, timeout=30)


@pytest.fixture(scope="session")
def template_id(aws_and_wechat: LocalStack, invoke: Invoke) -> str:
    """A one-time template with exactly the keywords of events/campaigns.json, known to the registry."""
    body = {
        "title": "发货通知",
        "content": "商品名称:{{thing1.DATA}}\n发货时间:{{time2.DATA}}\n",
        "example": "商品名称:机械键盘\n发货时间:2019年10月1日 15:01\n",
    }
    with _sandbox(aws_and_wechat) as sb:
        created = str(sb.post("/sandbox/templates", json=body).json()["priTmplId"])
    assert invoke("sync_templates", load_event("sync_templates"))["templates"] >= 5
    return created


def _granted_user(stack: LocalStack, invoke: Invoke, template_id: str) -> str:
    """A user who logged in and accepted ``template_id`` once: one grant in the ledger."""
    with _sandbox(stack) as sb:
        code = sb.post("/sandbox/login", json={}).json()["code"]
        login = load_event("login")
        login["body"] = json.dumps({"code": code})
        session = json.loads(invoke("login", login)["body"])
        choice = {"openid": session["openid"], "template_id": template_id, "status": "accept"}
        assert sb.post("/sandbox/subscribe", json=choice).status_code == 200
    assert stack.sandbox is not None
    stack.sandbox.wait_for_pushes(20)
    report = load_event("subscriptions")
    report["headers"]["authorization"] = f"Bearer {session['token']}"
    report["body"] = json.dumps({"errMsg": "requestSubscribeMessage:ok", template_id: "accept"})
    reported = invoke("subscriptions", report)
    assert reported["statusCode"] == 200, reported
    return str(session["openid"])


def _inbox(stack: LocalStack, openid: str) -> list[dict[str, Any]]:
    with _sandbox(stack) as sb:
        return list(sb.get("/sandbox/inbox", params={"openid": openid}).json()["messages"])


def _create(invoke: Invoke, body: dict[str, Any]) -> dict[str, Any]:
    """POST /campaigns with ``body`` under an Idempotency-Key of its own."""
    event = load_event("campaigns")
    event["body"] = json.dumps(body)
    event["headers"]["idempotency-key"] = f"campaign-{uuid.uuid4()}"
    return dict(invoke("campaigns", event))


def _call(invoke: Invoke, method: str, path: str) -> dict[str, Any]:
    """GET, DELETE or POST (resume) on a campaign through the campaigns function."""
    event = load_event("campaigns")
    route = path.replace(path.split("/")[2], "{campaign_id}", 1)
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["pathParameters"] = {"campaign_id": path.split("/")[2]}
    event["headers"].pop("idempotency-key")
    event.pop("body")
    return dict(invoke("campaigns", event))


def _take(queue_url: str, campaign_id: str) -> list[dict[str, Any]]:
    """The queue's messages for ``campaign_id``, as SQS hands them to a function (received, not deleted)."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        )
        messages = answer.get("Messages", [])
        found.extend(m for m in messages if json.loads(m["Body"])["campaign_id"] == campaign_id)
        if found and not messages:
            return found
        if not messages:
            time.sleep(0.1)
    return found


def _sqs_event(name: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The function's checked-in event with its record replaced by the messages SQS delivered."""
    template = load_event(name)["Records"][0]
    records = []
    for message in messages:
        record = json.loads(json.dumps(template))
        record["messageId"] = message["MessageId"]
        record["receiptHandle"] = message["ReceiptHandle"]
        record["body"] = message["Body"]
        record["attributes"]["ApproximateReceiveCount"] = message["Attributes"]["ApproximateReceiveCount"]
        records.append(record)
    return {"Records": records}


def _done_with(queue_url: str, messages: list[dict[str, Any]]) -> None:
    """What the event source does after a batch that reported no failures."""
    sqs = boto3.client("sqs")
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _count_changes(invoke: Invoke, campaign_id: str) -> dict[str, Any]:
    """What the DeliveriesTable stream's event source does: the campaign's status changes so far,
    shaped as the checked-in event, handed to CountDeliveries."""
    arn = boto3.client("dynamodb").describe_table(TableName=os.environ["DELIVERIES_TABLE"])["Table"][
        "LatestStreamArn"
    ]
    streams = boto3.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    template = load_event("count_deliveries")["Records"][0]
    records = []
    for record in streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]:
        change = record["dynamodb"]
        if record["eventName"] != "MODIFY" or change["NewImage"].get("campaign_id") != {"S": campaign_id}:
            continue
        records.append(
            {
                **template,
                "eventID": record["eventID"],
                "dynamodb": {
                    **template["dynamodb"],
                    **{k: change[k] for k in ("Keys", "OldImage", "NewImage", "SequenceNumber")},
                },
                "eventSourceARN": arn,
            }
        )
    answer: dict[str, Any] = invoke("count_deliveries", {"Records": records})
    return answer


def _progress(invoke: Invoke, campaign_id: str) -> dict[str, Any]:
    _count_changes(invoke, campaign_id)
    answer = _call(invoke, "GET", f"/campaigns/{campaign_id}")
    assert answer["statusCode"] == 200, answer
    return dict(json.loads(answer["body"]))


def test_campaigns_event_starts_a_campaign_in_its_window(
    aws_and_wechat: LocalStack, invoke: Invoke, template_id: str
) -> None:
    event = load_event("campaigns")
    event["body"] = (
        event["body"]
        .replace("REPLACE_WITH_TEMPLATE_ID", template_id)
        .replace("REPLACE_WITH_OPENID", "o-events")
    )
    opens = Window("09:00", "21:00", "Asia/Shanghai").opens_after(time.time())

    answer = invoke("campaigns", event)
    again = invoke("campaigns", event)

    body = json.loads(answer["body"])
    assert answer["statusCode"] == 202, answer
    assert json.loads(again["body"])["campaign_id"] == body["campaign_id"]
    assert body["state"] == ("expanding" if opens is None else "scheduled")
    assert body["window"] == {"start": "09:00", "end": "21:00", "tz": "Asia/Shanghai"}
    assert body["counts"]["queued"] == 0
    if opens is not None:
        schedule = boto3.client("scheduler").get_schedule(Name=f"wxsub-{body['campaign_id']}-start")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(opens))
        assert schedule["ScheduleExpression"] == f"at({stamp})"
    assert _progress(invoke, body["campaign_id"])["state"] == body["state"]


def test_campaigns_event_with_data_breaking_a_rule_is_422_naming_the_recipient(
    aws_and_wechat: LocalStack, invoke: Invoke, template_id: str
) -> None:
    recipients = [{"openid": "o-1"}, {"openid": "o-2", "data": {"thing1": "x" * 21}}]

    answer = _create(
        invoke, {"template_id": template_id, "data": DATA, "audience": {"recipients": recipients}}
    )

    body = json.loads(answer["body"])
    assert answer["statusCode"] == 422
    assert (body["error"], body["recipient"], body["openid"]) == ("invalid_data", 1, "o-2")
    assert body["violations"][0]["keyword"] == "thing1"


def test_campaigns_event_for_an_unknown_campaign_is_404(aws_and_wechat: LocalStack, invoke: Invoke) -> None:
    answer = _call(invoke, "GET", "/campaigns/0123456789abcdef")

    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["error"] == "not_found"


def test_a_listed_campaign_goes_from_the_campaigns_event_through_start_campaign_send_worker_and_count(
    aws_and_wechat: LocalStack, invoke: Invoke, template_id: str
) -> None:
    openid = _granted_user(aws_and_wechat, invoke, template_id)
    created = _create(
        invoke,
        {"template_id": template_id, "data": DATA, "audience": {"openids": [openid, openid]}},
    )
    assert created["statusCode"] == 202, created
    campaign_id = json.loads(created["body"])["campaign_id"]
    expand_url, send_url = os.environ["EXPAND_QUEUE_URL"], os.environ["SEND_QUEUE_URL"]

    steps = _take(expand_url, campaign_id)
    expanded = invoke("start_campaign", _sqs_event("start_campaign", steps))
    _done_with(expand_url, steps)
    sends = _take(send_url, campaign_id)
    worked = invoke("send_worker", _sqs_event("send_worker", sends))
    _done_with(send_url, sends)

    inbox = _inbox(aws_and_wechat, openid)
    counted = _count_changes(invoke, campaign_id)
    progress = _progress(invoke, campaign_id)  # the same batch handed over again, as after a failure
    assert counted["campaigns"] == 1 and counted["records"] >= 1
    assert [json.loads(s["Body"]) for s in steps] == [{"campaign_id": campaign_id, "page": 0}]
    assert expanded == {"batchItemFailures": []}
    assert [json.loads(s["Body"]) for s in sends] == [{"campaign_id": campaign_id, "openid": openid}]
    assert worked == {"batchItemFailures": []}
    assert [(m["template_id"], m["data"]["thing1"]["value"]) for m in inbox] == [
        (template_id, "Order shipped")
    ]
    assert progress["state"] == "done"
    assert {k: progress["counts"][k] for k in ("queued", "sent", "failed", "skipped")} == {
        "queued": 1,
        "sent": 1,
        "failed": 0,
        "skipped": 0,
    }


def test_a_granted_campaign_reaches_the_user_holding_a_grant_once(
    aws_and_wechat: LocalStack, invoke: Invoke, template_id: str
) -> None:
    openid = _granted_user(aws_and_wechat, invoke, template_id)
    created = _create(invoke, {"template_id": template_id, "data": DATA, "audience": "granted"})
    campaign_id = json.loads(created["body"])["campaign_id"]
    expand_url, send_url = os.environ["EXPAND_QUEUE_URL"], os.environ["SEND_QUEUE_URL"]

    steps = _take(expand_url, campaign_id)
    assert invoke("start_campaign", _sqs_event("start_campaign", steps)) == {"batchItemFailures": []}
    _done_with(expand_url, steps)
    sends = _take(send_url, campaign_id)
    event = _sqs_event("send_worker", sends)
    worked = invoke("send_worker", event)
    _done_with(send_url, sends)

    assert openid in [json.loads(s["Body"])["openid"] for s in sends]
    assert worked == {"batchItemFailures": []}
    assert len(_inbox(aws_and_wechat, openid)) == 1
    progress = _progress(invoke, campaign_id)
    assert progress["state"] == "done"
    assert progress["counts"]["sent"] == progress["counts"]["queued"] == len(sends)


def test_send_worker_sends_nothing_for_a_cancelled_campaign(
    aws_and_wechat: LocalStack, invoke: Invoke, template_id: str
) -> None:
    openid = _granted_user(aws_and_wechat, invoke, template_id)
    created = _create(invoke, {"template_id": template_id, "data": DATA, "audience": {"openids": [openid]}})
    campaign_id = json.loads(created["body"])["campaign_id"]
    expand_url, send_url = os.environ["EXPAND_QUEUE_URL"], os.environ["SEND_QUEUE_URL"]
    steps = _take(expand_url, campaign_id)
    invoke("start_campaign", _sqs_event("start_campaign", steps))
    _done_with(expand_url, steps)
    sends = _take(send_url, campaign_id)

    cancelled = _call(invoke, "DELETE", f"/campaigns/{campaign_id}")
    worked = invoke("send_worker", _sqs_event("send_worker", sends))
    _done_with(send_url, sends)

    assert cancelled["statusCode"] == 200, cancelled
    assert json.loads(cancelled["body"])["state"] == "cancelled"
    assert worked == {"batchItemFailures": []}
    assert _inbox(aws_and_wechat, openid) == []
    progress = _progress(invoke, campaign_id)
    assert (progress["state"], progress["counts"]["cancelled"], progress["counts"]["sent"]) == (
        "cancelled",
        1,
        0,
    )


def test_resume_event_of_a_running_campaign_is_409(
    aws_and_wechat: LocalStack, invoke: Invoke, template_id: str
) -> None:
    created = _create(invoke, {"template_id": template_id, "data": DATA, "audience": {"openids": ["o-x"]}})
    campaign_id = json.loads(created["body"])["campaign_id"]

    answer = _call(invoke, "POST", f"/campaigns/{campaign_id}/resume")

    assert answer["statusCode"] == 409
    assert json.loads(answer["body"]) | {"message": ""} == {
        "error": "campaign_not_paused",
        "message": "",
        "state": "expanding",
    }


def test_start_campaign_event_as_checked_in_names_no_campaign_and_is_dropped(
    aws_and_wechat: LocalStack, invoke: Invoke
) -> None:
    assert invoke("start_campaign", load_event("start_campaign")) == {"batchItemFailures": []}


def test_send_worker_event_as_checked_in_names_no_campaign_and_is_dropped(
    aws_and_wechat: LocalStack, invoke: Invoke
) -> None:
    assert invoke("send_worker", load_event("send_worker")) == {"batchItemFailures": []}


def test_count_deliveries_event_as_checked_in_names_no_campaign_and_counts_nothing(
    aws_and_wechat: LocalStack, invoke: Invoke
) -> None:
    assert invoke("count_deliveries", load_event("count_deliveries")) == {"campaigns": 1, "records": 1}
    assert (
        boto3.client("dynamodb")
        .get_item(
            TableName=os.environ["CAMPAIGNS_TABLE"], Key={"pk": {"S": "campaign#REPLACE_WITH_CAMPAIGN_ID"}}
        )
        .get("Item")
        is None
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"send_at": "2020-01-01T00:00:00Z"}, "send_at"),
        ({"send_at": "2099-01-01T00:00:00+08:00"}, "send_at"),
        ({"send_at": "2027-01-01T00:00:00"}, "send_at"),
        ({"audience": {"openids": []}}, "audience"),
        ({"audience": {"emails": ["a@example.com"]}}, "audience"),
        ({"audience": "everyone"}, "audience"),
        ({"window": {"start": "09:00", "end": "25:00"}}, "window"),
        ({"window": {"start": "09:00", "end": "21:00", "tz": "Mars/Olympus"}}, "window"),
    ],
)
def test_campaigns_event_with_a_bad_field_is_a_4xx_naming_it(
    aws_and_wechat: LocalStack, invoke: Invoke, template_id: str, change: dict[str, Any], field: str
) -> None:
    body = {"template_id": template_id, "data": DATA, "audience": {"openids": ["o-1"]}, **change}

    answer = _create(invoke, body)

    refused = json.loads(answer["body"])
    named = [refused.get("field"), *(f["field"] for f in refused.get("fields", []))]
    assert answer["statusCode"] == 422, answer
    assert refused["error"] == "invalid_request"
    assert field in {str(name).split(".")[0] for name in named if name}, refused
