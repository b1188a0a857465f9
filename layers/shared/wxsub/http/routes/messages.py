from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from wxsub import wiring
from wxsub.errors import NotFound
from wxsub.http.app import json_response
from wxsub.http.models import (
    IAM,
    DataValue,
    Keyword,
    TemplateAlias,
    error_responses,
    one_template,
    resolved_template,
)
from wxsub.services.idempotent import send_idempotently
from wxsub.services.send import SendRequest

router = Router()


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openid: str = Field(min_length=1, max_length=128)
    template_id: str | None = Field(default=None, min_length=1, max_length=128)
    template: TemplateAlias | None = Field(
        default=None, description="A template's alias, in place of template_id"
    )
    data: dict[Keyword, str | DataValue] = Field(
        min_length=1, description='Keyword → value, as "thing1": "..." or "thing1": {"value": "..."}'
    )
    page: str | None = Field(default=None, max_length=1024, description="Page opened from the card")
    miniprogram_state: Literal["developer", "trial", "formal"] | None = Field(
        default=None, description="Defaults to developer on the dev stage, formal on prod"
    )
    lang: Literal["zh_CN", "en_US", "zh_HK", "zh_TW"] | None = None
    fit: bool = Field(default=False, description="Shorten over-long thing/name/character_string values")
    ledger: Literal["enforce", "ignore"] = Field(
        default="enforce", description="ignore: call WeChat even when the ledger holds no grant"
    )

    _one_template = model_validator(mode="after")(one_template)

    def to_request(self) -> SendRequest:
        data = {k: v.value if isinstance(v, DataValue) else v for k, v in self.data.items()}
        return SendRequest(
            openid=self.openid,
            template_id=resolved_template(self.template_id, self.template),
            data=data,
            page=self.page,
            miniprogram_state=self.miniprogram_state,
            lang=self.lang,
            fit=self.fit,
            ledger=self.ledger,
            template_alias=self.template,
        )


class SentAnswer(BaseModel):
    status: Literal["sent"]
    message_id: str
    msgid: str | None = Field(
        description="WeChat's msgid, as a string: it exceeds 2**53 (null if WeChat named none)"
    )


@router.post(
    "/messages",
    summary="Send one subscription message",
    tags=["messages"],
    security=IAM,
    responses={
        200: {"description": "Sent", "content": {"application/json": {"model": SentAnswer}}},
        **error_responses(400, 403, 409, 415, 422, 429, 503, 504),
    },
)
def send_message(
    body: SendBody,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=256)] = None,
) -> Response[Any]:
    outcome = send_idempotently(
        wiring.send_service(), body.to_request(), idempotency_key, wiring.idempotency()
    )
    return json_response(outcome.status, outcome.body)


@router.get(
    "/messages/<message_id>",
    summary="The delivery record of one message",
    tags=["messages"],
    security=IAM,
    responses=error_responses(403, 404),
)
def get_message(
    message_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")],
) -> dict[str, Any]:
    delivery = wiring.deliveries().get(message_id)
    if delivery is None:
        raise NotFound(f"no message {message_id}")
    return dict(delivery.to_json())
