"""Session tokens: HS256 JWTs whose ``sub`` is the openid (DESIGN.md, contract).

A token is a pure function of (openid, issued-at, token id) and the key, so a login retried
with the same code can be answered with the very same token without storing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from wxsub.errors import InvalidSession, Misconfigured

ISSUER = "wxsub"
_LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class Session:
    token: str
    openid: str
    expires_at: int

    def expires_in(self, now: int) -> int:
        return max(0, self.expires_at - now)

    def __repr__(self) -> str:
        return f"Session(openid={self.openid!r}, expires_at={self.expires_at})"


class SessionSigner:
    def __init__(self, key: str, ttl_seconds: int, appid: str) -> None:
        if len(key) < 32:
            raise Misconfigured("the session signing key must be at least 32 characters")
        self._key = key
        self._ttl = ttl_seconds
        self._audience = appid

    def issue(self, openid: str, issued_at: int, token_id: str) -> Session:
        expires_at = issued_at + self._ttl
        claims = {
            "iss": ISSUER,
            "aud": self._audience,
            "sub": openid,
            "iat": issued_at,
            "exp": expires_at,
            "jti": token_id,
        }
        return Session(jwt.encode(claims, self._key, algorithm="HS256"), openid, expires_at)

    def verify(self, token: str) -> str:
        """The openid the token was issued to; ``InvalidSession`` for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=self._audience,
                issuer=ISSUER,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["sub", "exp", "iat", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidSession("the session token has expired; log in again") from None
        except jwt.InvalidTokenError:
            raise InvalidSession("the session token is not valid") from None
        return str(claims["sub"])


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        raise InvalidSession("missing Authorization: Bearer <session token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidSession("the Authorization header must be 'Bearer <session token>'")
    return token.strip()
