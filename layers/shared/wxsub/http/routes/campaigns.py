from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from wxsub import wiring
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
from wxsub.services.campaigns import CampaignSpec, Recipient, Window

router = Router()

Openid = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Clock = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")]
CampaignId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]
Data = dict[Keyword, str | DataValue]


def _plain(data: Data | None) -> dict[str, str]:
    return {k: v.value if isinstance(v, DataValue) else v for k, v in (data or {}).items()}


class RecipientBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openid: Openid
    data: Data | None = Field(default=None, description="Merged over the campaign's shared data")


class OpenidsAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openids: list[Openid] = Field(min_length=1)


class RecipientsAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipients: list[RecipientBody] = Field(min_length=1)


class WindowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Clock = Field(description="HH:MM or HH:MM:SS")
    end: Clock
    tz: str = Field(default="Asia/Shanghai", description="An IANA time zone")

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}") from None
        return tz

    @model_validator(mode="after")
    def _not_empty(self) -> WindowBody:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template_id: str | None = Field(default=None, min_length=1, max_length=128)
    template: TemplateAlias | None = Field(
        default=None, description="A template's alias, in place of template_id"
    )
    data: Data = Field(default_factory=dict, description="Shared keyword values for every recipient")
    page: str | None = Field(default=None, max_length=1024)
    miniprogram_state: Literal["developer", "trial", "formal"] | None = None
    lang: Literal["zh_CN", "en_US", "zh_HK", "zh_TW"] | None = None
    audience: Literal["granted"] | OpenidsAudience | RecipientsAudience = Field(
        description='"granted" (everyone holding a grant for the template), {"openids"} or {"recipients"}'
    )
    send_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with an offset or Z")
    window: WindowBody | None = None

    _one_template = model_validator(mode="after")(one_template)

    def to_spec(self) -> CampaignSpec:
        audience: str | tuple[Recipient, ...]
        if isinstance(self.audience, OpenidsAudience):
            audience = tuple(Recipient(openid) for openid in self.audience.openids)
        elif isinstance(self.audience, RecipientsAudience):
            audience = tuple(
                Recipient(r.openid, _plain(r.data) if r.data else None) for r in self.audience.recipients
            )
        else:
            audience = self.audience
        window = Window(self.window.start, self.window.end, self.window.tz) if self.window else None
        return CampaignSpec(
            template_id=resolved_template(self.template_id, self.template),
            data=_plain(self.data),
            audience=audience,
            page=self.page,
            miniprogram_state=self.miniprogram_state,
            lang=self.lang,
            send_at=int(self.send_at.timestamp()) if self.send_at else None,
            window=window,
            template_alias=self.template,
        )


class CampaignCounts(BaseModel):
    queued: int
    sent: int
    skipped: int
    failed: int
    unknown: int
    delivered: int
    cancelled: int
    held: int


class CampaignAnswer(BaseModel):
    campaign_id: str
    state: Literal["scheduled", "expanding", "running", "paused", "done", "cancelled"]
    counts: CampaignCounts
    failed: dict[str, int] = Field(description="Failed sends by reason")


_ANSWER: dict[str, Any] = {"application/json": {"model": CampaignAnswer}}


@router.post(
    "/campaigns",
    summary="Send one template to an audience through the send queue",
    tags=["campaigns"],
    security=IAM,
    responses={
        202: {"description": "Accepted", "content": _ANSWER},
        **error_responses(400, 403, 415, 422, 503),
    },
)
def create_campaign(
    body: CampaignBody,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=256)] = None,
) -> Response[Any]:
    campaign = wiring.campaign_service().create(body.to_spec(), idempotency_key)
    return json_response(202, campaign.to_json())


@router.get(
    "/campaigns/<campaign_id>",
    summary="A campaign's state and progress",
    tags=["campaigns"],
    security=IAM,
    responses={200: {"description": "Progress", "content": _ANSWER}, **error_responses(403, 404, 422)},
)
def get_campaign(campaign_id: CampaignId) -> dict[str, Any]:
    return wiring.campaign_service().get(campaign_id).to_json()


@router.delete(
    "/campaigns/<campaign_id>",
    summary="Cancel what is not yet sent",
    tags=["campaigns"],
    security=IAM,
    responses={200: {"description": "Cancelled", "content": _ANSWER}, **error_responses(403, 404, 422)},
)
def cancel_campaign(campaign_id: CampaignId) -> dict[str, Any]:
    return wiring.campaign_service().cancel(campaign_id).to_json()


@router.post(
    "/campaigns/<campaign_id>/resume",
    summary="Resume a paused campaign (after 45009, or before its window's schedule does)",
    tags=["campaigns"],
    security=IAM,
    responses={202: {"description": "Resuming", "content": _ANSWER}, **error_responses(403, 404, 409, 422)},
)
def resume_campaign(campaign_id: CampaignId) -> Response[Any]:
    return json_response(202, wiring.campaign_service().resume(campaign_id).to_json())
