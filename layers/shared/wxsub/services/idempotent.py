"""Idempotency-Key for sends, on Powertools Idempotency, backed by the send's write-ahead record.

The first completed answer (2xx, 409, 422, 504) is stored under the key and returned to a retry
with the same key and body, without a second WeChat call. 503 and 429 are raised by the send
service, so Powertools deletes the in-progress record and the caller may retry with the same
key. The same key with a different body is refused (422 ``idempotency_key_reused``).

Powertools' record can be lost where the send's is not: a failed ``save_success``, a function
stopped mid-request. The key is also bound to the send's message_id in the deliveries table, so a
retry that gets past Powertools meets the first attempt's write-ahead record and never calls
WeChat again. When ``save_success`` fails after the send finished, the caller still gets the
send's own answer.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import errors
from wxsub.observability import logger
from wxsub.services.send import Outcome, SendRequest, SendService

KEY_LIFETIME_SECONDS = 24 * 3600


class IdempotentSends:
    def __init__(
        self, persistence: DynamoDBPersistenceLayer, expires_after_seconds: int = KEY_LIFETIME_SECONDS
    ):
        self._persistence = persistence
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="request",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
        )

    def register(self, context: LambdaContext) -> None:
        """Bounds an in-progress record by the invocation's remaining time, so a crash cannot pin a key."""
        self._config.register_lambda_context(context)

    def run(self, service: SendService, request: SendRequest, key: str) -> Outcome:
        finished: list[Outcome] = []

        @idempotent_function(
            data_keyword_argument="payload", persistence_store=self._persistence, config=self._config
        )
        def send_message(payload: dict[str, Any]) -> dict[str, Any]:
            outcome = service.send(request, key=key)
            finished.append(outcome)
            return outcome.stored()

        try:
            stored = send_message(payload={"key": key, "request": request.resolved()})
        except IdempotencyValidationError:
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body"
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise errors.SendInProgress(
                "a request with this Idempotency-Key is still in progress; retry shortly",
                **_message_id(service, key),
            ) from None
        except IdempotencyPersistenceLayerError as exc:
            if not finished:  # nothing was sent: the caller may retry with the same key
                logger.warning("the idempotency store failed", cause=type(exc.__cause__).__name__)
                raise errors.StorageUnavailable(
                    "wxsub's storage is unavailable right now; try again"
                ) from None
            logger.warning("the idempotency record could not be completed; the send's own record stands")
            return finished[0]
        return Outcome(int(stored["status"]), dict(stored["body"]))


def _message_id(service: SendService, key: str) -> dict[str, str]:
    try:
        bound = service.deliveries.bound(key)
    except Exception:  # the id is a courtesy; the 409 stands without it
        return {}
    return {"message_id": bound} if bound else {}


def send_idempotently(
    service: SendService, request: SendRequest, key: str | None, sends: IdempotentSends
) -> Outcome:
    if not key:
        return service.send(request)
    return sends.run(service, request, key)
