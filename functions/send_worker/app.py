"""SendQueue → subscription messages: one batch sent concurrently, exactly once per recipient.

The batch is handled as a whole (its sends run in parallel over one connection pool), so the
partial-failure answer is built here rather than by a per-record processor: the records left for
SQS to deliver again are those that provably sent nothing.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import wiring
from wxsub.observability import logger, metrics, tracer
from wxsub.services.worker import parse_record

wiring.send_worker()  # built at cold start: a missing setting fails here, by name


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    wiring.deadline().bind(context)
    batch = []
    for record in event.get("Records", []):
        queued = parse_record(record)
        if queued is None:
            logger.error("unreadable queued send dropped", message_id=record.get("messageId"))
            continue
        batch.append(queued)
    try:
        retry = wiring.send_worker().process(batch)
    finally:
        wiring.events().flush()
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in retry]}
