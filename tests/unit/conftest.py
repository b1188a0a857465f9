"""Shared unit-test fixtures: moto in-process, with the tables as template.yaml declares them."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from local.template import load_yaml

REGION = "ap-east-1"
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@cache
def _resources() -> dict[str, Any]:
    return dict(load_yaml(TEMPLATE)["Resources"])


def table_arguments(logical_id: str, name: str) -> dict[str, Any]:
    """``create_table`` arguments for one of template.yaml's tables, keys and indexes as declared."""
    properties = copy.deepcopy(_resources()[logical_id]["Properties"])
    arguments = {
        "TableName": name,
        "BillingMode": properties["BillingMode"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
    }
    if "GlobalSecondaryIndexes" in properties:
        arguments["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    return arguments


def create_grants_table(dynamodb: Any, name: str = "grants") -> Any:
    """GrantsTable: openid + template_id, GSI ``by_template`` (template_id, openid)."""
    return dynamodb.create_table(**table_arguments("GrantsTable", name))


def create_deliveries_table(dynamodb: Any, name: str = "deliveries") -> Any:
    """DeliveriesTable: message_id; GSIs ``by_msgid``, ``by_recipient`` and the sparse ``by_unsettled``."""
    return dynamodb.create_table(**table_arguments("DeliveriesTable", name))


def create_idempotency_table(dynamodb: Any, name: str = "idempotency") -> Any:
    """IdempotencyTable: Powertools Idempotency's records, keyed by ``id``."""
    return dynamodb.create_table(**table_arguments("IdempotencyTable", name))


def create_campaigns_table(dynamodb: Any, name: str = "campaigns") -> Any:
    """CampaignsTable: pk; the sparse GSI ``by_active`` (active, created_at)."""
    return dynamodb.create_table(**table_arguments("CampaignsTable", name))


def create_state_table(dynamodb: Any, name: str = "state") -> Any:
    """StateTable: pk (locks, leases, counters and the send pace's buckets)."""
    return dynamodb.create_table(**table_arguments("StateTable", name))


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
def idempotency_table(aws: Any) -> Any:
    return create_idempotency_table(aws)


@pytest.fixture
def campaigns_table(aws: Any) -> Any:
    return create_campaigns_table(aws)


@pytest.fixture
def state_table(aws: Any) -> Any:
    return create_state_table(aws)


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
