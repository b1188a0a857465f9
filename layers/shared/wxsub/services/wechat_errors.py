"""Translation of WeChat transport failures into the product's errors (DESIGN.md, error table)."""

from __future__ import annotations

from collections.abc import Mapping

from wxsub import errors
from wxsub.wechat.client import ErrorKind, WeChatAmbiguous, WeChatApiError, WeChatError, WeChatUnreachable


def translate(
    exc: WeChatError, specific: Mapping[int, type[errors.WxsubError]] | None = None
) -> errors.WxsubError:
    """The product error for a WeChat failure; ``specific`` maps the codes a use case names."""
    if isinstance(exc, WeChatApiError):
        return _from_errcode(exc, specific or {})
    if isinstance(exc, WeChatAmbiguous):
        return errors.WeChatUnavailable(f"WeChat gave no usable answer ({exc}); try again")
    if isinstance(exc, WeChatUnreachable):
        return errors.WeChatUnavailable(f"WeChat is unavailable: {exc}")
    return errors.WeChatUnavailable("WeChat is unavailable")


def _from_errcode(exc: WeChatApiError, specific: Mapping[int, type[errors.WxsubError]]) -> errors.WxsubError:
    code = exc.errcode
    if code in specific:
        message = _MESSAGES.get(code, f"WeChat refused the request (errcode {code})")
        return specific[code](message, errcode=code)
    if code == 45011:
        return errors.RateLimited("WeChat's per-minute limit was reached; slow down", errcode=code)
    kind_error, text = _BY_KIND.get(
        exc.kind, (errors.RejectedByWeChat, "WeChat refused the request; sending it again will not help")
    )
    return kind_error(f"{text} (errcode {code})", errcode=code)


_BY_KIND: dict[ErrorKind, tuple[type[errors.WxsubError], str]] = {
    ErrorKind.CREDENTIAL: (
        errors.Misconfigured,
        "WeChat refused wxsub's credentials: check the AppID, the AppSecret and the API IP whitelist",
    ),
    ErrorKind.QUOTA: (errors.QuotaExhausted, "WeChat's daily quota for this API is spent"),
    ErrorKind.RETRYABLE: (errors.WeChatUnavailable, "WeChat is busy; try again"),
    ErrorKind.TOKEN: (errors.WeChatUnavailable, "WeChat keeps refusing the access token; try again"),
}

_MESSAGES = {
    40029: "the login code is invalid or expired; call wx.login again",
    40163: "the login code was already used; call wx.login again",
    40226: "WeChat blocks this user's login (high-risk account)",
    40003: "the openid does not belong to this mini program",
    40037: "the template_id does not belong to this mini program",
    41030: "the page does not exist in the released mini program",
    43101: "the user holds no subscription for this template",
    47003: "WeChat refused the data for this template",
    43107: "WeChat has banned subscription messages for this account or template",
    45168: "WeChat found sensitive words in the data",
}
