"""Builds the API Gateway HTTP API resolver every function uses, and maps errors in one place.

Every error a caller sees is JSON ``{"error", "message"}``: product errors keep their status and
code; request validation failures become 422 ``invalid_request`` naming each field (400 when the
body is not JSON, or not even UTF-8); anything unexpected is a 500 with no detail, logged with its
trace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
from botocore.exceptions import BotoCoreError, ClientError

from wxsub.errors import ConfigurationError, Misconfigured, StorageUnavailable, WxsubError
from wxsub.observability import logger


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False),
        headers=headers,
    )


def error_response(error: WxsubError) -> Response[str]:
    return json_response(error.status, error.body())


def new_resolver(routers: Iterable[Router]) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(WxsubError)
    def _product_error(error: WxsubError) -> Response[str]:
        if error.status >= 500:
            logger.warning("request failed", error=error.code, status=error.status)
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        return _validation_response(error.errors())

    @app.exception_handler(ConfigurationError)
    def _misconfigured(error: ConfigurationError) -> Response[str]:
        logger.error("misconfigured", reason=str(error))
        return error_response(Misconfigured(f"wxsub is misconfigured: {error}"))

    @app.exception_handler([ClientError, BotoCoreError, IdempotencyPersistenceLayerError])
    def _storage(error: Exception) -> Response[str]:
        logger.warning("AWS call failed", error=type(error).__name__, code=_aws_code(error))
        return error_response(StorageUnavailable("wxsub's storage is unavailable right now; try again"))

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(_: UnicodeDecodeError) -> Response[str]:
        return json_response(400, {"error": "invalid_request", "message": "the body is not UTF-8 text"})

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return json_response(404, {"error": "not_found", "message": "no such route"})

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return json_response(500, {"error": "internal_error", "message": "internal error"})

    return app


def _aws_code(error: Exception) -> str | None:
    return str(error.response["Error"].get("Code")) if isinstance(error, ClientError) else None


def _validation_response(problems: Sequence[Any]) -> Response[str]:
    if any(p.get("type") == "json_invalid" for p in problems):
        return json_response(400, {"error": "invalid_request", "message": "the body is not valid JSON"})
    fields = []
    for problem in problems:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
        fields.append({"field": where, "problem": str(problem.get("msg") or problem.get("type"))})
    message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return json_response(422, {"error": "invalid_request", "message": message, "fields": fields})
