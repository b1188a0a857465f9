"""The one Logger, Tracer and Metrics of wxsub, and the guard that keeps secrets out of logs.

httpx logs every request URL at INFO, and ``/sns/jscode2session`` carries the AppSecret in its
query string while every other WeChat call carries the access token there. The filter below
removes query strings from those records, and the loggers are raised to WARNING, so neither a
root logger at INFO nor ``POWERTOOLS_LOG_LEVEL=DEBUG`` can print a credential. botocore logs
whole response bodies at DEBUG, decrypted SecureStrings included, so it is held at WARNING too
(a root logger at DEBUG must not put the AppSecret in CloudWatch).
"""

from __future__ import annotations

import logging
import os
import re
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
# Only what wxsub calls is traced: AWS (botocore) and WeChat (httpx). Patching every library the
# X-Ray SDK knows imports each of them at cold start, for calls no function makes.
tracer = Tracer(patch_modules=("botocore", "httpx"))
metrics = Metrics()

# An invocation with nothing to count (a refresh that changed nothing) is normal, not a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def count_wechat_error(errcode: int) -> None:
    """One WeChat answer with a non-zero errcode, as ``WeChatErrors`` by ``errcode`` (the dashboard
    shows them by errcode; an alarm watches 45009, the daily quota spent)."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "wxsub"
    with single_metric(name="WeChatErrors", unit=MetricUnit.Count, value=1, namespace=namespace) as metric:
        metric.add_dimension(name="errcode", value=str(errcode))


_QUERY = re.compile(r"\?[^\s\"']*")


class RedactQuery(logging.Filter):
    """Drops the query string from any URL in a log record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg = _QUERY.sub("?<redacted>", message)
            record.args = None
        return True


for _name in ("httpx", "httpcore", "botocore", "boto3", "urllib3"):
    _transport_logger = logging.getLogger(_name)
    _transport_logger.setLevel(logging.WARNING)
    _transport_logger.addFilter(RedactQuery())
