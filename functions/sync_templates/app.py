"""The template registry: synced hourly by the scheduler, on demand and listed over HTTP.

A scheduled run lets failures raise so the scheduler's retry policy and DLQ act on them.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import wiring
from wxsub.http.app import new_resolver
from wxsub.http.routes import templates
from wxsub.observability import logger, metrics, tracer

app = new_resolver([templates.router])
wiring.template_sync()  # built at cold start: a missing setting fails here, by name


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "requestContext" in event:
        return app.resolve(event, context)
    result = wiring.template_sync().sync()
    return {"templates": result.templates, "removed": result.removed, "job": event.get("job")}
