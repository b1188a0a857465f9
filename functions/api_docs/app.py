"""GET /openapi.json: one OpenAPI document for every route of the API."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub.http.openapi import docs_resolver

app = docs_resolver()


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
