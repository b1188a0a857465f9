"""Announcing a settled delivery: a status event on the bus, and ``delivered`` on its campaign."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from wxsub.bus import MessageEvents


class CampaignCounters(Protocol):
    def count(self, campaign_id: str, counts: Mapping[str, int], failed: Mapping[str, int]) -> Any: ...


class Announcer:
    def __init__(self, events: MessageEvents, campaigns: CampaignCounters | None) -> None:
        self._events = events
        self._campaigns = campaigns

    def __call__(self, delivery: Any) -> None:
        """A sent event (or the sweep) settled ``delivery``: tell the bus, count it for its campaign."""
        self._events.message_status(
            message_id=delivery.message_id,
            status=delivery.status,
            openid=delivery.openid,
            template_id=delivery.template_id,
            msgid=delivery.msgid,
            errcode=delivery.errcode,
            error_status=delivery.error_status,
            campaign_id=delivery.campaign_id,
        )
        if self._campaigns is not None and delivery.campaign_id and delivery.status == "delivered":
            self._campaigns.count(delivery.campaign_id, {"delivered": 1}, {})
