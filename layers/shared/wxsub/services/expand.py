"""Expand a campaign's audience into SendQueue, a bounded number of pages per invocation.

Each ExpandQueue message names a campaign and a page (with the cursor that starts it). One step
queues that page's recipients with ``SendMessageBatch``, then puts the next page's message on
ExpandQueue, and only then records the page as done (a conditional update on ``pages_done``).
So a crash anywhere loses nothing: the message comes back and its page is queued again; queued
twice, a recipient is still sent once (the send's write-ahead record is keyed by campaign and
openid), and ``queued`` counts each page once. A page's message that arrives before the previous
page was recorded done is put back for a moment; one that arrives after is a duplicate and is
dropped.

For ``granted`` the pages come from the grants ledger's ``by_template`` index (users who may be
sent the template now); for an explicit audience from the campaign's stored parts. A
``resume`` message queues the recipients held while the campaign was paused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wxsub.bus import CampaignEvents
from wxsub.observability import logger
from wxsub.stores.campaigns import (
    CANCELLED,
    DONE,
    EXPANDING,
    PAUSED,
    RUNNING,
    SCHEDULED,
    Campaign,
    CampaignStore,
)

PAGES_PER_RUN = 5
PAGE_SIZE = 1000
HELD_PART_POLLS = 5
HELD_PART_POLL_SECONDS = 0.2


class NotYet(Exception):
    """The message's page is ahead of the campaign's progress: try it again shortly."""


class Holders(Protocol):
    def holders(
        self, template_id: str, limit: int = 1000, start: str | None = None
    ) -> tuple[list[Any], str | None]: ...


class Queue(Protocol):
    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None: ...
    def send_all(self, bodies: list[dict[str, Any]]) -> None: ...


@dataclass
class Expander:
    store: CampaignStore
    ledger: Holders
    send_queue: Queue
    expand_queue: Queue
    events: CampaignEvents
    pages_per_run: int = PAGES_PER_RUN
    page_size: int = PAGE_SIZE

    def handle(self, message: Mapping[str, Any]) -> None:
        campaign = self.store.get(str(message["campaign_id"]))
        if campaign is None:
            logger.warning(
                "expansion for an unknown campaign dropped", campaign_id=message.get("campaign_id")
            )
            return
        if message.get("resume"):
            self._resume(campaign)
            return
        page, cursor = int(message.get("page", 0)), message.get("cursor")
        self._expand(campaign, page, None if cursor is None else str(cursor))

    def _expand(self, campaign: Campaign, page: int, cursor: str | None) -> None:
        if campaign.state == CANCELLED or campaign.expanded:
            return
        if page > campaign.pages_done:
            raise NotYet(f"page {page} arrived before page {campaign.pages_done} was recorded")
        if page < campaign.pages_done:  # a step stopped after recording a page: go on from there
            page, cursor = campaign.pages_done, campaign.cursor
        if campaign.state == SCHEDULED:
            campaign = self._move(campaign, EXPANDING, allowed=(SCHEDULED,)) or campaign
        for step in range(self.pages_per_run):
            recipients, next_cursor, last = self._page(campaign, page, cursor)
            self.send_queue.send_all([_queued(campaign.campaign_id, r) for r in recipients])
            if not last and step == self.pages_per_run - 1:
                self.expand_queue.send(
                    {"campaign_id": campaign.campaign_id, "page": page + 1, "cursor": next_cursor}
                )
            if not self.store.page_done(campaign.campaign_id, page, next_cursor, len(recipients), last=last):
                logger.info(
                    "another step recorded this page first", campaign_id=campaign.campaign_id, page=page
                )
                return
            if last:
                self._finish(campaign)
                return
            page, cursor = page + 1, next_cursor

    def _page(
        self, campaign: Campaign, page: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None, bool]:
        if campaign.audience == "granted":
            grants, next_cursor = self.ledger.holders(
                campaign.template_id, limit=self.page_size, start=cursor
            )
            return [{"openid": g.openid} for g in grants], next_cursor, next_cursor is None
        rows = self.store.part(campaign.campaign_id, "part", page)
        return rows, None, page + 1 >= campaign.parts

    def _resume(self, campaign: Campaign) -> None:
        """Runs the campaign again and queues what was held; a redelivered step finishes the job."""
        resumed = self._move(campaign, RUNNING if campaign.expanded else EXPANDING, allowed=(PAUSED,))
        if resumed is None:
            if campaign.state not in (RUNNING, EXPANDING) or campaign.held_consumed >= campaign.held_parts:
                return
            resumed = campaign  # an earlier step moved it, then stopped before queueing everything held
        if resumed.counts.get("held", 0) == 0:
            self._done_if_finished(resumed)
        # every hold that succeeded did so while paused, so the count after the move includes it
        for n in range(resumed.held_consumed, resumed.held_parts):
            rows = self._held_part(campaign.campaign_id, n)
            if rows:
                self.send_queue.send_all([_queued(campaign.campaign_id, r) for r in rows])
                self.store.count(campaign.campaign_id, {"held": -len(rows)}, {})
            self.store.consume_held(campaign.campaign_id, n)
        if not campaign.expanded:
            self.expand_queue.send(
                {"campaign_id": campaign.campaign_id, "page": campaign.pages_done, "cursor": campaign.cursor}
            )

    def _held_part(self, campaign_id: str, n: int) -> list[dict[str, Any]]:
        """A held part; a hold counted just before the resume may still be writing its part."""
        for _ in range(HELD_PART_POLLS):
            rows = self.store.part(campaign_id, "held", n)
            if rows:
                return rows
            time.sleep(HELD_PART_POLL_SECONDS)
        return []

    def _finish(self, campaign: Campaign) -> None:
        """Expansion is over: running, or already done when workers finished every queued send first."""
        running = self._move(campaign, RUNNING, allowed=(EXPANDING, SCHEDULED))
        if running is not None:
            self._done_if_finished(running)

    def _done_if_finished(self, campaign: Campaign) -> None:
        """Every queued send has an outcome (workers may have finished first): the campaign is done."""
        c = campaign.counts
        if campaign.expanded and c.get("held", 0) == 0 and campaign.processed() >= c.get("queued", 0):
            self._move(campaign, DONE, allowed=(RUNNING,))

    def _move(self, campaign: Campaign, to: str, *, allowed: tuple[str, ...]) -> Campaign | None:
        moved = self.store.transition(campaign.campaign_id, to, allowed=allowed)
        if moved is not None:
            self.events.campaign_state(
                campaign.campaign_id, to, previous=campaign.state, counts=moved.to_json()["counts"]
            )
        return moved


def _queued(campaign_id: str, recipient: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"campaign_id": campaign_id, "openid": str(recipient["openid"])}
    if recipient.get("data"):
        body["data"] = dict(recipient["data"])
    if recipient.get("retry_of"):
        body["retry_of"] = str(recipient["retry_of"])
    return body
