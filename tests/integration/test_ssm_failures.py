"""SSM read failures told apart (issue 14): missing, or unavailable for now (then retried later,
and the access token last read keeps serving). Against the local AWS, its faults injected there;
the stores are built as the functions build them (Powertools' provider on a botocore client with
the product's retry settings)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SSMProvider

from local.policies import function_credentials
from local.stack import LocalStack
from wxsub import errors
from wxsub.stores.parameters import SecretStore, TokenStore
from wxsub.wiring import AWS_CONFIG

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def aws(fixture_stack: LocalStack) -> Iterator[LocalStack]:
    fixture_stack.clear_aws_faults()
    yield fixture_stack
    fixture_stack.clear_aws_faults()


def _ssm(stack: LocalStack) -> Any:
    return boto3.client(
        "ssm",
        endpoint_url=stack.aws_endpoint,
        region_name=stack.region,
        aws_access_key_id=stack.credentials[0],
        aws_secret_access_key=stack.credentials[1],
        config=AWS_CONFIG,
    )


def _name(kind: str) -> str:
    return f"/itest/ssm/{kind}-{uuid.uuid4().hex[:8]}"


def test_a_parameter_never_put_is_missing_and_named(aws: LocalStack) -> None:
    secrets = SecretStore(SSMProvider(boto3_client=_ssm(aws)))
    name = _name("absent")

    assert secrets.get_optional(name) == ""
    with pytest.raises(errors.Misconfigured, match=name):
        secrets.get(name)


def test_a_throttled_secret_is_unavailable_for_now_not_missing(aws: LocalStack) -> None:
    ssm = _ssm(aws)
    name = _name("secret")
    ssm.put_parameter(Name=name, Value="s3cret-value", Type="SecureString")
    aws.aws_fault("GetParameter", parameter=name, count=3, error="throttle")

    with pytest.raises(errors.StorageUnavailable) as refused:
        SecretStore(SSMProvider(boto3_client=ssm)).get(name)

    assert "s3cret" not in str(refused.value)
    assert [f["left"] for f in aws.aws_faults()] == [0]  # botocore tried three times, backing off
    assert SecretStore(SSMProvider(boto3_client=ssm)).get(name) == "s3cret-value"


def test_the_token_last_read_serves_on_while_ssm_is_throttled_unless_forced_past_it(aws: LocalStack) -> None:
    ssm = _ssm(aws)
    name = _name("token")
    expires_at = int(time.time()) + 3600
    ssm.put_parameter(
        Name=name,
        Value=json.dumps({"access_token": "tok-1", "expires_at": expires_at}),
        Type="SecureString",
    )
    store = TokenStore(SSMProvider(boto3_client=ssm), ssm, name, cache_seconds=0)
    first = store.get()
    aws.aws_fault("GetParameter", parameter=name, count=6, error="throttle")

    served = store.get()
    with pytest.raises(errors.StorageUnavailable):
        store.get(force=True)

    assert first is not None and served == first
    assert [f["left"] for f in aws.aws_faults()] == [0]  # one read of three attempts each, no more


def test_a_token_never_put_is_none(aws: LocalStack) -> None:
    ssm = _ssm(aws)
    assert TokenStore(SSMProvider(boto3_client=ssm), ssm, _name("none"), cache_seconds=0).get() is None


def test_a_token_write_iam_refuses_is_misconfigured_naming_the_parameter(aws: LocalStack) -> None:
    # ReachFunction's policy grants no SSM at all: the local AWS refuses its calls as IAM would.
    key, secret = function_credentials("ReachFunction")
    ssm = boto3.client(
        "ssm",
        endpoint_url=aws.aws_endpoint,
        region_name=aws.region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=AWS_CONFIG,
    )
    name = _name("token")
    store = TokenStore(SSMProvider(boto3_client=ssm), ssm, name, cache_seconds=0)

    with pytest.raises(errors.Misconfigured, match=f"{name} may not be written") as refused:
        store.put("tok-new", 7200)

    assert "tok-new" not in str(refused.value)
