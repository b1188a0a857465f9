"""The template registry: synced from WeChat's gettemplate, consulted before every send.

Knowing each template's keywords and rules lets a send be refused with a precise 422 before
WeChat is called (47003 never reaches production), and knowing its type tells the ledger
whether a grant is one-time or long-term. A send naming a template the registry does not know
triggers one sync, at most once a minute per template id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wxsub import errors, keywords
from wxsub.observability import logger
from wxsub.services.tokens import TokenProvider
from wxsub.services.wechat_errors import translate
from wxsub.stores.state import StateTable
from wxsub.stores.templates import Template, TemplateStore
from wxsub.wechat.api.subscribe import SubscribeApi, TemplateInfo
from wxsub.wechat.client import WeChatError

MISS_SYNC_INTERVAL_SECONDS = 60
CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class SyncResult:
    templates: int
    removed: int


class TemplateSync:
    def __init__(
        self,
        api: SubscribeApi,
        tokens: TokenProvider,
        store: TemplateStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._tokens = tokens
        self._store = store
        self._clock = clock

    def sync(self) -> SyncResult:
        try:
            infos = self._tokens.call(self._api.templates)
        except WeChatError as exc:
            raise translate(exc) from None
        now = int(self._clock())
        written, removed = self._store.replace_all(_template(info, now) for info in infos)
        logger.info("templates synced", templates=written, removed=removed)
        return SyncResult(written, removed)


def _template(info: TemplateInfo, now: int) -> Template:
    return Template(
        template_id=info.template_id,
        title=info.title,
        type=info.type,
        keywords=keywords.parse_content(info.content, info.enum_lists),
        content=info.content,
        example=info.example,
        synced_at=now,
    )


class TemplateRegistry:
    """Looks templates up, syncing once on a miss, and checks send data against their rules.

    A template found is kept in memory for ``cache_seconds``: a send reads it twice (its rules,
    then its type for the ledger) and templates change rarely. A sync elsewhere is seen within
    that time.
    """

    def __init__(
        self,
        store: TemplateStore,
        sync: TemplateSync,
        state: StateTable,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sync = sync
        self._state = state
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Template]] = {}
        self._lock = threading.Lock()

    def lookup(self, template_id: str) -> Template | None:
        """The template, from memory when fresh; the threads of a worker batch read it once."""
        cached = self._cache.get(template_id)
        if cached is not None and self._clock() - cached[0] < self._cache_seconds:
            return cached[1]
        with self._lock:
            cached = self._cache.get(template_id)
            if cached is not None and self._clock() - cached[0] < self._cache_seconds:
                return cached[1]
            found = self._find(template_id)
            if found is not None:
                self._cache[template_id] = (self._clock(), found)
            return found

    def _find(self, template_id: str, marker: str | None = None) -> Template | None:
        """From the store, else after a sync, at most once a minute per ``marker`` (the id's own)."""
        found = self._store.get(template_id)
        if found is not None:
            return found
        if not self._state.put_new(marker or f"sync#{template_id}", MISS_SYNC_INTERVAL_SECONDS):
            return None
        try:
            self._sync.sync()
        except errors.WxsubError as exc:
            logger.warning("sync on a registry miss failed", error=exc.code)
            return None
        return self._store.get(template_id)

    def is_long_term(self, template_id: str) -> bool:
        """A template the registry does not know is treated as one-time (DESIGN.md, send rules)."""
        template = self.lookup(template_id)
        return template is not None and template.long_term

    def recognises(self, template_id: str) -> bool:
        """Whether ``template_id`` is one of the mini program's templates, for ids a client names.

        On a miss the registry syncs, but at most once a minute for all such ids together (a
        template just added in the console is learnt; a client naming made-up ids costs nothing).
        """
        return template_id in self._cache or self._find(template_id, "sync#reported") is not None

    def known_long_term(self, template_id: str) -> bool:
        """:meth:`is_long_term` without the sync on a miss, for ids a client (not WeChat) names."""
        cached = self._cache.get(template_id)
        template = cached[1] if cached is not None else self._store.get(template_id)
        return template is not None and template.long_term

    def check(self, template_id: str, data: Mapping[str, str], fit: bool) -> dict[str, str]:
        template = self.lookup(template_id)
        if template is None:
            raise errors.UnknownTemplate(
                f"template {template_id} is not one of this mini program's templates "
                "(synced from WeChat; add it in the mini program admin, then POST /templates/sync)"
            )
        values, violations = keywords.validate(template.keywords, data, fit=fit)
        if violations:
            raise keywords.violations_error(violations)
        return values
