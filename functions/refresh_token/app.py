"""Scheduled every minute: keep the WeChat access token in SSM fresh.

Failures raise, so EventBridge Scheduler's retry policy and dead-letter queue act on them.
An operator's ``{"force_refresh": true}`` (``wxsub token force-refresh``) invalidates the token at
once instead; a refusal (30 s spacing, 20 a day) is answered as ``{"forced": false, "error", ...}``.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wxsub import errors, wiring
from wxsub.observability import logger, metrics, tracer

wiring.refresher()  # built at cold start: a missing setting fails here, by name


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("force_refresh") is True:
        return _force(event)
    result = wiring.refresher().refresh()
    logger.info(
        "access token checked", changed=result.changed, expires_in=result.expires_in, job=event.get("job")
    )
    # the token's time left, each minute: an alarm fires when it runs low or stops being reported
    metrics.add_metric(name="AccessTokenSecondsLeft", unit="Seconds", value=result.expires_in)
    if result.changed:
        metrics.add_metric(name="AccessTokenRotated", unit="Count", value=1)
    return {"changed": result.changed, "expires_in": result.expires_in}


def _force(event: dict[str, Any]) -> dict[str, Any]:
    try:
        forced = wiring.refresher().force_refresh()
    except errors.WxsubError as exc:
        logger.warning("force refresh refused", error=exc.code, requested_by=event.get("source"))
        return {"forced": False, "status": exc.status, **exc.body()}
    metrics.add_metric(name="AccessTokenForceRefreshed", unit="Count", value=1)
    if forced.changed:
        metrics.add_metric(name="AccessTokenRotated", unit="Count", value=1)
    return forced.to_json()
