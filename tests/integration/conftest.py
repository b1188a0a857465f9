"""Fixtures for tests that drive a local stack over loopback sockets.

``stack`` runs the real ``template.yaml`` (moto, the WeChat sandbox, every function) once per
session on free ports; ``reset_stack`` empties its tables, queues and sandbox between tests in
milliseconds; ``signed`` builds httpx clients that sign with SigV4 for IAM routes; ``api`` is an
unsigned client. ``fixture_stack`` runs ``fixtures/template.yaml`` instead: the local runtime's
own tests use it so they do not depend on the product handlers.

The stacks read a fixed environment, never the developer's: the secrets below are what the
SecureStrings hold, so a test can assert none of them reaches a log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.sigv4 import SigV4Auth
from local.stack import PERMISSION_REPORTS, LocalStack

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_ENV = {
    "WECHAT_APP_SECRET": "itest-app-secret-5f0c1e9a7b2d4c68",
    "WECHAT_PUSH_TOKEN": "itestPushToken8d1f",
    "WECHAT_PUSH_AES_KEY": "itestAesKey0123456789abcdefghijklmnopqrstuv",
    "AWS_ACCESS_KEY_ID": "AKIAITESTLOCAL000001",
    "AWS_SECRET_ACCESS_KEY": "itest-secret-access-key-0c4e1b7a",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# WeChat calls give up after 2 s, so a test of a hung send waits seconds, not the default 5.
PRODUCT_PARAMETERS = {"WeChatTimeoutSeconds": "2"}

ClientFactory = Callable[..., httpx.Client]


@pytest.fixture(scope="session")
def local_env() -> dict[str, str]:
    """The environment the stacks read: the local secrets the SecureStrings hold."""
    return dict(TEST_ENV)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The product stack from template.yaml, with the sandbox, on free ports.

    Each function may call only what its Policies grant (the local AWS checks, see docs/local.md).
    """
    with LocalStack(ROOT / "template.yaml", env=TEST_ENV, parameters=PRODUCT_PARAMETERS) as running:
        yield running


@pytest.fixture
def reset_stack(stack: LocalStack) -> LocalStack:
    """``stack`` with empty tables, queues and sandbox state (SSM and warm functions kept)."""
    stack.reset()
    return stack


@pytest.fixture(scope="session")
def fixture_stack() -> Iterator[LocalStack]:
    """The small fixture template's stack: routes, an IAM route, a schedule, an SQS source."""
    with LocalStack(FIXTURES / "template.yaml", env=TEST_ENV, sandbox=False) as running:
        yield running


def _client_factory(target: LocalStack) -> Iterator[ClientFactory]:
    clients: list[httpx.Client] = []

    def make(*, credentials: tuple[str, str] | None = None, **options: Any) -> httpx.Client:
        access_key, secret = credentials or target.credentials
        options.setdefault("timeout", 30)
        client = httpx.Client(
            base_url=target.api_url, auth=SigV4Auth(access_key, secret, target.region), **options
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def signed(stack: LocalStack) -> Iterator[ClientFactory]:
    """``signed()`` → an httpx client on the API that signs every request (``credentials=`` to override)."""
    yield from _client_factory(stack)


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


@pytest.fixture
def fixture_signed(fixture_stack: LocalStack) -> Iterator[ClientFactory]:
    yield from _client_factory(fixture_stack)


@pytest.fixture
def fixture_api(fixture_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fixture_stack.api_url, timeout=30) as client:
        yield client


def unused_permissions(reports: list[tuple[Path, dict[str, Any]]]) -> dict[str, list[tuple[str, str]]]:
    """Per function of template.yaml: granted (action, resource) pairs that no stack of the session used."""
    unused: dict[str, set[tuple[str, str]]] = {}
    for template, report in reports:
        if template != ROOT / "template.yaml":
            continue
        for function, usage in report.items():
            pairs = {(action, resource) for action, resource in usage["unused"]}
            unused[function] = unused[function] & pairs if function in unused else pairs
    return {function: sorted(pairs) for function, pairs in sorted(unused.items()) if pairs}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List, per function, the permissions template.yaml grants that this run's tests never needed."""
    unused = unused_permissions(PERMISSION_REPORTS)
    if not unused:
        return
    terminalreporter.section("permissions template.yaml grants that no test of this run used")
    for function, pairs in unused.items():
        by_resource: dict[str, list[str]] = {}
        for action, resource in pairs:
            short = resource.split(":", 5)[-1].removeprefix("table/").removeprefix("parameter")
            by_resource.setdefault(short, []).append(action.split(":", 1)[-1])
        for resource, actions in sorted(by_resource.items()):
            terminalreporter.write_line(f"{function} {resource}: {' '.join(sorted(actions))}")
