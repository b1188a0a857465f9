"""The one place errors become HTTP answers: JSON ``{"error", "message"}``, never a trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router
from botocore.exceptions import ClientError, EndpointConnectionError

from wxsub.errors import (
    ConfigurationError,
    DeadlineReached,
    NoGrant,
    OutcomeUnknown,
    SendInProgress,
)
from wxsub.http.app import new_resolver

EVENT = json.loads((Path(__file__).resolve().parents[2] / "events" / "api_docs.json").read_text())

router = Router()


@router.get("/openapi.json")
def fails() -> Any:
    raise FAILURE["now"]


FAILURE: dict[str, Exception] = {}


class Context:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "r-1"


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (NoGrant("no grant"), 409, "no_grant"),
        (SendInProgress("still running", message_id="m-1"), 409, "send_in_progress"),
        (DeadlineReached("too little time left; nothing was sent"), 503, "wechat_unavailable"),
        (OutcomeUnknown("may have been sent", message_id="m-1"), 504, "outcome_unknown"),
        (ConfigurationError("the push Token is empty"), 503, "misconfigured"),
        (
            ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "table s3cr3t"}},
                "UpdateItem",
            ),
            503,
            "storage_unavailable",
        ),
        (
            EndpointConnectionError(endpoint_url="https://dynamodb.s3cr3t.amazonaws.com"),
            503,
            "storage_unavailable",
        ),
        (UnicodeDecodeError("utf-8", b"\xa3", 0, 1, "invalid start byte"), 400, "invalid_request"),
        (RuntimeError("boom at line 42 with secret s3cr3t"), 500, "internal_error"),
    ],
    ids=[
        "product-error",
        "send-in-progress",
        "deadline",
        "outcome-unknown",
        "configuration",
        "aws-client-error",
        "aws-unreachable",
        "not-utf8",
        "unexpected",
    ],
)
def test_each_failure_becomes_a_json_error_without_details_it_should_not_carry(
    failure: Exception, status: int, code: str
) -> None:
    FAILURE["now"] = failure

    answer = new_resolver([router]).resolve(dict(EVENT), Context())

    body = json.loads(answer["body"])
    assert (answer["statusCode"], body["error"]) == (status, code)
    assert body["message"]
    assert "Traceback" not in answer["body"] and "s3cr3t" not in answer["body"]
