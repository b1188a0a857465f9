"""Schemathesis over docs/openapi.json on the running stack: no request earns a 5xx, every 4xx is JSON.

Every operation of the checked-in document is fuzzed with valid (positive) and invalid (negative)
requests, IAM routes signed so the requests reach the handlers. The sandbox is healthy throughout,
so no answer has a reason to be 5xx, 503 and 504 included. Every 4xx must carry a JSON object with
``error`` and ``message``, as the API promises. The number of requests actually sent is counted,
not assumed: hypothesis stops early on operations with few distinct inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from harness import SCALE, json_error
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from bench.reliability import OPENAPI

pytestmark = [pytest.mark.integration, pytest.mark.timeout(SCALE.timeout)]
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Negative generation needs a declared input to break; the push routes read WeChat's raw query
# and body (tests/reliability/test_push_fuzz.py fuzzes those), so they are fuzzed positively only.
PLAN = [
    (op, mode)
    for op in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE
    or any(len(part) for part in (op.body, op.query, op.path_parameters, op.headers))
]


def test_no_generated_request_gets_a_server_error_and_every_4xx_is_a_json_error(
    signed, scale, figure
) -> None:
    client = signed()
    sent: dict[str, int] = {}
    server_errors: list[str] = []
    bad_4xx: list[str] = []

    for operation, mode in PLAN:
        label = f"{mode.value} {operation.method.upper()} {operation.path}"
        sent[label] = _fuzz(client, operation, mode, scale.openapi_examples, server_errors, bad_4xx)

    cases = sum(sent.values())
    figure.record(
        OPENAPI,
        cases=cases,
        figure=f"{len(server_errors)} 5xx; {len(bad_4xx)} 4xx not JSON {{error, message}}",
        goal=f"≥ {scale.openapi_min_cases:,} cases; 0 5xx; every 4xx JSON {{error, message}}",
        at_goal=cases >= scale.openapi_min_cases and not server_errors and not bad_4xx,
        operations=sent,
    )
    assert server_errors == []
    assert bad_4xx == []
    assert cases >= scale.openapi_min_cases, sent


def _fuzz(
    client: httpx.Client,
    operation: Any,
    mode: Any,
    examples: int,
    server_errors: list[str],
    bad_4xx: list[str],
) -> int:
    """Sends up to ``examples`` generated requests for one operation; returns how many it sent."""
    sent = 0

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode))
    def fuzz(case: Any) -> None:
        nonlocal sent
        options = _request(case)
        if options is None:
            return
        answer = client.request(case.method, case.formatted_path, **options)
        sent += 1
        seen = f"{case.method} {case.formatted_path} {options} -> {answer.status_code} {answer.text[:200]}"
        if answer.status_code >= 500:
            server_errors.append(seen)
        elif answer.status_code >= 400 and not json_error(answer):
            bad_4xx.append(seen)

    fuzz()
    return sent


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
