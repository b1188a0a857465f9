"""WeChat's message pushes: verify, dedupe, and feed the grant ledger and delivery receipts.

WeChat retries a push it got no answer to within 5 s (the same event, possibly re-encrypted with a
new nonce), so each verified popup or change event is applied once, keyed by its content. The key
is first written as a lease (``applying``, a little longer than the function may run): a retry
that meets it while the first delivery is still being applied is answered 503, so WeChat tries
again rather than taking "success" for an event that may yet fail. The key becomes ``done`` (kept
two days) only once the event was applied, and is released when applying fails, so the next retry
applies it. A lease left by a function that died expires and the next retry takes it over. Sent
events need no key: settling a delivery is conditional, so a second application changes nothing.

A plaintext push is signed over Token, timestamp and nonce only, not its body: one observed query
string would carry any body for the skew window. So the (timestamp, nonce) of each popup or change
event applied in plaintext is kept for twice that window, and the same pair on another event is
refused as a replay (401). Sent events are not kept (a forged one can only settle a send whose msgid
it names, and keeping them would cost a write per delivered message); safe mode, required on prod,
signs the body itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wxsub import errors
from wxsub.observability import logger, metrics
from wxsub.stores.grants import is_accept
from wxsub.stores.state import StateTable
from wxsub.wechat import push
from wxsub.wechat.push import PushConfig, PushItem, PushMessage

POPUP, CHANGE, SENT = "subscribe_msg_popup_event", "subscribe_msg_change_event", "subscribe_msg_sent_event"
DEDUPE_SECONDS = 2 * 86400
LEASE_SECONDS = 30
APPLYING, DONE = "applying", "done"


class Ledger(Protocol):
    def record_accept(
        self, openid: str, template_id: str, *, source: Any, at: int, long_term: bool
    ) -> Any: ...
    def record_reject(self, openid: str, template_id: str, *, source: Any, at: int) -> Any: ...
    def revoke(self, openid: str, template_id: str, *, at: int) -> Any: ...


class Receipts(Protocol):
    def apply_sent_event(
        self, *, openid: str, template_id: str, msgid: str, error_code: int, error_status: str, at: int
    ) -> Any: ...


class PushService:
    def __init__(
        self,
        config: Callable[[], PushConfig],
        state: StateTable,
        ledger: Ledger,
        receipts: Receipts,
        is_long_term: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
        lease_seconds: int = LEASE_SECONDS,
    ) -> None:
        self._lease = lease_seconds
        self._config = config
        self._state = state
        self._ledger = ledger
        self._receipts = receipts
        self._is_long_term = is_long_term
        self._clock = clock

    def verify_url(self, query: Mapping[str, str]) -> str:
        return push.verify_url(self._config(), query, self._clock())

    def receive(self, query: Mapping[str, str], body: bytes, content_type: str | None) -> bool:
        """Applies a verified push; False when a popup or change event was a retry already applied."""
        message = push.open_push(self._config(), query, body, content_type, self._clock())
        if message.event == SENT:
            # applying a sent event twice changes nothing (every step is conditional), so it needs
            # no dedupe record: one DynamoDB write less per delivered message
            self._apply(message)
            metrics.add_metric(name="PushesApplied", unit="Count", value=1)
            return True
        key = f"push#{message.dedupe_key}"
        signed_by = self._plaintext_signature(query)
        if signed_by is not None:
            used = self._state.get(signed_by)
            if used is not None and used.get("push") != message.dedupe_key:
                raise errors.BadSignature("this push's signature was already used for another push")
        if not self._state.put_new(key, self._lease, status=APPLYING):
            found = self._state.get(key)
            if found is not None and found.get("status") == APPLYING:
                logger.info("push retried while its first delivery is applied", push_event=message.event)
                raise errors.PushInProgress("this push is still being applied; WeChat will retry it")
            logger.info("push already applied", push_event=message.event)
            return False
        try:
            self._apply(message)
        except Exception:
            self._state.delete(key)
            raise
        try:
            self._state.put(key, DEDUPE_SECONDS, status=DONE)
            if signed_by is not None:
                self._state.put(signed_by, 2 * self._config().max_skew_seconds, push=message.dedupe_key)
        except Exception as exc:  # applied: a retry within the lease is still refused, later ones rare
            logger.warning("a push was applied but not marked done", error=type(exc).__name__)
        metrics.add_metric(name="PushesApplied", unit="Count", value=1)
        return True

    @staticmethod
    def _plaintext_signature(query: Mapping[str, str]) -> str | None:
        if push.is_encrypted(query):
            return None
        return f"nonce#{query.get('timestamp', '')}#{query.get('nonce', '')}"

    def _apply(self, message: PushMessage) -> None:
        handlers = {POPUP: self._popup, CHANGE: self._change, SENT: self._sent}
        handler = handlers.get(message.event or "")
        if handler is None:
            logger.info("push ignored", push_event=message.event, msg_type=message.msg_type)
            return
        for item in message.items:
            handler(message, item)

    def _popup(self, message: PushMessage, item: PushItem) -> None:
        openid, at = message.from_user, message.create_time
        if is_accept(item.status):
            long_term = self._is_long_term(item.template_id)
            self._ledger.record_accept(openid, item.template_id, source="push", at=at, long_term=long_term)
        elif item.status:
            self._ledger.record_reject(openid, item.template_id, source="push", at=at)

    def _change(self, message: PushMessage, item: PushItem) -> None:
        if item.status == "reject":
            self._ledger.revoke(message.from_user, item.template_id, at=message.create_time)

    def _sent(self, message: PushMessage, item: PushItem) -> None:
        if not item.msg_id:
            logger.warning("sent event without MsgID", template_id=item.template_id)
            return
        self._receipts.apply_sent_event(
            openid=message.from_user,
            template_id=item.template_id,
            msgid=item.msg_id,
            error_code=item.error_code or 0,
            error_status=item.error_status or "",
            at=message.create_time,
        )
