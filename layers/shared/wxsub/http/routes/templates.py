from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from wxsub import wiring
from wxsub.http.models import IAM, error_responses

router = Router()


@router.get(
    "/templates",
    summary="The template registry: keywords, rules, limits and enum values",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 503),
)
def list_templates() -> dict[str, Any]:
    return {"templates": [t.to_json() for t in wiring.template_store().all()]}


@router.post(
    "/templates/sync",
    summary="Sync the registry from WeChat now",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 503),
)
def sync_templates() -> dict[str, Any]:
    result = wiring.template_sync().sync()
    return {"templates": result.templates, "removed": result.removed}
