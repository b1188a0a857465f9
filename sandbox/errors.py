"""WeChat error codes as the sandbox answers them (HTTP 200, ``{"errcode", "errmsg"}``).

Every errmsg ends with `` rid: xxxxxxxx-xxxxxxxx-xxxxxxxx`` (wechat-api.md §0: three groups of
8 hex digits; the first one here is the sandbox clock in hex). Texts follow the observed
responses of wechat-api.md; codes the fact base gives no text for get a plain description
(the template codes of §5 have only the official Chinese meanings, rendered here in English).
"""

from __future__ import annotations

import secrets

MESSAGES: dict[int, str] = {
    -1: "system error",
    20002: "invalid args",
    40001: (
        "invalid credential, access_token is invalid or not latest, could get access_token by "
        "getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r"
    ),
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code,",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used,",
    40226: "code blocked,",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    43101: "user refuse to accept the msg",
    43107: "subscribe message ability banned",
    43108: "concurrent send to the same user",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit mustslower retry next minute",
    45168: "hit sensitive word",
    47001: "data format error",
    47003: "argument invalid!",
    200002: "invalid args",
    200012: "private template count reaches the limit",
    200014: "invalid tid",
    200016: "invalid start",
    200017: "invalid limit",
    200018: "category ids missing",
    200019: "invalid category ids",
    200020: "invalid kidList",
    200021: "invalid sceneDesc",
    200022: "a template with the same title and keywords already exists",
}


class WeChatError(Exception):
    """An errcode answer; ``text`` overrides the standard message (47003 names the key)."""

    def __init__(self, errcode: int, text: str | None = None) -> None:
        self.errcode = errcode
        self.text = text if text is not None else MESSAGES.get(errcode, "sandbox injected error")
        super().__init__(f"{errcode} {self.text}")


def rid(now: float) -> str:
    """A request id in the current WeChat form."""
    return f"{int(now) & 0xFFFFFFFF:08x}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def error_body(error: WeChatError, now: float) -> dict[str, int | str]:
    """The JSON body WeChat answers for ``error``."""
    return {"errcode": error.errcode, "errmsg": f"{error.text} rid: {rid(now)}"}
