"""The OpenAPI document of the whole API, built from every route module's Router.

``docs/openapi.json`` is this document checked in; a test fails when the two drift
(regenerate with ``make openapi``).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

from wxsub import __version__
from wxsub.http.app import json_response, new_resolver
from wxsub.http.routes import all_routers

TITLE = "wxsub"
DESCRIPTION = (
    "Send WeChat Mini Program subscription messages: log users in, keep their grants, "
    "validate and send idempotently. IAM routes take AWS SigV4 (service execute-api); "
    "session routes take `Authorization: Bearer <token from POST /login>`."
)
SECURITY_SCHEMES: dict[str, Any] = {
    "aws_iam": APIKey.model_validate(
        {
            "type": "apiKey",
            "name": "Authorization",
            "in": APIKeyIn.header,
            "description": "AWS Signature Version 4 for the service execute-api",
        }
    ),
    "session": HTTPBearer(bearerFormat="JWT", description="Session token from POST /login"),
}


def document() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        _schema_resolver().get_openapi_json_schema(
            title=TITLE, version=__version__, description=DESCRIPTION, security_schemes=SECURITY_SCHEMES
        )
    )
    return schema


def _schema_resolver() -> APIGatewayHttpResolver:
    return new_resolver(all_routers())


def docs_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    body = document()

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Any:
        return json_response(200, body)

    return app


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, ensure_ascii=False))
