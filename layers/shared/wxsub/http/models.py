"""Shared OpenAPI pieces: the error body and the security requirements of each route kind."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="Stable machine-readable code, e.g. no_grant")
    message: str = Field(description="Human-readable explanation")


def error_responses(*statuses: int) -> dict[int, Any]:
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {"application/json": {"model": ErrorBody}},
        }
        for status in statuses
    }


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, bad or expired credentials",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "The body is larger than the route accepts",
    415: "The body is not application/json",
    422: "The request cannot be processed as it is",
    429: "Too many requests",
    503: "WeChat unavailable or wxsub misconfigured; retry later",
    504: "Outcome unknown",
}

IAM: list[dict[str, list[str]]] = [{"aws_iam": []}]
SESSION: list[dict[str, list[str]]] = [{"session": []}]
