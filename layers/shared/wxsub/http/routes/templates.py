from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from wxsub import wiring
from wxsub.errors import UnknownTemplate
from wxsub.http.models import IAM, TemplateAlias, error_responses

router = Router()


@router.get(
    "/templates",
    summary="The template registry: keywords, rules, limits and enum values",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 503),
)
def list_templates() -> dict[str, Any]:
    names = wiring.template_aliases().by_template()
    templates = [t.to_json() | {"alias": names.get(t.template_id)} for t in wiring.template_store().all()]
    return {"templates": templates}


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


# -- WeChat's public library, and the account's private templates --------------------------------

CategoryIds = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,9}(,[0-9]{1,9}){0,29}$", description="Category ids, comma-separated"),
]


class NewTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tid: int = Field(ge=1, description="The library title's id (GET /templates/library)")
    kids: list[int] = Field(min_length=2, max_length=5, description="2 to 5 keyword ids, in order")
    scene: str = Field(min_length=1, max_length=15, description="What the message is for (sceneDesc)")
    alias: TemplateAlias | None = Field(default=None, description="A name for it, e.g. order_shipped")


@router.get(
    "/templates/library/categories",
    summary="The account's categories in WeChat's public template library",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 503),
)
def library_categories() -> dict[str, Any]:
    return {"categories": wiring.template_library().categories()}


@router.get(
    "/templates/library",
    summary="Search the public library's titles by category and keyword (cached for an hour)",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 422, 503),
)
def library_titles(
    category: CategoryIds = None,
    keyword: Annotated[str, Query(max_length=30, description="Part of a title, e.g. 发货")] = "",
    start: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
) -> dict[str, Any]:
    ids = [int(part) for part in category.split(",")] if category else []
    return wiring.template_library().search(ids, keyword, start, limit)


@router.get(
    "/templates/library/<tid>",
    summary="A library title with its keywords (kid, name, example, rule)",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 422, 503),
)
def library_title(tid: Annotated[int, Path(ge=1, le=10**9)]) -> dict[str, Any]:
    return wiring.template_library().title(tid)


@router.post(
    "/templates",
    summary="Add a library title with chosen keywords to the account's templates, and to the registry",
    tags=["templates"],
    security=IAM,
    responses={
        201: {"description": "Added: the template as the registry holds it"},
        **error_responses(403, 409, 422, 503),
    },
)
def add_template(body: NewTemplate) -> Response[dict[str, Any]]:
    added = wiring.template_library().add(body.tid, body.kids, body.scene, body.alias)
    return Response(status_code=201, content_type="application/json", body=added)


@router.delete(
    "/templates/<template_id>",
    summary="Delete a template from the account (WeChat's deltemplate) and from the registry",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 422, 503),
)
def delete_template(
    template_id: Annotated[
        str,
        Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$", description="A template id or alias"),
    ],
) -> dict[str, Any]:
    return wiring.template_library().delete(template_id)


class AliasBody(BaseModel):
    alias: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Lowercase letters, digits and _, e.g. order_shipped"
    )


@router.put(
    "/templates/<template_id>/alias",
    summary="Name a template of the registry (console-added ones too); sends and campaigns may use the name",
    tags=["templates"],
    security=IAM,
    responses=error_responses(403, 409, 422, 503),
)
def set_alias(
    template_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")],
    body: AliasBody,
) -> dict[str, Any]:
    template = wiring.registry().lookup(template_id)
    if template is None:
        raise UnknownTemplate(f"the registry has no template {template_id} (POST /templates/sync?)")
    wiring.template_aliases().set(template.template_id, body.alias)
    return template.to_json() | {"alias": body.alias}
