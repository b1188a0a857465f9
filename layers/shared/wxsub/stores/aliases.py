"""Template aliases: stable names (``order_shipped``) for template ids, kept apart from the registry.

The hourly sync rewrites the registry's items, so the aliases live in one item of the state table
of their own: a map from alias to template id, with a version that every change checks, so two
changes at once cannot lose one another. A send by alias reads it afresh: one consistent read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from wxsub import errors

PK = "template-aliases"
ALIAS = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ATTEMPTS = 5


class TemplateAliases:
    def __init__(self, table: Any) -> None:
        self._table = table

    def all(self) -> dict[str, str]:
        """alias → template id, read afresh (one consistent read)."""
        aliases, _ = self._read()
        return aliases

    def resolve(self, alias: str) -> str:
        """The template id an alias names now (read afresh, so a rename or a delete counts at
        once); 422 ``unknown_template`` when none does."""
        template_id = self.all().get(alias)
        if template_id is None:
            raise errors.UnknownTemplate(
                f"no template has the alias {alias!r} (PUT /templates/{{id}}/alias sets one)"
            )
        return template_id

    def by_template(self) -> dict[str, str]:
        """template id → alias, read afresh: for answers that show each template's alias."""
        return {template_id: alias for alias, template_id in self.all().items()}

    def set(self, template_id: str, alias: str) -> None:
        """Gives ``template_id`` the alias (its previous one, if any, is dropped); 409 when another
        template holds it."""
        if not ALIAS.fullmatch(alias):
            raise errors.InvalidRequest(
                "alias must be lowercase letters, digits and _, starting with a letter"
            )

        def change(aliases: dict[str, str]) -> dict[str, str]:
            holder = aliases.get(alias)
            if holder is not None and holder != template_id:
                raise errors.AliasTaken(
                    f"the alias {alias!r} names {holder}: delete or rename that one first"
                )
            kept = {a: t for a, t in aliases.items() if t != template_id}
            return kept | {alias: template_id}

        self._update(change)

    def forget(self, template_id: str) -> None:
        """Drops the alias of a template that is gone."""
        self._update(lambda aliases: {a: t for a, t in aliases.items() if t != template_id})

    def _read(self) -> tuple[dict[str, str], int]:
        item = self._table.get_item(Key={"pk": PK}, ConsistentRead=True).get("Item") or {}
        return {str(a): str(t) for a, t in (item.get("aliases") or {}).items()}, int(item.get("version", 0))

    def _update(self, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        for _ in range(_ATTEMPTS):
            aliases, version = self._read()
            changed = change(dict(aliases))
            if changed == aliases:
                return
            try:
                self._table.put_item(
                    Item={"pk": PK, "aliases": changed, "version": version + 1},
                    ConditionExpression="attribute_not_exists(pk) OR version = :v",
                    ExpressionAttributeValues={":v": version},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue  # changed meanwhile: read again and reapply
                raise
            return
        raise errors.StorageUnavailable("the aliases kept changing while this change was made; try again")
