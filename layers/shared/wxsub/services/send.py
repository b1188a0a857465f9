"""Send one subscription message: validate, take a grant, call WeChat, record the outcome.

DESIGN.md, send rules. The answer is an :class:`Outcome` for everything a retry with the same
Idempotency-Key must see again (sent, 409, 422, 504); errors a caller should simply retry
(503, 429) are raised instead, so the idempotency layer does not store them. ``-1``, 45011 and
43108 are retried here with bounded back-off as visible steps; a timeout after the request went
out is ambiguous and is never retried.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from wxsub import errors
from wxsub.observability import logger, metrics
from wxsub.services.tokens import TokenProvider
from wxsub.services.wechat_errors import translate
from wxsub.wechat.api.subscribe import OutgoingMessage, SubscribeApi
from wxsub.wechat.client import ErrorKind, WeChatApiError, WeChatTimeout, WeChatUnreachable

# The errcodes the send contract names; other permanent ones become 422 rejected_by_wechat.
_STORED: dict[int, type[errors.WxsubError]] = {
    40003: errors.InvalidOpenid,
    40037: errors.UnknownTemplate,
    41030: errors.InvalidPage,
    43101: errors.NoGrant,
    47003: errors.InvalidData,
}


@dataclass(frozen=True)
class SendRequest:
    openid: str
    template_id: str
    data: dict[str, str]
    page: str | None = None
    miniprogram_state: str | None = None
    lang: str | None = None
    fit: bool = False
    ledger: str = "enforce"


@dataclass(frozen=True)
class Outcome:
    """An answer worth storing under an Idempotency-Key: HTTP status and JSON body."""

    status: int
    body: dict[str, Any]

    @classmethod
    def refused(cls, error: errors.WxsubError) -> Outcome:
        return cls(error.status, error.body())


class DataCheck(Protocol):
    """Checks ``data`` against the template's keyword rules; returns the values to send."""

    def __call__(self, template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]: ...


class Grants(Protocol):
    """The grant ledger as the sender sees it."""

    def take(self, openid: str, template_id: str, *, long_term: bool) -> bool: ...
    def restore(self, openid: str, template_id: str) -> None: ...
    def exhaust(self, openid: str, template_id: str) -> None: ...


class Deliveries(Protocol):
    def record(self, message_id: str, request: SendRequest, status: str, **details: Any) -> None: ...


def _accept_all(template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]:
    return dict(data)


def _one_time(template_id: str) -> bool:
    return False


@dataclass
class SendService:
    api: SubscribeApi
    tokens: TokenProvider
    default_state: str
    attempts: int = 3
    retry_base_seconds: float = 0.2
    check: DataCheck = _accept_all
    grants: Grants | None = None
    is_long_term: Callable[[str], bool] = _one_time
    deliveries: Deliveries | None = None
    sleep: Callable[[float], None] = field(default=time.sleep)

    def send(self, request: SendRequest, message_id: str | None = None) -> Outcome:
        message_id = message_id or new_message_id()
        try:
            data = self.check(request.template_id, request.data, request.fit)
        except (errors.InvalidData, errors.UnknownTemplate) as refused:
            return Outcome.refused(refused)
        took = self._take_grant(request)
        if took is False:
            return Outcome.refused(
                errors.NoGrant("the user holds no grant for this template; ask them to subscribe again")
            )
        message = OutgoingMessage(
            touser=request.openid,
            template_id=request.template_id,
            data=data,
            miniprogram_state=request.miniprogram_state or self.default_state,
            lang=request.lang or "zh_CN",
            page=request.page,
        )
        return self._deliver(request, message, message_id, took)

    def _take_grant(self, request: SendRequest) -> bool | None:
        """True: a one-time grant was spent; None: nothing was spent; False: no grant to send on."""
        if self.grants is None:
            return None
        long_term = self.is_long_term(request.template_id)
        took = self.grants.take(request.openid, request.template_id, long_term=long_term)
        if took:
            return None if long_term else True
        return None if request.ledger == "ignore" else False

    def _deliver(
        self, request: SendRequest, message: OutgoingMessage, message_id: str, took: bool | None
    ) -> Outcome:
        for attempt in range(1, self.attempts + 1):
            logger.debug("sending", message_id=message_id, template_id=request.template_id, attempt=attempt)
            try:
                msgid = self.tokens.call(lambda token: self.api.send(token, message))
            except WeChatTimeout:
                return self._unknown(request, message_id)
            except WeChatUnreachable as exc:
                if attempt < self.attempts:
                    self._back_off(attempt)
                    continue
                self._settle_failure(request, took, None)
                raise errors.WeChatUnavailable(f"WeChat is unavailable: {exc}") from None
            except WeChatApiError as exc:
                if exc.kind is ErrorKind.RETRYABLE and attempt < self.attempts:
                    logger.info("WeChat busy; retrying", errcode=exc.errcode, attempt=attempt)
                    self._back_off(attempt)
                    continue
                return self._refused(request, message_id, took, exc)
            except Exception:
                # the token heal or an AWS call failed before WeChat answered: nothing was spent
                self._settle_failure(request, took, None)
                raise
            return self._sent(request, message_id, msgid)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _back_off(self, attempt: int) -> None:
        self.sleep(self.retry_base_seconds * (2 ** (attempt - 1)))

    def _sent(self, request: SendRequest, message_id: str, msgid: str) -> Outcome:
        metrics.add_metric(name="MessagesSent", unit="Count", value=1)
        if self.deliveries is not None:
            self.deliveries.record(message_id, request, "sent", msgid=msgid)
        return Outcome(200, {"status": "sent", "message_id": message_id, "msgid": msgid})

    def _unknown(self, request: SendRequest, message_id: str) -> Outcome:
        metrics.add_metric(name="MessagesUnknown", unit="Count", value=1)
        logger.warning("send timed out after the request went out", message_id=message_id)
        if self.deliveries is not None:
            self.deliveries.record(message_id, request, "unknown")
        error = errors.OutcomeUnknown(
            "WeChat did not answer in time; the message may or may not have been sent. "
            "It is recorded as unknown under message_id and settled by WeChat's sent event; "
            "do not send it again.",
            message_id=message_id,
        )
        return Outcome.refused(error)

    def _refused(
        self, request: SendRequest, message_id: str, took: bool | None, exc: WeChatApiError
    ) -> Outcome:
        self._settle_failure(request, took, exc.errcode)
        error = translate(exc, _STORED)
        metrics.add_metric(name="MessagesRefused", unit="Count", value=1)
        if error.status not in (409, 422):
            raise error
        if self.deliveries is not None:
            self.deliveries.record(message_id, request, "failed", errcode=exc.errcode)
        return Outcome.refused(error)

    def _settle_failure(self, request: SendRequest, took: bool | None, errcode: int | None) -> None:
        """Every non-zero errcode except 43101 spent nothing: give the grant back."""
        if self.grants is None:
            return
        if errcode == 43101:
            self.grants.exhaust(request.openid, request.template_id)
        elif took:
            self.grants.restore(request.openid, request.template_id)


def new_message_id() -> str:
    """Time-ordered, unguessable: 12 hex digits of milliseconds and 16 of randomness."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
