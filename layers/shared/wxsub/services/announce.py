"""Announcing a settled delivery: a status event on the bus.

A campaign's ``delivered`` count is not written here: the DeliveriesTable stream carries every
settled delivery to CountDeliveries, which counts them per batch (``services/tally.py``).
"""

from __future__ import annotations

from typing import Any

from wxsub.bus import MessageEvents


class Announcer:
    def __init__(self, events: MessageEvents) -> None:
        self._events = events

    def __call__(self, delivery: Any) -> None:
        """A sent event (or the sweep) settled ``delivery``: tell the bus."""
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
