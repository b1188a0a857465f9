"""Templates from WeChat's public library: browse by category and keyword, add one, delete one.

WeChat pages the titles of chosen categories 30 at a time and cannot search them, so a search
fetches every page of the chosen categories once, keeps them for an hour in the function's
memory, and filters by keyword here. Adding or deleting a template also syncs the registry, so
``GET /templates`` and sends see the change at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wxsub import errors
from wxsub.observability import logger
from wxsub.services.templates import TemplateSync
from wxsub.services.tokens import TokenProvider
from wxsub.services.wechat_errors import translate
from wxsub.stores.aliases import TemplateAliases
from wxsub.stores.templates import TemplateStore
from wxsub.wechat.api.library import LibraryApi, LibraryTitle
from wxsub.wechat.client import WeChatError

CACHE_SECONDS = 3600
# what WeChat's refusals of the library calls mean to the caller (wechat-api.md §5.2–5.5)
_REFUSALS: dict[int, type[errors.WxsubError]] = {
    200014: errors.InvalidTemplate,
    200020: errors.InvalidTemplate,
    200021: errors.InvalidTemplate,
    200019: errors.InvalidTemplate,
    200022: errors.TemplateExists,
    200012: errors.TemplateLimitReached,
}
_WHAT = {
    200014: "WeChat's library has no such title (tid), or the account no such template",
    200019: "one of the category ids is not one of the account's categories",
    200020: "kids must be 2 to 5 distinct keyword ids of the title (GET /templates/library/{tid})",
    200021: "scene must be 1 to 15 characters: what the message is for, as users will see it",
    200022: "a template with the same title and keywords is already in the account's private library",
    200012: "the account's private library is full: delete a template first",
}


class TemplateLibrary:
    def __init__(
        self,
        api: LibraryApi,
        tokens: TokenProvider,
        sync: TemplateSync,
        store: TemplateStore,
        aliases: TemplateAliases,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._tokens = tokens
        self._sync = sync
        self._store = store
        self._aliases = aliases
        self._clock = clock
        self._titles: dict[tuple[int, ...], tuple[float, list[LibraryTitle]]] = {}

    def categories(self) -> list[dict[str, Any]]:
        categories: list[dict[str, Any]] = self._call(self._api.categories)
        return categories

    def search(self, category_ids: list[int], keyword: str, start: int, limit: int) -> dict[str, Any]:
        """Titles of ``category_ids`` (every category of the account when empty) containing ``keyword``."""
        ids = category_ids or [int(c["id"]) for c in self.categories()]
        matched = [t for t in self._all_titles(ids) if keyword.casefold() in t.title.casefold()]
        return {"titles": [t.to_json() for t in matched[start : start + limit]], "count": len(matched)}

    def title(self, tid: int) -> dict[str, Any]:
        """A library title with its keywords (name, example, rule)."""
        keywords = self._call(lambda token: self._api.keywords(token, tid))
        ids = [int(c["id"]) for c in self.categories()]
        found = next((t for t in self._all_titles(ids) if t.tid == tid), None)
        if found is None:
            raise errors.InvalidTemplate(f"no title {tid} in the account's categories", errcode=200014)
        return found.to_json() | {"keywords": [k.to_json() for k in keywords]}

    def add(self, tid: int, kids: list[int], scene: str, alias: str | None = None) -> dict[str, Any]:
        """Adds the title with these keywords to the account's private templates, and to the
        registry, named ``alias`` when one is given."""
        template_id = self._call(lambda token: self._api.add(token, tid, kids, scene))
        logger.info("template added from the library", template_id=template_id, tid=tid)
        self._sync.sync()
        template = self._store.get(template_id)
        if template is None:
            raise errors.WeChatUnavailable(f"WeChat added {template_id} but does not list it yet; sync again")
        if alias is not None:
            self._aliases.set(template_id, alias)
        return template.to_json() | {"alias": alias}

    def delete(self, template: str) -> dict[str, Any]:
        """Deletes a template, by id or alias, from the account, the registry and the aliases."""
        template_id = self._aliases.all().get(template, template)
        self._call(lambda token: self._api.delete(token, template_id))
        logger.info("template deleted", template_id=template_id)
        self._sync.sync()
        self._aliases.forget(template_id)
        return {"deleted": template_id}

    def _all_titles(self, category_ids: list[int]) -> list[LibraryTitle]:
        key = tuple(sorted(set(category_ids)))
        cached = self._titles.get(key)
        if cached is not None and self._clock() - cached[0] < CACHE_SECONDS:
            return cached[1]
        titles: list[LibraryTitle] = []
        while True:
            count, page = self._call(lambda token: self._api.titles(token, list(key), len(titles)))
            titles.extend(page)
            if not page or len(titles) >= count:
                break
        self._titles[key] = (self._clock(), titles)
        return titles

    def _call(self, fn: Callable[[str], Any]) -> Any:
        try:
            return self._tokens.call(fn)
        except WeChatError as exc:
            error = translate(exc, _REFUSALS)
            code = getattr(exc, "errcode", None)
            if code in _WHAT:
                error = type(error)(_WHAT[code], errcode=code)
            raise error from None
