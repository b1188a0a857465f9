"""ExpandQueue → the campaign's audience, a bounded number of pages at a time, into SendQueue.

Each record is one expansion step (or a resume). A step that must wait for the previous page's
record comes back in two seconds instead of after the queue's visibility timeout.
"""

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import wiring
from wxsub.observability import logger, metrics, tracer
from wxsub.services.expand import NotYet

NOT_YET_DELAY_SECONDS = 2
processor = BatchProcessor(event_type=EventType.SQS)
wiring.expander()  # built at cold start: a missing setting fails here, by name


def expand(record: SQSRecord) -> None:
    try:
        wiring.expander().handle(json.loads(record.body))
    except NotYet:
        wiring.expand_queue().postpone(record.receipt_handle, NOT_YET_DELAY_SECONDS)
        raise


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    wiring.deadline().bind(context)
    try:
        answer = process_partial_response(
            event=event, record_handler=expand, processor=processor, context=context
        )
        return dict(answer)
    finally:
        wiring.events().flush()
