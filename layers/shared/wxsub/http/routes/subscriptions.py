from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import BaseModel, Field, StringConstraints

from wxsub import wiring
from wxsub.http.models import IAM, SESSION, error_responses
from wxsub.sessions import bearer_token

router = Router()

# errMsg plus at most 5 template ids per wx.requestSubscribeMessage call (3 before base library
# 3.12.1), with room for keys a newer base library may add.
MAX_KEYS = 10

TemplateKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Status = Annotated[str, StringConstraints(max_length=256)]


class GrantView(BaseModel):
    openid: str
    template_id: str
    one_time: int = Field(description="One-time sends left")
    long_term: bool = Field(description="Long-term subscription on")
    last_status: str | None
    updated_at: int | None


class GrantsAnswer(BaseModel):
    openid: str
    grants: list[GrantView]


class OperatorGrantView(GrantView):
    alias: str | None = Field(description="The template's alias, if it has one")


class OperatorGrantsAnswer(BaseModel):
    openid: str
    grants: list[OperatorGrantView]


def _caller() -> str:
    return wiring.session_signer().verify(bearer_token(router.current_event.headers.get("authorization")))


_RESPONSES: dict[int, Any] = {
    200: {"description": "The caller's grants", "content": {"application/json": {"model": GrantsAnswer}}},
    **error_responses(401, 422, 429, 503),
}


@router.post(
    "/subscriptions",
    summary="Report what wx.requestSubscribeMessage resolved with",
    description="Send the success object as it is: {errMsg, <tmplId>: accept|reject|ban|filter|accept…}.",
    tags=["session"],
    security=SESSION,
    responses={**_RESPONSES, **error_responses(415)},
)
def report(
    result: Annotated[dict[TemplateKey, Status], Body(embed=False, max_length=MAX_KEYS)],
) -> dict[str, Any]:
    openid = _caller()
    grants = wiring.subscription_service().report(openid, result)
    return {"openid": openid, "grants": grants}


@router.get(
    "/subscriptions",
    summary="The caller's grants per template",
    tags=["session"],
    security=SESSION,
    responses=_RESPONSES,
)
def grants() -> dict[str, Any]:
    openid = _caller()
    return {"openid": openid, "grants": wiring.subscription_service().grants(openid)}


@router.get(
    "/subscriptions/templates",
    summary="The template aliases, for the mini program to ask for templates by name",
    tags=["session"],
    security=SESSION,
    responses=error_responses(401, 503),
)
def aliases() -> dict[str, Any]:
    _caller()
    return {"templates": wiring.template_aliases().all()}


@router.get(
    "/grants/<openid>",
    summary="One user's grants per template, for an operator (the alias beside each template)",
    tags=["subscriptions"],
    security=IAM,
    responses={
        200: {
            "description": "The user's grants",
            "content": {"application/json": {"model": OperatorGrantsAnswer}},
        },
        **error_responses(403, 422),
    },
)
def user_grants(openid: Annotated[str, Path(min_length=1, max_length=128)]) -> dict[str, Any]:
    alias_of = wiring.template_aliases().by_template()
    grants = wiring.subscription_service().grants(openid)
    return {"openid": openid, "grants": [g | {"alias": alias_of.get(g["template_id"])} for g in grants]}
