"""Builds the API Gateway HTTP API resolver every function uses, and maps errors in one place.

Every error a caller sees is JSON ``{"error", "message"}``: product errors keep their status and
code; request validation failures become 422 ``invalid_request`` naming each field (400 when the
body is not JSON, or not even UTF-8); anything unexpected is a 500 with no detail, logged with its
trace.

Before any route runs, :class:`Resolver` looks at the body once: a body sent as another media type
than JSON to a JSON route is 415 ``unsupported_media_type``; a push body over
:data:`MAX_RAW_BODY` is 413 ``payload_too_large``; a JSON body nested deeper than
:data:`MAX_DEPTH` levels, or holding text that cannot be encoded as UTF-8 (a lone surrogate, sent
escaped), is 400 ``invalid_request`` (see :mod:`wxsub.jsontext`). Nothing behind it is reached,
so such a request costs no AWS call, no signature check and no log line of an exception.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from botocore.exceptions import BotoCoreError, ClientError

from wxsub import jsontext
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


MAX_DEPTH = jsontext.MAX_DEPTH
# routes whose body is not JSON by contract: WeChat pushes XML as well as JSON
RAW_BODY_ROUTES = frozenset({"/wechat/push"})
# WeChat's pushes are a few hundred bytes; anything near this size is not from WeChat, and is
# refused before it is parsed (a large XML body costs many times its size to parse).
MAX_RAW_BODY = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Resolver(APIGatewayHttpResolver):
    """The HTTP API resolver with the body guard in front of every route."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        refused = body_problem(event)
        if refused is None:
            return super().resolve(event, context)
        status, body = refused
        return {
            "statusCode": status,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, ensure_ascii=False),
            "isBase64Encoded": False,
        }


def body_problem(event: Mapping[str, Any]) -> tuple[int, dict[str, str]] | None:
    """Why a request's body is refused before its route runs (status, error body), or None."""
    http = (event.get("requestContext") or {}).get("http") or {}
    raw = event.get("body")
    if not raw or str(http.get("method", "")).upper() not in _BODY_METHODS:
        return None
    try:
        text = base64.b64decode(raw).decode("utf-8") if event.get("isBase64Encoded") else str(raw)
    except (ValueError, UnicodeDecodeError):
        return 400, _invalid("the body is not UTF-8 text")
    json_route = http.get("path") not in RAW_BODY_ROUTES
    if json_route:
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            message = f"this route takes application/json, not {media[:100]}"
            return 415, {"error": "unsupported_media_type", "message": message}
    elif len(text) > MAX_RAW_BODY:
        message = f"a WeChat push is at most {MAX_RAW_BODY // 1024} KiB; this body has {len(text)} characters"
        return 413, {"error": "payload_too_large", "message": message}
    elif not text.lstrip().startswith(("{", "[")):
        return None  # a push in XML
    return _json_problem(text)


def _json_problem(text: str) -> tuple[int, dict[str, str]] | None:
    try:
        value = json.loads(text)
    except RecursionError:  # nested past the interpreter's own limit
        return 400, _invalid(jsontext.TOO_DEEP)
    except ValueError:  # not JSON: the route's validation names the problem
        return None
    found = jsontext.problem(value)
    return None if found is None else (400, _invalid(found))


def _invalid(message: str) -> dict[str, str]:
    return {"error": "invalid_request", "message": message}


def new_resolver(routers: Iterable[Router]) -> APIGatewayHttpResolver:
    app = Resolver(enable_validation=True)
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

    @app.exception_handler([ClientError, BotoCoreError])
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
