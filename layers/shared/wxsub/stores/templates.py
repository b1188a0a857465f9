"""The template registry table: one item per private template, keyed by ``template_id``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wxsub.keywords import Keyword, describe

ONE_TIME, LONG_TERM = 2, 3


@dataclass(frozen=True)
class Template:
    template_id: str
    title: str
    type: int
    keywords: tuple[Keyword, ...]
    content: str
    example: str
    synced_at: int

    @property
    def long_term(self) -> bool:
        return self.type == LONG_TERM

    def to_json(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "title": self.title,
            "type": self.type,
            "kind": "long_term" if self.long_term else "one_time",
            "keywords": [
                {
                    **describe(k.rule),
                    "name": k.name,
                    **({"enum_values": list(k.enum_values)} if k.enum_values else {}),
                }
                for k in self.keywords
            ],
            "example": self.example,
            "synced_at": self.synced_at,
        }


class TemplateStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, template_id: str) -> Template | None:
        item = self._table.get_item(Key={"template_id": template_id}).get("Item")
        return None if item is None else _template(item)

    def all(self) -> list[Template]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self._table.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted((_template(i) for i in items), key=lambda t: t.title)

    def replace_all(self, templates: Iterable[Template]) -> tuple[int, int]:
        """Writes every template and deletes those WeChat no longer lists; returns (written, removed)."""
        fresh = {t.template_id: t for t in templates}
        stale = [t.template_id for t in self.all() if t.template_id not in fresh]
        with self._table.batch_writer() as batch:
            for template in fresh.values():
                batch.put_item(Item=_item(template))
            for template_id in stale:
                batch.delete_item(Key={"template_id": template_id})
        return len(fresh), len(stale)


def _item(t: Template) -> dict[str, Any]:
    return {
        "template_id": t.template_id,
        "title": t.title,
        "type": t.type,
        "content": t.content,
        "example": t.example,
        "synced_at": t.synced_at,
        "keywords": [
            {"name": k.name, "rule": k.rule, "enum_values": list(k.enum_values)} for k in t.keywords
        ],
    }


def _template(item: dict[str, Any]) -> Template:
    return Template(
        template_id=str(item["template_id"]),
        title=str(item.get("title", "")),
        type=int(item.get("type", ONE_TIME)),
        keywords=tuple(
            Keyword(str(k["name"]), str(k["rule"]), tuple(str(v) for v in k.get("enum_values", [])))
            for k in item.get("keywords", [])
        ),
        content=str(item.get("content", "")),
        example=str(item.get("example", "")),
        synced_at=int(item.get("synced_at", 0)),
    )
