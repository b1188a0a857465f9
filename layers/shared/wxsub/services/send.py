"""Send one subscription message: validate, write ahead, take a grant, call WeChat, record the outcome.

DESIGN.md, send rules. The answer is an :class:`Outcome` for everything a retry with the same
Idempotency-Key must see again (sent, 409, 422, 504); errors a caller should simply retry
(503, 429) are raised instead, so the idempotency layer does not store them.

Exactly once rests on the write-ahead record in the deliveries table: before WeChat is called a
``sending`` record is written under the message_id (bound to the Idempotency-Key, or to a
campaign and openid), and an attempt that finds one never calls WeChat again: it answers what the
first attempt stored, or 409 ``send_in_progress``. When nothing went out (every attempt failed
before the request was written, ``-1``/45011 exhausted, too little time left) the record is
released together with the grant, so a retry sends. After WeChat was called, the outcome write is
retried while the invocation has time; if it never lands the caller gets 504 ``outcome_unknown``
and the sweep settles the ``sending`` record. ``-1``, 45011 and 43108 are retried here with
bounded back-off as visible steps; an ambiguous answer is never retried.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from wxsub import errors
from wxsub.bus import MessageEvents
from wxsub.deadline import Deadline
from wxsub.observability import logger, metrics
from wxsub.services.tokens import TokenProvider
from wxsub.services.wechat_errors import translate
from wxsub.stores.deliveries import Delivery, fingerprint
from wxsub.stores.grants import Taken
from wxsub.wechat.api.subscribe import OutgoingMessage, SubscribeApi
from wxsub.wechat.client import ErrorKind, WeChatAmbiguous, WeChatApiError, WeChatUnreachable

# The errcodes the send contract names; other permanent ones become 422 rejected_by_wechat.
_STORED: dict[int, type[errors.WxsubError]] = {
    40003: errors.InvalidOpenid,
    40037: errors.UnknownTemplate,
    41030: errors.InvalidPage,
    43101: errors.NoGrant,
    47003: errors.InvalidData,
}
PERSIST_ATTEMPTS = 5


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
    campaign_id: str | None = None
    queued_as: str | None = None  # the SQS message that carried a campaign's send
    template_alias: str | None = None  # the alias the caller named the template by, kept for display

    def resolved(self) -> dict[str, Any]:
        """What an Idempotency-Key binds: the fields, without the alias the template was named by
        (by alias or by id, it is the same request)."""
        fields = asdict(self)
        del fields["template_alias"]
        return fields


@dataclass(frozen=True)
class Outcome:
    """An answer worth storing under an Idempotency-Key: HTTP status and JSON body.

    ``replayed`` marks the answer of an earlier attempt found in its record: nothing was done now;
    ``replayed_from`` is the queue message that attempt came from, if any. ``recorded`` says a
    delivery record holds this send (its status changes are on the table's stream).
    """

    status: int
    body: dict[str, Any]
    replayed: bool = False
    replayed_from: str | None = None
    recorded: bool = False

    @classmethod
    def refused(cls, error: errors.WxsubError) -> Outcome:
        return cls(error.status, error.body())

    def stored(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}


class DataCheck(Protocol):
    """Checks ``data`` against the template's keyword rules; returns the values to send."""

    def __call__(self, template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]: ...


class Grants(Protocol):
    """The grant ledger as the sender sees it."""

    def take(self, openid: str, template_id: str, *, long_term: bool) -> Taken | None: ...
    def give_back(self, openid: str, template_id: str) -> dict[str, Any]: ...
    def exhaust(self, openid: str, template_id: str, seen: Taken) -> bool: ...


class Deliveries(Protocol):
    """The write-ahead journal of sends (``wxsub.stores.deliveries``)."""

    def bind(self, key: str, fingerprint: str, new_id: Callable[[], str]) -> str: ...
    def bound(self, key: str) -> str | None: ...
    def begin(self, message_id: str, request: Any, *, one_time: bool) -> Delivery | None: ...
    def without_grant(self, message_id: str) -> None: ...
    def finish(
        self,
        message_id: str,
        status: str,
        answer: Mapping[str, Any],
        *,
        msgid: str | None = None,
        errcode: int | None = None,
        give_back: Mapping[str, Any] | None = None,
    ) -> bool: ...
    def release(self, message_id: str, give_back: Mapping[str, Any] | None = None) -> bool: ...


class _NoEvents:
    def message_status(self, **_: Any) -> None:
        return None


def _accept_all(template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]:
    return dict(data)


def _one_time(template_id: str) -> bool:
    return False


@dataclass
class _Send:
    """One send in flight: what is needed to record or undo it."""

    request: SendRequest
    message: OutgoingMessage
    message_id: str
    taken: Taken | None


@dataclass
class SendService:
    api: SubscribeApi
    tokens: TokenProvider
    default_state: str
    deliveries: Deliveries
    attempts: int = 3
    retry_base_seconds: float = 0.2
    check: DataCheck = _accept_all
    grants: Grants | None = None
    is_long_term: Callable[[str], bool] = _one_time
    sleep: Callable[[float], None] = field(default=time.sleep)
    deadline: Deadline = field(default_factory=Deadline)
    events: MessageEvents = field(default_factory=_NoEvents)
    call_seconds: float = 8.0
    record_seconds: float = 3.0
    misconfigured: str | None = None  # why no send can ever start in this function's time

    def send(self, request: SendRequest, *, key: str | None = None, message_id: str | None = None) -> Outcome:
        """Sends once per ``key`` (an Idempotency-Key) or ``message_id`` (a campaign's recipient)."""
        if self.misconfigured:
            raise errors.Misconfigured(f"wxsub is misconfigured: {self.misconfigured}")
        try:
            data = self.check(request.template_id, request.data, request.fit)
        except (errors.InvalidData, errors.UnknownTemplate) as refused:
            return Outcome.refused(refused)
        if key:
            message_id = self.deliveries.bind(key, fingerprint(request.resolved()), new_message_id)
        message_id = message_id or new_message_id()
        long_term = self.is_long_term(request.template_id)
        one_time = self.grants is not None and not long_term
        earlier = self.deliveries.begin(message_id, request, one_time=one_time)
        if earlier is not None:
            return replace(replay(earlier), recorded=True)
        try:
            taken = self._take_grant(request, long_term)
            if taken is None and self.grants is not None and request.ledger == "ignore" and one_time:
                self.deliveries.without_grant(message_id)
        except Exception:
            # nothing went out; if even the release fails, the sweep settles the record later
            if not self._persist(lambda: self.deliveries.release(message_id)):
                logger.error("an unsent message could not be released", message_id=message_id)
            raise
        if taken is None and self.grants is not None and request.ledger != "ignore":
            self._persist(lambda: self.deliveries.release(message_id))
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
        # every answer _deliver returns was recorded; where nothing went out it raises
        return replace(self._deliver(_Send(request, message, message_id, taken)), recorded=True)

    def _take_grant(self, request: SendRequest, long_term: bool) -> Taken | None:
        if self.grants is None:
            return None
        return self.grants.take(request.openid, request.template_id, long_term=long_term)

    def _deliver(self, send: _Send) -> Outcome:
        for attempt in range(1, self.attempts + 1):
            logger.debug(
                "sending", message_id=send.message_id, template_id=send.request.template_id, attempt=attempt
            )
            try:
                msgid = self.tokens.call(lambda token: self.api.send(token, send.message), guard=self._guard)
            except WeChatAmbiguous as exc:
                return self._unknown(send, exc)
            except WeChatUnreachable as exc:
                if attempt < self.attempts:
                    self._back_off(attempt)
                    continue
                self._release(send)
                raise errors.WeChatUnavailable(f"WeChat is unavailable: {exc}") from None
            except WeChatApiError as exc:
                if exc.kind is ErrorKind.RETRYABLE and attempt < self.attempts:
                    logger.info("WeChat busy; retrying", errcode=exc.errcode, attempt=attempt)
                    self._back_off(attempt)
                    continue
                return self._refused(send, exc)
            except Exception:
                # the deadline, the token heal or an AWS call stopped it before WeChat was asked
                self._release(send)
                raise
            return self._sent(send, msgid)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _guard(self) -> None:
        """Refuses to start a WeChat request whose answer could not be recorded in time."""
        if not self.deadline.allows(self.call_seconds + self.record_seconds):
            raise errors.DeadlineReached(
                "too little time was left to call WeChat and record the answer; nothing was sent, try again"
            )

    def _back_off(self, attempt: int) -> None:
        self.sleep(self.retry_base_seconds * (2 ** (attempt - 1)))

    def _sent(self, send: _Send, msgid: str) -> Outcome:
        metrics.add_metric(name="MessagesSent", unit="Count", value=1)
        outcome = Outcome(200, {"status": "sent", "message_id": send.message_id, "msgid": msgid or None})
        if self._persist(
            lambda: self.deliveries.finish(send.message_id, "sent", outcome.stored(), msgid=msgid)
        ):
            self._emit(send, "sent", msgid=msgid or None)
            return outcome
        logger.error("a sent message could not be recorded", message_id=send.message_id)
        self._emit(send, "unknown")
        return outcome_unknown(send.message_id)

    def _unknown(self, send: _Send, exc: WeChatAmbiguous) -> Outcome:
        metrics.add_metric(name="MessagesUnknown", unit="Count", value=1)
        logger.warning(
            "WeChat gave no clean answer after the request went out",
            message_id=send.message_id,
            reason=str(exc),
        )
        outcome = outcome_unknown(send.message_id)
        self._persist(lambda: self.deliveries.finish(send.message_id, "unknown", outcome.stored()))
        self._emit(send, "unknown")
        return outcome

    def _refused(self, send: _Send, exc: WeChatApiError) -> Outcome:
        error = translate(exc, _STORED)
        metrics.add_metric(name="MessagesRefused", unit="Count", value=1)
        if error.status not in (409, 422):
            self._release(send)
            raise error
        outcome = Outcome.refused(error)
        give_back = self._give_back(send)
        if exc.errcode == 43101:
            give_back = None
            grants, taken = self.grants, send.taken
            if grants is not None and taken is not None:
                self._persist(lambda: grants.exhaust(send.request.openid, send.request.template_id, taken))
        self._persist(
            lambda: self.deliveries.finish(
                send.message_id, "failed", outcome.stored(), errcode=exc.errcode, give_back=give_back
            )
        )
        self._emit(send, "failed", errcode=exc.errcode)
        return outcome

    def _emit(
        self, send: _Send, status: str, *, msgid: str | None = None, errcode: int | None = None
    ) -> None:
        self.events.message_status(
            message_id=send.message_id,
            status=status,
            openid=send.request.openid,
            template_id=send.request.template_id,
            msgid=msgid,
            errcode=errcode,
            campaign_id=send.request.campaign_id,
        )

    def _give_back(self, send: _Send) -> dict[str, Any] | None:
        if self.grants is None or send.taken is None or not send.taken.spent:
            return None
        return self.grants.give_back(send.request.openid, send.request.template_id)

    def _release(self, send: _Send) -> None:
        """Nothing went out: the record goes and the grant returns, in one transaction.

        If that fails too, the record stays ``sending`` with its grant marked, and the sweep
        gives the grant back later.
        """
        if not self._persist(lambda: self.deliveries.release(send.message_id, self._give_back(send))):
            logger.error("an unsent message could not be released", message_id=send.message_id)

    def _persist(self, step: Callable[[], object]) -> bool:
        """Runs a write, retrying while the invocation has time for it; False when it never landed."""
        for attempt in range(1, PERSIST_ATTEMPTS + 1):
            try:
                step()
            except Exception as exc:  # any AWS failure: retry, then report
                logger.warning("recording a send failed", error=type(exc).__name__, attempt=attempt)
                # a retry may itself take botocore's whole backed-off attempts: start one only with
                # room for two, so the function never runs into its timeout while recording
                if attempt == PERSIST_ATTEMPTS or not self.deadline.allows(2 * self.record_seconds):
                    return False
                self._back_off(attempt)
                continue
            return True
        return False


def outcome_unknown(message_id: str) -> Outcome:
    return Outcome.refused(
        errors.OutcomeUnknown(
            "WeChat gave no clean answer; the message may or may not have been sent. It is recorded "
            "under message_id and settled by WeChat's sent event; do not send it again.",
            message_id=message_id,
        )
    )


def replay(earlier: Delivery) -> Outcome:
    """What a retry of a send that already has a record answers, without calling WeChat."""
    origin = earlier.queued_as
    if earlier.answer is not None:
        return Outcome(
            int(earlier.answer["status"]), dict(earlier.answer["body"]), replayed=True, replayed_from=origin
        )
    if earlier.status == "sending":
        raise errors.SendInProgress(
            "an earlier attempt of this send is still running; its outcome will be recorded under message_id",
            message_id=earlier.message_id,
        )
    if earlier.msgid:  # settled by WeChat's sent event after its writer stopped
        body = {"status": "sent", "message_id": earlier.message_id, "msgid": earlier.msgid}
        return Outcome(200, body, replayed=True, replayed_from=origin)
    return Outcome(504, outcome_unknown(earlier.message_id).body, replayed=True, replayed_from=origin)


def new_message_id() -> str:
    """Time-ordered, unguessable: 12 hex digits of milliseconds and 16 of randomness."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
