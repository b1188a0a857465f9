"""What the local AWS front asks IAM for each call, and how it decides (local/access.py)."""

from __future__ import annotations

from typing import Any

from local.access import Access, Need, needs

REGION = "ap-shanghai"
ARN = f"arn:aws:{{}}:{REGION}:123456789012:"
KEY = "AKIALOCALTEST0000001"


def environ(**extra: Any) -> dict[str, Any]:
    scope = f"AWS4-HMAC-SHA256 Credential={KEY}/20261130/{REGION}/svc/aws4_request, SignedHeaders=host"
    return {"HTTP_AUTHORIZATION": scope, **extra}


def test_a_transaction_needs_each_items_own_action_on_each_table() -> None:
    body = {
        "TransactItems": [
            {"Put": {"TableName": "Deliveries", "Item": {}}},
            {"Update": {"TableName": "Grants", "Key": {}}},
            {"ConditionCheck": {"TableName": "Grants", "Key": {}}},
        ]
    }
    table = ARN.format("dynamodb") + "table/"

    assert needs("dynamodb", "TransactWriteItems", body, environ()) == [
        Need("dynamodb:PutItem", table + "Deliveries"),
        Need("dynamodb:UpdateItem", table + "Grants"),
        Need("dynamodb:ConditionCheckItem", table + "Grants"),
    ]


def test_a_query_on_an_index_needs_the_index_resource() -> None:
    body = {"TableName": "Deliveries", "IndexName": "by_msgid"}

    assert needs("dynamodb", "Query", body, environ()) == [
        Need("dynamodb:Query", ARN.format("dynamodb") + "table/Deliveries/index/by_msgid")
    ]


def test_batch_sends_need_send_message_on_the_queue_named_by_its_url() -> None:
    body = {"QueueUrl": "http://127.0.0.1:5000/123456789012/wxsub-local-SendQueue", "Entries": []}

    assert needs("sqs", "SendMessageBatch", body, environ()) == [
        Need("sqs:SendMessage", ARN.format("sqs") + "wxsub-local-SendQueue")
    ]


def test_a_parameter_name_with_a_leading_slash_maps_to_its_arn() -> None:
    assert needs("ssm", "GetParameter", {"Name": "/wxsub/app-secret"}, environ()) == [
        Need("ssm:GetParameter", ARN.format("ssm") + "parameter/wxsub/app-secret")
    ]


def test_creating_a_schedule_with_a_role_also_needs_pass_role() -> None:
    body = {"GroupName": "default", "Target": {"RoleArn": "arn:aws:iam::123456789012:role/run"}}

    wanted = needs("scheduler", "POST", body, environ(PATH_INFO="/schedules/wxsub-c1", REQUEST_METHOD="POST"))

    assert wanted == [
        Need("scheduler:CreateSchedule", ARN.format("scheduler") + "schedule/default/wxsub-c1"),
        Need("iam:PassRole", "arn:aws:iam::123456789012:role/run"),
    ]


def registered(*statements: dict[str, Any]) -> Access:
    access = Access()
    access.register({KEY: {"function": "Fn", "statements": list(statements)}})
    return access


def test_wildcards_match_actions_case_insensitively_and_resources_exactly() -> None:
    queue = ARN.format("sqs") + "q"
    access = registered({"Effect": "Allow", "Action": ["SQS:SendMessage*"], "Resource": [queue]})

    assert access.denial(environ(), [Need("sqs:SendMessage", queue)]) is None
    refused = access.denial(environ(), [Need("sqs:SendMessage", queue.upper())])
    assert refused is not None and "not authorized to perform: sqs:SendMessage" in refused


def test_a_deny_wins_over_an_allow() -> None:
    table = ARN.format("dynamodb") + "table/T"
    access = registered(
        {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": [table]},
        {"Effect": "Deny", "Action": ["dynamodb:DeleteItem"], "Resource": ["*"]},
    )

    assert access.denial(environ(), [Need("dynamodb:PutItem", table)]) is None
    assert access.denial(environ(), [Need("dynamodb:DeleteItem", table)]) is not None


def test_a_call_needing_two_things_is_refused_if_either_is_missing() -> None:
    table = ARN.format("dynamodb") + "table/"
    access = registered({"Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": [table + "A"]})

    refused = access.denial(
        environ(), [Need("dynamodb:PutItem", table + "A"), Need("dynamodb:PutItem", table + "B")]
    )

    assert refused is not None and table + "B" in refused


def test_unregistered_keys_are_not_checked() -> None:
    access = registered()

    assert not access.checks(
        {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAOTHER/x/y/z/aws4_request"}
    )
    assert access.checks(environ())
