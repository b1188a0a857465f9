from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, Field

from wxsub import wiring
from wxsub.http.models import error_responses
from wxsub.observability import metrics

router = Router()


class LoginBody(BaseModel):
    code: str = Field(min_length=1, max_length=256, description="The code wx.login resolved with")


class LoginAnswer(BaseModel):
    token: str = Field(description="Session token (HS256 JWT) for the session routes")
    openid: str
    expires_in: int = Field(description="Seconds until the session token expires")


@router.post(
    "/login",
    summary="Exchange a wx.login code for a session token",
    tags=["session"],
    responses={
        200: {"description": "Logged in", "content": {"application/json": {"model": LoginAnswer}}},
        **error_responses(400, 403, 415, 422, 429, 503),
    },
)
def login(body: LoginBody) -> LoginAnswer:
    result = wiring.login_service().login(body.code)
    metrics.add_metric(name="Logins", unit="Count", value=1)
    return LoginAnswer(token=result.token, openid=result.openid, expires_in=result.expires_in)
