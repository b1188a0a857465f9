"""Least privilege on the local AWS: a function may make only the calls its template Policies grant.

Each function signs with its own access key; the local AWS front checks each call's IAM action and
resource against that function's statements (SAM policy templates expanded by SAM's translator),
and refuses the rest as AWS does, with AccessDenied. What was granted but never used is listed.
"""

from __future__ import annotations

import pytest
from wx_flows import aws_client

from local.policies import function_credentials
from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_a_call_the_policy_grants_goes_through(fixture_stack: LocalStack) -> None:
    assert fixture_stack.invoke("ReachFunction", {"call": "get"}) == {"ok": True}
    assert fixture_stack.invoke("ReachFunction", {"call": "send"}) == {"ok": True}


def test_a_write_on_a_table_the_policy_only_lets_it_read_is_access_denied(fixture_stack: LocalStack) -> None:
    answer = fixture_stack.invoke("ReachFunction", {"call": "put"})

    assert answer["ok"] is False
    assert answer["code"] == "AccessDeniedException"
    table_arn = f"arn:aws:dynamodb:{fixture_stack.region}:123456789012:table/wxsub-local-EventsTable"
    assert f"not authorized to perform: dynamodb:PutItem on resource: {table_arn}" in answer["message"]


def test_an_event_bus_the_policy_does_not_name_is_access_denied(fixture_stack: LocalStack) -> None:
    answer = fixture_stack.invoke("ReachFunction", {"call": "publish"})

    assert (answer["ok"], answer["code"]) == (False, "AccessDeniedException")
    assert "events:PutEvents" in answer["message"] and "event-bus/default" in answer["message"]


def test_each_function_signs_with_its_own_key_and_the_callers_own_key_is_not_checked(
    fixture_stack: LocalStack,
) -> None:
    reach_key, _ = function_credentials("ReachFunction")
    tick_key, _ = function_credentials("TickFunction")
    assert reach_key != tick_key and len(reach_key) == 20
    assert fixture_stack.credentials[0] not in (reach_key, tick_key)

    # the test's own client (the stack's credentials) may write where ReachFunction may not
    dynamodb = aws_client(fixture_stack, "dynamodb")
    dynamodb.put_item(TableName="wxsub-local-EventsTable", Item={"pk": {"S": "by-test"}, "kind": {"S": "t"}})


def test_granted_but_unused_permissions_are_listed_per_function(fixture_stack: LocalStack) -> None:
    fixture_stack.invoke("ReachFunction", {"call": "get"})

    report = fixture_stack.permissions()["ReachFunction"]

    table_arn = f"arn:aws:dynamodb:{fixture_stack.region}:123456789012:table/wxsub-local-EventsTable"
    assert ["dynamodb:GetItem", table_arn] in report["granted"]
    assert ["dynamodb:GetItem", table_arn] not in report["unused"]
    assert ["dynamodb:Scan", table_arn] in report["unused"]
    assert ["dynamodb:Query", table_arn + "/index/*"] in report["unused"]
