"""The one error hierarchy.

Every error a handler can answer with is a ``WxsubError``: it carries the HTTP status, the
stable ``error`` code of DESIGN.md's table and a human message. ``wxsub.http.responses``
turns it into the JSON body in one place. Adapters translate their own failures into these
(``raise ... from exc``); nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WxsubError(Exception):
    """Base of every error wxsub reports to a caller."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error", "message"}`` plus any structured details."""
        return {"error": self.code, "message": self.message, **self.details}


class InvalidRequest(WxsubError):
    status, code = 400, "invalid_request"


class InvalidSession(WxsubError):
    status, code = 401, "invalid_session"


class BadSignature(WxsubError):
    status, code = 401, "bad_signature"


class InvalidCode(WxsubError):
    status, code = 400, "invalid_code"


class CodeUsed(WxsubError):
    status, code = 400, "code_used"


class LoginBlocked(WxsubError):
    status, code = 403, "login_blocked"


class NotFound(WxsubError):
    status, code = 404, "not_found"


class NoGrant(WxsubError):
    status, code = 409, "no_grant"


class RequestInProgress(WxsubError):
    status, code = 409, "request_in_progress"


class SendInProgress(WxsubError):
    status, code = 409, "send_in_progress"


class TooManyTemplates(WxsubError):
    status, code = 422, "too_many_templates"


class PushInProgress(WxsubError):
    """WeChat's retry of a push whose first delivery is still being applied: not 2xx, so it retries."""

    status, code = 503, "push_in_progress"


class CampaignNotPaused(WxsubError):
    status, code = 409, "campaign_not_paused"


class InvalidCampaign(WxsubError):
    """A campaign request that parses but cannot be run as it is; ``field`` names what is wrong."""

    status, code = 422, "invalid_request"


class InvalidData(WxsubError):
    status, code = 422, "invalid_data"


class InvalidOpenid(WxsubError):
    status, code = 422, "invalid_openid"


class UnknownTemplate(WxsubError):
    status, code = 422, "unknown_template"


class InvalidTemplate(WxsubError):
    """A template the library cannot make: unknown title, keywords or scene (WeChat's 2000xx)."""

    status, code = 422, "invalid_template"


class TemplateExists(WxsubError):
    status, code = 409, "template_exists"


class AliasTaken(WxsubError):
    status, code = 409, "alias_taken"


class TemplateLimitReached(WxsubError):
    status, code = 409, "template_limit_reached"


class InvalidPage(WxsubError):
    status, code = 422, "invalid_page"


class IdempotencyKeyReused(WxsubError):
    status, code = 422, "idempotency_key_reused"


class RejectedByWeChat(WxsubError):
    status, code = 422, "rejected_by_wechat"


class RateLimited(WxsubError):
    status, code = 429, "rate_limited"


class QuotaExhausted(WxsubError):
    status, code = 429, "quota_exhausted"


class WeChatUnavailable(WxsubError):
    status, code = 503, "wechat_unavailable"


class DeadlineReached(WeChatUnavailable):
    """Too little of the invocation is left to call WeChat and record the answer: nothing was sent."""


class Misconfigured(WxsubError):
    status, code = 503, "misconfigured"


class StorageUnavailable(WxsubError):
    """An AWS call failed after botocore's retries (throttling, a service error): retry later."""

    status, code = 503, "storage_unavailable"


class OutcomeUnknown(WxsubError):
    status, code = 504, "outcome_unknown"


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed: raised at cold start, never caught."""
