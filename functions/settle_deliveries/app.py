"""Scheduled every 5 minutes: settle sends whose outcome stayed open (unknown, or sending) with no sent event.

Failures raise, so EventBridge Scheduler's retry policy and dead-letter queue act on them.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import wiring
from wxsub.observability import logger, metrics, tracer

wiring.settle_unknown()  # built at cold start: a missing setting fails here, by name


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    wiring.deadline().bind(context)
    try:
        return {"given_up": wiring.settle_unknown().run(), "job": event.get("job")}
    finally:
        wiring.events().flush()
