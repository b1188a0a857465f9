"""SSM SecureStrings: the secrets an operator puts once, and the access token the refresher owns.

Reads go through Powertools Parameters with an explicit cache age. The access token's cache is
kept well under WeChat's 5-minute old/new overlap (DESIGN.md, token rules), and a sender that
meets a token error bypasses it with ``force``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from wxsub.errors import Misconfigured

SECRET_CACHE_SECONDS = 300


class SecretStore:
    """Reads operator-provided SecureStrings (AppSecret, signing key, push Token and AES key)."""

    def __init__(self, provider: SSMProvider, cache_seconds: int = SECRET_CACHE_SECONDS) -> None:
        self._provider = provider
        self._cache_seconds = cache_seconds

    def get(self, name: str) -> str:
        value = self.get_optional(name)
        if not value:
            raise Misconfigured(f"the SSM parameter {name} is missing or empty; put it as a SecureString")
        return value

    def get_optional(self, name: str) -> str:
        """The value, or "" when the parameter does not exist (an optional secret not put yet)."""
        try:
            value = self._provider.get(name, max_age=self._cache_seconds, decrypt=True)
        except GetParameterError:
            return ""
        return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class StoredToken:
    access_token: str
    expires_at: int

    def __repr__(self) -> str:
        return f"StoredToken(<redacted>, expires_at={self.expires_at})"


class TokenStore:
    """The access token as one SecureString holding ``{"access_token", "expires_at"}``."""

    def __init__(self, provider: SSMProvider, ssm_client: Any, name: str, cache_seconds: int) -> None:
        self._provider = provider
        self._ssm = ssm_client
        self._name = name
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()

    def get(self, *, force: bool = False) -> StoredToken | None:
        """The stored token, from a cache younger than ``cache_seconds`` unless ``force``."""
        try:
            with self._lock:  # the threads of a worker batch share one read when the cache expires
                raw = self._provider.get(
                    self._name, max_age=self._cache_seconds, decrypt=True, force_fetch=force
                )
        except GetParameterError:
            return None
        try:
            value = json.loads(str(raw))
            return StoredToken(str(value["access_token"]), int(value["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, access_token: str, expires_in: int, now: float | None = None) -> StoredToken:
        now = time.time() if now is None else now
        token = StoredToken(access_token, int(now) + expires_in)
        self._ssm.put_parameter(
            Name=self._name,
            Value=json.dumps({"access_token": token.access_token, "expires_at": token.expires_at}),
            Type="SecureString",
            Overwrite=True,
        )
        self._provider.clear_cache()
        return token
