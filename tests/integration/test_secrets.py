"""Secrets stay out of logs and answers, with logging turned up as a developer would debug."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wx_flows import ONE_TIME, accept, fault, message, new_code, sandbox, stored_token

from local.sigv4 import SigV4Auth
from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loud_stack(local_env: dict[str, str]) -> Iterator[LocalStack]:
    """Root logging at INFO in every function and ``POWERTOOLS_LOG_LEVEL=DEBUG``."""
    with LocalStack(
        ROOT / "template.yaml",
        env=local_env,
        parameters={"LogLevel": "DEBUG", "WeChatTimeoutSeconds": "2"},
        root_log_level="INFO",
    ) as running:
        yield running


def test_no_app_secret_session_key_or_access_token_in_any_output_or_answer(loud_stack: LocalStack) -> None:
    answers: list[str] = []
    api = httpx.Client(base_url=loud_stack.api_url, timeout=60, event_hooks={"response": [_keep(answers)]})
    iam = httpx.Client(
        base_url=loud_stack.api_url,
        timeout=60,
        auth=SigV4Auth(*loud_stack.credentials, loud_stack.region),
        event_hooks={"response": [_keep(answers)]},
    )
    code, openid = new_code(loud_stack)
    login = api.post("/login", json={"code": code})
    api.post("/login", json={"code": code})
    api.post("/login", json={"code": "forged-code"})
    token = login.json()["token"]
    accept(loud_stack, openid)
    api.post(
        "/subscriptions",
        json={"errMsg": "requestSubscribeMessage:ok", ONE_TIME: "accept"},
        headers={"Authorization": f"Bearer {token}"},
    )
    api.get("/subscriptions", headers={"Authorization": f"Bearer {token}"})
    with sandbox(loud_stack) as sb:
        sb.post("/sandbox/tokens/invalidate")
    sent = iam.post("/messages", json=message(openid), headers={"Idempotency-Key": "loud-1"})
    fault(loud_stack, errcode=-1, count=3)
    iam.post("/messages", json=message(openid, ledger="ignore"))
    iam.get(f"/messages/{sent.json()['message_id']}")
    iam.post("/templates/sync")
    iam.get("/templates")
    loud_stack.run_schedule("RefreshTokenFunction")
    assert loud_stack.sandbox is not None
    loud_stack.sandbox.wait_for_pushes(20)

    with sandbox(loud_stack) as sb:
        session_key = sb.get(f"/sandbox/users/{openid}").json()["session_key"]
    secrets = {
        "AppSecret": loud_stack.secure_strings[loud_stack.description.parameters["AppSecretParam"]],
        "session signing key": loud_stack.secure_strings[
            loud_stack.description.parameters["SessionKeyParam"]
        ],
        "push Token": loud_stack.secure_strings[loud_stack.description.parameters["PushTokenParam"]],
        "session_key": session_key,
        "access token": stored_token(loud_stack)["access_token"],
    }
    output = "\n".join(loud_stack.logs())
    assert sent.status_code == 200, sent.text
    assert '"level":"DEBUG"' in output, "POWERTOOLS_LOG_LEVEL=DEBUG did not reach the functions"
    leaked = {name for name, value in secrets.items() if value in output or any(value in a for a in answers)}
    assert leaked == set()


def _keep(answers: list[str]):
    def hook(response: httpx.Response) -> None:
        response.read()
        answers.append(response.text)

    return hook
