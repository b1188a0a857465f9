"""WeChat's public template library and the account's private templates (``wxaapi/newtmpl``).

getcategory, getpubtemplatetitles (pages of at most 30), getpubtemplatekeywords, addtemplate and
deltemplate (wechat-api.md §5.1–5.5). The answers' shapes are checked here; what an errcode means
is the service's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wxsub.wechat.client import WeChatAmbiguous, WeChatTransport

PAGE = 30  # getpubtemplatetitles' largest page


@dataclass(frozen=True)
class LibraryTitle:
    tid: int
    title: str
    type: int  # 2 one-time, 3 long-term
    category_id: str

    def to_json(self) -> dict[str, Any]:
        kind = "long_term" if self.type == 3 else "one_time"
        return {"tid": self.tid, "title": self.title, "type": kind, "category_id": self.category_id}


@dataclass(frozen=True)
class LibraryKeyword:
    kid: int
    name: str
    example: str
    rule: str

    def to_json(self) -> dict[str, Any]:
        return {"kid": self.kid, "name": self.name, "example": self.example, "rule": self.rule}


class LibraryApi:
    def __init__(self, transport: WeChatTransport) -> None:
        self._transport = transport

    def categories(self, access_token: str) -> list[dict[str, Any]]:
        body = self._transport.get("/wxaapi/newtmpl/getcategory", {"access_token": access_token})
        return _each(body, "getcategory", lambda c: {"id": int(c["id"]), "name": str(c["name"])})

    def titles(self, access_token: str, ids: list[int], start: int) -> tuple[int, list[LibraryTitle]]:
        """One page of the titles in the categories ``ids``: (how many there are in all, this page)."""
        query = {
            "access_token": access_token,
            "ids": ",".join(str(i) for i in ids),
            "start": str(start),
            "limit": str(PAGE),
        }
        body = self._transport.get("/wxaapi/newtmpl/getpubtemplatetitles", query)
        page = _each(
            body,
            "getpubtemplatetitles",
            lambda t: LibraryTitle(int(t["tid"]), str(t["title"]), int(t["type"]), str(t.get("categoryId"))),
        )
        return int(body.get("count", len(page))), page

    def keywords(self, access_token: str, tid: int) -> list[LibraryKeyword]:
        query = {"access_token": access_token, "tid": str(tid)}
        body = self._transport.get("/wxaapi/newtmpl/getpubtemplatekeywords", query)
        return _each(
            body,
            "getpubtemplatekeywords",
            lambda k: LibraryKeyword(int(k["kid"]), str(k["name"]), str(k["example"]), str(k["rule"])),
        )

    def add(self, access_token: str, tid: int, kids: list[int], scene: str) -> str:
        """addtemplate: the new private template's id."""
        body = self._transport.post(
            "/wxaapi/newtmpl/addtemplate",
            {"access_token": access_token},
            {"tid": str(tid), "kidList": kids, "sceneDesc": scene},
        )
        template_id = body.get("priTmplId")
        if not isinstance(template_id, str) or not template_id:
            raise WeChatAmbiguous("addtemplate answered without a priTmplId")
        return template_id

    def delete(self, access_token: str, template_id: str) -> None:
        self._transport.post(
            "/wxaapi/newtmpl/deltemplate", {"access_token": access_token}, {"priTmplId": template_id}
        )


def _each[T](body: dict[str, Any], api: str, make: Callable[[dict[str, Any]], T]) -> list[T]:
    """``make`` applied to each item of the answer's ``data`` list."""
    items = body.get("data")
    if not isinstance(items, list):
        raise WeChatAmbiguous(f"{api} answered without a data list")
    try:
        return [make(item) for item in items if isinstance(item, dict)]
    except (KeyError, TypeError, ValueError):
        raise WeChatAmbiguous(f"{api} answered with malformed items") from None
