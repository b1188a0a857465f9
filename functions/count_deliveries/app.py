"""DeliveriesTable stream → campaign progress: a batch's status changes counted per campaign, once.

The event source filters the stream to campaign deliveries; the tally ignores anything else too.
A failure raises, so Lambda hands the same batch over again (its counts are added once, see
``wxsub.services.tally``).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import wiring
from wxsub.observability import logger, metrics, tracer

wiring.delivery_tally()  # built at cold start: a missing setting fails here, by name


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    try:
        counted = wiring.delivery_tally().apply(records)
    finally:
        wiring.events().flush()
    metrics.add_metric(name="DeliveryChangesCounted", unit="Count", value=len(records))
    return {"campaigns": len(counted), "records": len(records)}
