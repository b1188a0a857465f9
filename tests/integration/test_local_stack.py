"""The product stack from template.yaml, as ``make local`` and ``make demo`` run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from wx_flows import aws_client

from local import running
from local.demo import Target, run
from local.sigv4 import MISMATCH
from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


def _ssm(stack: LocalStack) -> Any:
    return aws_client(stack, "ssm")


def _target(stack: LocalStack) -> Target:
    assert stack.sandbox_url is not None
    return Target(stack.api_url, stack.sandbox_url, stack.credentials, stack.region)


def test_secure_strings_sit_at_the_template_parameter_names(
    stack: LocalStack, local_env: dict[str, str]
) -> None:
    ssm = _ssm(stack)
    names = stack.description.parameters

    def value(parameter: str) -> str:
        answer = ssm.get_parameter(Name=names[parameter], WithDecryption=True)["Parameter"]
        assert answer["Type"] == "SecureString"
        return str(answer["Value"])

    assert value("AppSecretParam") == local_env["WECHAT_APP_SECRET"]
    assert value("PushTokenParam") == local_env["WECHAT_PUSH_TOKEN"]
    assert value("PushAesKeyParam") == local_env["WECHAT_PUSH_AES_KEY"]
    assert len(value("SessionKeyParam")) >= 32
    # written by the refresher, which ran once before the stack reported ready
    assert json.loads(value("AccessTokenParam"))["access_token"]


def test_every_table_of_the_template_exists(stack: LocalStack) -> None:
    client = aws_client(stack, "dynamodb")

    assert {t.name for t in stack.description.tables} <= set(client.list_tables()["TableNames"])


def test_the_iam_route_of_the_template_refuses_unsigned_and_wrongly_signed(
    stack: LocalStack, api: httpx.Client, signed
) -> None:
    unsigned = api.post("/messages", json={})
    wrong = signed(credentials=(stack.credentials[0], "wrong")).post("/messages", json={})

    assert (unsigned.status_code, unsigned.json()) == (403, {"message": "Forbidden"})
    assert (wrong.status_code, wrong.json()) == (403, {"message": MISMATCH})


def test_the_demo_flow_and_no_secret_in_any_log(
    reset_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the demo's steps run against the stack (login, grant, signed send, inbox)
    run(_target(reset_stack))

    # Then every step printed, and no process wrote a secret
    printed = capsys.readouterr().out
    assert "SbxOrderShipped1" in printed and '"status": "sent"' in printed
    token = json.loads(
        _ssm(reset_stack).get_parameter(
            Name=reset_stack.description.parameters["AccessTokenParam"], WithDecryption=True
        )["Parameter"]["Value"]
    )["access_token"]
    secrets = [*reset_stack.secure_strings.values(), reset_stack.credentials[1], token]
    logs = "\n".join(reset_stack.logs())
    assert [s for s in secrets if s in logs] == []


def test_reset_empties_the_sandbox_and_tables_but_the_stack_keeps_working(reset_stack: LocalStack) -> None:
    run(_target(reset_stack))

    reset_stack.reset()

    assert httpx.get(f"{reset_stack.sandbox_url}/sandbox/inbox").json()["messages"] == []
    run(_target(reset_stack))


@pytest.mark.parametrize("found_by", ["WXSUB_* variables", "the record make local writes"])
def test_make_demo_drives_a_running_stack(stack: LocalStack, found_by: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "AWS_", "WXSUB_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": stack.credentials[0],
        "AWS_SECRET_ACCESS_KEY": stack.credentials[1],
        "PYTHONPATH": f"layers/shared{os.pathsep}.",
    }
    port = int(stack.api_url.rsplit(":", 1)[1])
    if found_by == "WXSUB_* variables":
        env |= {"WXSUB_API_URL": stack.api_url, "WXSUB_SANDBOX_URL": stack.sandbox_url or ""}
    else:
        env["PORT"] = str(port)
        running.announce(stack, port)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "local.demo"],
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        running.record_path(port).unlink(missing_ok=True)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Using the running stack: API {stack.api_url}" in done.stdout
    assert "login -> grant -> send -> delivered" in done.stdout


def test_the_api_port_answers_lambdas_invoke_api_as_sam_local_start_lambda_does(stack: LocalStack) -> None:
    """boto3's Lambda client, pointed at the API's port, invokes a function by its logical id; an
    unknown function, a wrong secret and an error inside the function answer as Lambda does."""
    import boto3
    from botocore.exceptions import ClientError

    def lambda_client(secret: str) -> Any:
        return boto3.client(
            "lambda",
            endpoint_url=stack.api_url,
            region_name=stack.region,
            aws_access_key_id=stack.credentials[0],
            aws_secret_access_key=secret,
        )

    good = lambda_client(stack.credentials[1])
    checked = good.invoke(FunctionName="RefreshTokenFunction", Payload=b'{"job": "by-hand"}')
    result = json.loads(checked["Payload"].read())
    failed = good.invoke(FunctionName="LoginFunction", Payload=b'{"not": "an HTTP API event"}')
    with pytest.raises(ClientError) as unknown:
        good.invoke(FunctionName="NoSuchFunction", Payload=b"{}")
    with pytest.raises(ClientError) as wrong:
        lambda_client("not-the-secret").invoke(FunctionName="RefreshTokenFunction", Payload=b"{}")

    assert checked["StatusCode"] == 200 and "FunctionError" not in checked
    assert result["changed"] is False and 0 < result["expires_in"] <= 7200
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "KeyError"
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
