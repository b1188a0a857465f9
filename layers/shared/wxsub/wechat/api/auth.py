"""Login (code2Session) and the access token (getStableAccessToken)."""

from __future__ import annotations

from dataclasses import dataclass

from wxsub.wechat.client import WeChatAmbiguous, WeChatTransport


@dataclass(frozen=True)
class Code2Session:
    openid: str
    session_key: str
    unionid: str | None = None

    def __repr__(self) -> str:
        return f"Code2Session(openid={self.openid!r}, session_key=<redacted>)"


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    expires_in: int

    def __repr__(self) -> str:
        return f"AccessToken(<redacted>, expires_in={self.expires_in})"


class AuthApi:
    def __init__(self, transport: WeChatTransport, appid: str) -> None:
        self._transport = transport
        self._appid = appid

    def code2session(self, secret: str, code: str) -> Code2Session:
        """Exchange a ``wx.login`` code once.

        https://developers.weixin.qq.com/miniprogram/dev/server/API/user-login/api_code2session.html
        """
        body = self._transport.get(
            "/sns/jscode2session",
            {"appid": self._appid, "secret": secret, "js_code": code, "grant_type": "authorization_code"},
        )
        openid, session_key = body.get("openid"), body.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
            raise WeChatAmbiguous("jscode2session answered without an openid")
        unionid = body.get("unionid")
        return Code2Session(openid, session_key, unionid if isinstance(unionid, str) else None)

    def stable_token(self, secret: str, *, force: bool = False) -> AccessToken:
        """getStableAccessToken, in normal mode unless ``force``: force-refresh mode invalidates the
        previous token at once, at most 20 times a day and 30 s apart (the refresher guards both).

        https://developers.weixin.qq.com/miniprogram/dev/server/API/mp-access-token/api_getstableaccesstoken.html
        """
        body = self._transport.post(
            "/cgi-bin/stable_token",
            {},
            {
                "grant_type": "client_credential",
                "appid": self._appid,
                "secret": secret,
                "force_refresh": force,
            },
        )
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise WeChatAmbiguous("stable_token answered without a token")
        return AccessToken(token, expires_in)
