"""Routes with ``Authorizer: AWS_IAM`` check SigV4 (service ``execute-api``) as API Gateway does."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from local.sigv4 import MISMATCH, UNKNOWN_KEY, SigV4Auth
from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _signed_request(stack: LocalStack, content: bytes, **auth_options: object) -> httpx.Request:
    auth = SigV4Auth(*stack.credentials, stack.region, **auth_options)  # type: ignore[arg-type]
    request = httpx.Request(
        "POST", f"{stack.api_url}/secure", content=content, headers={"content-type": "application/json"}
    )
    return next(auth.sync_auth_flow(request))


def test_a_signed_request_reaches_the_function_with_the_caller(
    fixture_stack: LocalStack, fixture_signed
) -> None:
    response = fixture_signed().post("/secure?b=2&a=1", json={"hello": "world"})

    assert response.status_code == 200
    iam = response.json()["authorizer"]["iam"]
    assert iam["accessKey"] == fixture_stack.credentials[0]
    assert iam["accountId"] == "123456789012"
    assert response.json()["body"] == '{"hello":"world"}'


def test_unsigned_is_forbidden(fixture_api: httpx.Client) -> None:
    response = fixture_api.post("/secure", json={})

    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_a_wrong_secret_does_not_match(fixture_stack: LocalStack, fixture_signed) -> None:
    client = fixture_signed(credentials=(fixture_stack.credentials[0], "not-the-secret"))

    response = client.post("/secure", json={})

    assert response.status_code == 403
    assert response.json() == {"message": MISMATCH}
    assert response.json()["message"].startswith("The request signature we calculated does not match")


def test_an_unknown_access_key_is_invalid(fixture_signed) -> None:
    response = fixture_signed(credentials=("AKIAUNKNOWN000000000", "whatever")).post("/secure", json={})

    assert response.status_code == 403
    assert response.json() == {"message": UNKNOWN_KEY}


def test_a_body_altered_after_signing_does_not_match(fixture_stack: LocalStack) -> None:
    # Given a request signed for one body
    signed = _signed_request(fixture_stack, b'{"amount": 1}')

    # When another body is sent under the same signature
    tampered = httpx.Request(
        "POST", signed.url, content=b'{"amount": 9}', headers={k: v for k, v in signed.headers.items()}
    )
    with httpx.Client() as client:
        response = client.send(tampered)

    # Then API Gateway's signature mismatch answer comes back
    assert response.status_code == 403
    assert response.json() == {"message": MISMATCH}
    with httpx.Client() as client:
        assert client.send(signed).status_code == 200


@pytest.mark.parametrize(
    ("offset", "status", "message"),
    [
        (timedelta(minutes=-20), 403, "Signature expired: "),
        (timedelta(minutes=20), 403, "Signature not yet current: "),
        (timedelta(minutes=-10), 200, None),
        (timedelta(minutes=10), 200, None),
    ],
)
def test_a_signature_is_valid_for_15_minutes_either_way(
    fixture_stack: LocalStack, offset: timedelta, status: int, message: str | None
) -> None:
    request = _signed_request(fixture_stack, b"{}", clock=lambda: datetime.now(UTC) + offset)

    with httpx.Client() as client:
        response = client.send(request)

    assert response.status_code == status
    if message:
        assert response.json()["message"].startswith(message)
        assert response.json()["message"].endswith("15 min.)")


def test_a_signature_for_another_region_is_refused(fixture_stack: LocalStack) -> None:
    auth = SigV4Auth(*fixture_stack.credentials, "eu-west-1")

    response = httpx.post(f"{fixture_stack.api_url}/secure", json={}, auth=auth)

    assert response.status_code == 403
    assert "region" in response.json()["message"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_aws_sigv4_as_documented(fixture_stack: LocalStack) -> None:
    access_key, secret = fixture_stack.credentials

    def curl(user: str) -> str:
        return subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--aws-sigv4",
                f"aws:amz:{fixture_stack.region}:execute-api",
                "--user",
                user,
                "-H",
                "content-type: application/json",
                "-d",
                '{"from": "curl"}',
                f"{fixture_stack.api_url}/secure",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    assert curl(f"{access_key}:{secret}") == "200"
    assert curl(f"{access_key}:wrong") == "403"
