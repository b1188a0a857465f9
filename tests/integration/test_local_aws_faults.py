"""The local AWS front: faults armed over HTTP or from Python, seen by boto3 as AWS would send them.

Each test arms faults on tables and parameters of its own (``faults-a``, ``faults-b``, created in
the fixture stack's moto), so the fixture's scheduled writes to EventsTable never take them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.aws import FaultError
from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
TABLE_A, TABLE_B = "faults-a", "faults-b"
PARAM_A, PARAM_B = "/fixture/faults/a", "/fixture/faults/b"


def _client(stack: LocalStack, service: str, attempts: int = 1) -> Any:
    """A boto3 client on the stack's AWS; one attempt by default, so botocore hides no error."""
    return boto3.client(
        service,
        endpoint_url=stack.aws_endpoint,
        region_name=stack.region,
        aws_access_key_id=stack.credentials[0],
        aws_secret_access_key=stack.credentials[1],
        config=Config(retries={"mode": "legacy", "total_max_attempts": attempts}),
    )


@pytest.fixture(scope="module")
def aws(fixture_stack: LocalStack) -> LocalStack:
    """The fixture stack with two tables and two parameters of this module's own."""
    dynamodb, ssm = _client(fixture_stack, "dynamodb", 3), _client(fixture_stack, "ssm", 3)
    existing = dynamodb.list_tables()["TableNames"]
    for name in (TABLE_A, TABLE_B):
        if name not in existing:
            dynamodb.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
    for name in (PARAM_A, PARAM_B):
        ssm.put_parameter(Name=name, Value=f"value of {name}", Type="String", Overwrite=True)
    return fixture_stack


@pytest.fixture(autouse=True)
def clean(aws: LocalStack) -> Iterator[None]:
    aws.clear_aws_faults()
    aws.reset_aws_requests()
    yield
    aws.clear_aws_faults()


@pytest.fixture
def control(aws: LocalStack) -> Iterator[httpx.Client]:
    """An HTTP client on the front's control routes."""
    with httpx.Client(base_url=f"{aws.aws_endpoint}/_local", timeout=10) as client:
        yield client


def _put(client: Any, table: str, key: str | None = None) -> str:
    key = key or uuid.uuid4().hex
    client.put_item(TableName=table, Item={"pk": {"S": key}})
    return key


def _exists(client: Any, table: str, key: str) -> bool:
    return "Item" in client.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)


def _error(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_a_throttle_fails_exactly_n_puts_on_its_table_and_spares_the_others(aws: LocalStack) -> None:
    # Given two PutItem throttles armed on one table
    dynamodb = _client(aws, "dynamodb")
    aws.aws_fault("PutItem", table=TABLE_A, count=2)

    # When both tables are written to
    spared = _put(dynamodb, TABLE_B)
    failures = [_error(_put, dynamodb, TABLE_A, f"lost-{i}") for i in range(2)]
    passed = _put(dynamodb, TABLE_A)

    # Then exactly two calls on that table were throttled, nothing of them applied, the rest went through
    assert failures == [(400, "ProvisionedThroughputExceededException")] * 2
    assert _exists(dynamodb, TABLE_B, spared) and _exists(dynamodb, TABLE_A, passed)
    assert not _exists(dynamodb, TABLE_A, "lost-0") and not _exists(dynamodb, TABLE_A, "lost-1")
    [fault] = aws.aws_faults()
    assert (fault["table"], fault["fired"], fault["left"]) == (TABLE_A, 2, 0)
    counted = aws.aws_requests()
    assert counted.count("dynamodb", "PutItem", TABLE_A) == 3
    assert counted.failed("dynamodb", "PutItem", TABLE_A) == 2
    assert (counted.count("dynamodb", "PutItem", TABLE_B), counted.failed(table=TABLE_B)) == (1, 0)


def test_botocore_retries_a_throttle_the_way_it_would_on_aws(aws: LocalStack) -> None:
    # Given a throttle on two calls and a client allowed three attempts
    dynamodb = _client(aws, "dynamodb", attempts=3)
    aws.aws_fault("PutItem", table=TABLE_A, count=2)

    # When it writes once
    key = _put(dynamodb, TABLE_A)

    # Then the write succeeded on its third request
    assert _exists(dynamodb, TABLE_A, key)
    counted = aws.aws_requests()
    assert (counted.count(operation="PutItem", table=TABLE_A), counted.failed(table=TABLE_A)) == (3, 2)


def test_a_function_of_the_stack_goes_through_the_front(aws: LocalStack) -> None:
    # Given the fixture table, named by its logical id, throttled twice
    fault = aws.aws_fault("PutItem", table="EventsTable", count=2)
    assert fault["table"] == "wxsub-local-EventsTable"

    # When the scheduled function writes its record (its boto3 retries throttles by default)
    assert aws.run_schedule("TickFunction")["ticked"] is True

    # Then its requests were throttled and counted
    counted = aws.aws_requests()
    assert counted.failed("dynamodb", "PutItem", "EventsTable") == 2
    assert counted.count("dynamodb", "PutItem", "EventsTable") >= 3


def test_an_after_fault_applies_the_write_and_loses_the_answer(aws: LocalStack) -> None:
    # Given an internal error armed after PutItem
    dynamodb = _client(aws, "dynamodb")
    aws.aws_fault("PutItem", table=TABLE_A, error="internal", after=True)

    # When a write is sent
    key = uuid.uuid4().hex
    status = _error(_put, dynamodb, TABLE_A, key)

    # Then the caller saw a server error although the item was written
    assert status == (500, "InternalServerError")
    assert _exists(dynamodb, TABLE_A, key)


def test_a_parameter_throttle_hits_only_that_parameter(aws: LocalStack) -> None:
    # Given GetParameter throttled once and GetParameters failing once, both on one parameter
    ssm = _client(aws, "ssm")
    aws.aws_fault("GetParameter", parameter=PARAM_A)
    aws.aws_fault("GetParameters", parameter=PARAM_A, error="internal")

    # When both parameters are read
    other = ssm.get_parameter(Name=PARAM_B)["Parameter"]["Value"]
    throttled = _error(ssm.get_parameter, Name=PARAM_A)
    failed = _error(ssm.get_parameters, Names=[PARAM_B, PARAM_A])

    # Then only the calls naming it failed, once each, as SSM fails
    assert other == f"value of {PARAM_B}"
    assert throttled == (400, "ThrottlingException")
    assert failed == (500, "InternalServerError")
    assert ssm.get_parameter(Name=PARAM_A)["Parameter"]["Value"] == f"value of {PARAM_A}"
    assert aws.aws_requests().count("ssm", "GetParameter") == 3


def test_a_delay_answers_late(aws: LocalStack) -> None:
    # Given a call held back 0.4 s without an error
    dynamodb = _client(aws, "dynamodb")
    key = _put(dynamodb, TABLE_B)
    aws.aws_fault("GetItem", table=TABLE_B, error="none", delay=0.4)

    # When it is made
    started = time.monotonic()
    found = _exists(dynamodb, TABLE_B, key)

    # Then it answers, late
    assert found
    assert time.monotonic() - started >= 0.4


def test_requests_are_counted_by_operation_and_table_with_transaction_items(
    aws: LocalStack, control: httpx.Client
) -> None:
    # Given a transaction over both tables and a read
    dynamodb = _client(aws, "dynamodb")
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE_A, "Item": {"pk": {"S": uuid.uuid4().hex}}}},
            {"Put": {"TableName": TABLE_A, "Item": {"pk": {"S": uuid.uuid4().hex}}}},
            {"Put": {"TableName": TABLE_B, "Item": {"pk": {"S": uuid.uuid4().hex}}}},
        ]
    )
    _exists(dynamodb, TABLE_A, "nobody")

    # When the counts are read over HTTP
    counts = control.get("/requests").json()

    # Then the transaction is one request carrying three items, naming both tables
    dynamodb_rows = [row for row in counts["requests"] if row["service"] == "dynamodb"]
    rows = {(row["operation"], row["table"]): row for row in dynamodb_rows}
    transaction = rows[("TransactWriteItems", f"{TABLE_A},{TABLE_B}")]
    assert (transaction["count"], transaction["items"], transaction["failed"]) == (1, 3, 0)
    assert rows[("GetItem", TABLE_A)]["count"] == 1
    assert counts["total"] == sum(row["count"] for row in counts["requests"])
    assert aws.aws_requests().items("dynamodb", "TransactWriteItems", TABLE_B) == 3

    # And DELETE zeroes them
    control.delete("/requests").raise_for_status()
    assert aws.aws_requests().count("dynamodb", table=TABLE_A) == 0


def test_reset_clears_the_faults(aws: LocalStack) -> None:
    aws.aws_fault("PutItem", table=TABLE_A, count=5)

    aws.reset()

    assert aws.aws_faults() == []
    _put(_client(aws, "dynamodb"), TABLE_A)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"table": TABLE_A}, "operation"),
        ({"operation": "DynamoDB_20120810.PutItem"}, "operation"),
        ({"operation": "PutItem", "count": 0}, "count"),
        ({"operation": "PutItem", "count": "2"}, "count"),
        ({"operation": "PutItem", "error": "boom"}, "error"),
        ({"operation": "PutItem", "after": "yes"}, "after"),
        ({"operation": "PutItem", "delay": -1}, "delay"),
        ({"operation": "PutItem", "error": "none"}, "delay"),
        ({"operation": "PutItem", "table": TABLE_A, "parameter": PARAM_A}, "parameter"),
        ({"operation": "PutItem", "tabel": TABLE_A}, "tabel"),
        ([], "body"),
    ],
)
def test_a_bad_fault_spec_is_refused_naming_the_field(
    aws: LocalStack, control: httpx.Client, spec: Any, field: str
) -> None:
    answer = control.post("/faults", json=spec)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_fault"
    assert answer.json()["field"] == field
    assert aws.aws_faults() == []


def test_faults_over_http_list_and_clear(aws: LocalStack, control: httpx.Client) -> None:
    armed = control.post("/faults", json={"operation": "GetItem", "table": TABLE_B, "count": 3})
    listed = control.get("/faults").json()["faults"]
    cleared = control.delete("/faults")

    assert armed.status_code == 201
    assert [(f["operation"], f["table"], f["error"], f["left"]) for f in listed] == [
        ("GetItem", TABLE_B, "throttle", 3)
    ]
    assert cleared.status_code == 200 and aws.aws_faults() == []
    assert control.post("/faults", content=b"{not json").json()["field"] == "body"
    assert control.get("/nothing").status_code == 404
    assert control.put("/requests").status_code == 405
    with pytest.raises(FaultError) as raised:
        aws.aws_fault("PutItem", count=0)
    assert raised.value.field == "count"


def _add_one(pk: str) -> list[dict[str, Any]]:
    return [
        {
            "Update": {
                "TableName": TABLE_A,
                "Key": {"pk": {"S": pk}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }
    ]


def test_a_transaction_repeated_with_its_client_token_is_applied_once_as_on_dynamodb(aws: LocalStack) -> None:
    dynamodb = _client(aws, "dynamodb")
    pk, token = f"tx-{uuid.uuid4().hex}", uuid.uuid4().hex

    dynamodb.transact_write_items(TransactItems=_add_one(pk), ClientRequestToken=token)
    dynamodb.transact_write_items(TransactItems=_add_one(pk), ClientRequestToken=token)
    dynamodb.transact_write_items(TransactItems=_add_one(pk), ClientRequestToken=uuid.uuid4().hex)
    dynamodb.transact_write_items(TransactItems=_add_one(pk))
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=_add_one(pk + "-other"), ClientRequestToken=token)

    item = dynamodb.get_item(TableName=TABLE_A, Key={"pk": {"S": pk}})["Item"]
    assert item["n"] == {"N": "3"}
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
