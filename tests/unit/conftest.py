"""Shared unit-test fixtures: moto in-process, with the tables as template.yaml declares them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

REGION = "ap-east-1"


def _string(*names: str) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def _index(name: str, hash_key: str, range_key: str | None = None) -> dict[str, Any]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return {"IndexName": name, "KeySchema": schema, "Projection": {"ProjectionType": "ALL"}}


def create_grants_table(dynamodb: Any, name: str = "grants") -> Any:
    """GrantsTable: openid + template_id, GSI ``by_template`` (template_id, openid)."""
    return dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=_string("openid", "template_id"),
        KeySchema=[
            {"AttributeName": "openid", "KeyType": "HASH"},
            {"AttributeName": "template_id", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[_index("by_template", "template_id", "openid")],
    )


def create_deliveries_table(dynamodb: Any, name: str = "deliveries") -> Any:
    """DeliveriesTable: message_id, GSIs ``by_msgid`` (msgid) and ``by_recipient`` (recipient, created_at)."""
    return dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            *_string("message_id", "msgid", "recipient"),
            {"AttributeName": "created_at", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            _index("by_msgid", "msgid"),
            _index("by_recipient", "recipient", "created_at"),
        ],
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An in-process fake AWS; yields a DynamoDB resource. No request can leave the process."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.resource("dynamodb", region_name=REGION)


@pytest.fixture
def grants_table(aws: Any) -> Any:
    return create_grants_table(aws)


@pytest.fixture
def deliveries_table(aws: Any) -> Any:
    return create_deliveries_table(aws)


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes moto apply one DynamoDB request at a time, as DynamoDB applies each request to an item.

    moto checks a ConditionExpression and then writes without a lock, so two threads can both
    pass the same condition; real DynamoDB never lets that happen. Tests of concurrent writers
    need the real guarantee, or they test moto's race instead of ours.
    """
    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    def one_at_a_time(self: DynamoHandler) -> Any:
        with lock:
            return call_action(self)

    monkeypatch.setattr(DynamoHandler, "call_action", one_at_a_time)
