"""POST/GET /subscriptions: the mini program reports subscribe results and reads its grants.

GET /grants/{openid} (IAM): one user's grants, for an operator (``wxsub grants OPENID``).
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import wiring
from wxsub.http.app import new_resolver
from wxsub.http.routes import subscriptions
from wxsub.observability import logger, metrics, tracer

app = new_resolver([subscriptions.router])
wiring.subscription_service()  # built at cold start: a missing setting fails here, by name


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
