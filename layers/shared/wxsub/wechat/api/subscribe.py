"""Subscription messages: send, and the account's private templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wxsub.wechat.client import WeChatAmbiguous, WeChatTransport


@dataclass(frozen=True)
class OutgoingMessage:
    touser: str
    template_id: str
    data: dict[str, str]
    miniprogram_state: str
    lang: str = "zh_CN"
    page: str | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "touser": self.touser,
            "template_id": self.template_id,
            "data": {key: {"value": value} for key, value in self.data.items()},
            "miniprogram_state": self.miniprogram_state,
            "lang": self.lang,
        }
        if self.page:
            body["page"] = self.page
        return body


@dataclass(frozen=True)
class TemplateInfo:
    template_id: str
    title: str
    content: str
    example: str
    type: int
    enum_lists: list[dict[str, Any]] = field(default_factory=list)


class SubscribeApi:
    def __init__(self, transport: WeChatTransport) -> None:
        self._transport = transport

    def send(self, access_token: str, message: OutgoingMessage) -> str:
        """Send one subscription message; returns WeChat's msgid as a string (it exceeds 2**53).

        https://developers.weixin.qq.com/miniprogram/dev/server/API/mp-message-management/subscribe-message/api_sendmessage.html
        """
        body = self._transport.post(
            "/cgi-bin/message/subscribe/send", {"access_token": access_token}, message.payload()
        )
        msgid = body.get("msgid")
        return "" if msgid is None else str(msgid)

    def templates(self, access_token: str) -> list[TemplateInfo]:
        """The account's private templates (gettemplate).

        https://developers.weixin.qq.com/miniprogram/dev/server/API/mp-message-management/subscribe-message/api_gettemplatelist.html
        """
        body = self._transport.get("/wxaapi/newtmpl/gettemplate", {"access_token": access_token})
        items = body.get("data")
        if not isinstance(items, list):
            raise WeChatAmbiguous("gettemplate answered without a data list")
        return [_template(item) for item in items if isinstance(item, dict)]


def _template(item: dict[str, Any]) -> TemplateInfo:
    enums = item.get("keywordEnumValueList") or []
    return TemplateInfo(
        template_id=str(item.get("priTmplId", "")),
        title=str(item.get("title", "")),
        content=str(item.get("content", "")),
        example=str(item.get("example", "")),
        type=int(item.get("type", 2) or 2),
        enum_lists=[e for e in enums if isinstance(e, dict)],
    )
