"""GET /openapi.json: one OpenAPI document for every route of the API.

The document is built from the routes by ``make openapi`` and shipped beside this module, so a
cold start reads one file instead of importing every route and building the schema (a test
checks the shipped copy against the routes).
"""

import json
from pathlib import Path
from typing import Any

DOCUMENT = (Path(__file__).parent / "openapi.json").read_text(encoding="utf-8")
HEADERS = {"Content-Type": "application/json"}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    http = (event.get("requestContext") or {}).get("http") or {}
    if http.get("method") == "GET" and event.get("rawPath", http.get("path")) == "/openapi.json":
        return {"statusCode": 200, "headers": HEADERS, "body": DOCUMENT}
    body = {"error": "not_found", "message": "this function serves GET /openapi.json only"}
    return {"statusCode": 404, "headers": HEADERS, "body": json.dumps(body)}
