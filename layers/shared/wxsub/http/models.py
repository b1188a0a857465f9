"""Shared OpenAPI pieces: the error body and the security requirements of each route kind."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# a template's alias (PUT /templates/{id}/alias), accepted where a template_id is
TemplateAlias = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
# a message's keyword (thing1, time2, ...), in POST /messages and POST /campaigns
Keyword = Annotated[str, StringConstraints(pattern=r"^[a-z_]+[0-9]+$", max_length=64)]


class DataValue(BaseModel):
    """A keyword's value as WeChat writes it: {"value": "..."}."""

    model_config = ConfigDict(extra="forbid")
    value: str


class NamesATemplate(Protocol):
    template_id: str | None
    template: str | None


def one_template[M: NamesATemplate](body: M) -> M:
    """A body's check that it names its template once: by ``template_id`` or by ``template`` (alias)."""
    if (body.template_id is None) == (body.template is None):
        raise ValueError("give either template_id or template (an alias), not both or neither")
    return body


def resolved_template(template_id: str | None, alias: str | None) -> str:
    """The template id a body names, its alias resolved (422 unknown_template when no template has it)."""
    if template_id is not None:
        return template_id
    from wxsub import wiring

    assert alias is not None, "one_template() checked the body"
    return wiring.template_aliases().resolve(alias)


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
