"""Schemathesis against docs/openapi.json on the local stack: no client input earns a 500.

Every operation is fuzzed with valid (positive) and invalid (negative) requests generated from
the checked-in OpenAPI document, IAM routes signed so the requests reach the handlers. 503 and
504 are WeChat's or the network's answers, not ours; everything else must be below 500.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
EXAMPLES = 40
# Negative generation needs a declared input to break; the push routes read WeChat's raw query
# and body (their own tests cover bad ones), so they are fuzzed positively only.
CASES = [
    pytest.param(op, mode, id=f"{mode.value} {op.method.upper()} {op.path}")
    for op in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE
    or any(len(part) for part in (op.body, op.query, op.path_parameters, op.headers))
]


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_no_generated_request_gets_a_server_error(
    stack: LocalStack, signed, operation: Any, mode: Any
) -> None:
    client = signed()
    server_errors: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode))
    def fuzz(case: Any) -> None:
        request = _request(case)
        if request is None:
            return
        answer = client.request(case.method, case.formatted_path, **request)
        if answer.status_code >= 500 and answer.status_code not in (503, 504):
            server_errors.append(f"{case.method} {case.formatted_path} {request} -> {answer.status_code}")

    fuzz()

    assert server_errors == []


def _request(case: Any) -> dict[str, Any] | None:
    """The httpx arguments for a generated case; None for headers no HTTP client can send."""
    headers = {str(k): str(v) for k, v in (case.headers or {}).items()}
    options: dict[str, Any] = {"params": case.query or None}
    body = case.body
    if body is not None and type(body).__name__ != "NotSet":
        options["content"] = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        headers.setdefault("content-type", "application/json")
    try:
        httpx.Request("GET", "http://check", headers=headers)
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    options["headers"] = headers
    return options
