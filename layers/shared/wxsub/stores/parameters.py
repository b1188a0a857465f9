"""SSM SecureStrings: the secrets an operator puts once, and the access token the refresher owns.

Reads go through Powertools Parameters with an explicit cache age. The access token's cache is
kept well under WeChat's 5-minute old/new overlap (DESIGN.md, token rules), and a sender that
meets a token error bypasses it with ``force``.

A failed read is told apart by SSM's error (Powertools folds every error into one): a parameter
that does not exist is missing; a read refused (access denied, a KMS key the role may not use) is a
misconfiguration named as such; anything else (throttling after botocore's backed-off retries, a
service error, no connection) is 503 ``storage_unavailable``, to retry, and meanwhile the access
token last read keeps serving until it expires.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from wxsub.errors import Misconfigured, StorageUnavailable

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
        except GetParameterError as exc:
            if read_failure(exc) == "missing":
                return ""
            raise _error(exc, name) from None
        return value if isinstance(value, str) else ""


def read_failure(exc: GetParameterError) -> str:
    """``missing``, ``refused`` or ``unavailable``: why SSM did not give a parameter's value."""
    code = _ssm_code(exc)
    if code in ("ParameterNotFound", "ParameterVersionNotFound"):
        return "missing"
    return "refused" if _refusal(code) else "unavailable"


def _refusal(code: str | None) -> bool:
    """An error code meaning IAM or KMS said no: a deployment to fix, not a moment to wait out."""
    return bool(code) and (
        str(code).startswith(("AccessDenied", "KMS")) or code == "UnrecognizedClientException"
    )


def _ssm_code(exc: GetParameterError) -> str | None:
    cause = exc.__cause__ or exc.__context__  # Powertools raises its error while handling SSM's
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code") or "") or None
    return None


def _error(exc: GetParameterError, name: str) -> Exception:
    if read_failure(exc) == "refused":
        return Misconfigured(f"the SSM parameter {name} may not be read by this function ({_ssm_code(exc)})")
    return StorageUnavailable("SSM is unavailable right now; try again")


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
        self._last: StoredToken | None = None

    def get(self, *, force: bool = False) -> StoredToken | None:
        """The stored token, from a cache younger than ``cache_seconds`` unless ``force``.

        None when there is none (the refresher has not run). When SSM fails for another reason, the
        token last read serves on while it is valid, unless ``force`` asked past it.
        """
        try:
            with self._lock:  # the threads of a worker batch share one read when the cache expires
                raw = self._provider.get(
                    self._name, max_age=self._cache_seconds, decrypt=True, force_fetch=force
                )
        except GetParameterError as exc:
            if read_failure(exc) == "missing":
                return None
            last = self._last
            if not force and last is not None and last.expires_at > time.time():
                return last
            raise _error(exc, self._name) from None
        try:
            value = json.loads(str(raw))
            token = StoredToken(str(value["access_token"]), int(value["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None
        self._last = token
        return token

    def put(self, access_token: str, expires_in: int, now: float | None = None) -> StoredToken:
        now = time.time() if now is None else now
        token = StoredToken(access_token, int(now) + expires_in)
        try:
            self._ssm.put_parameter(
                Name=self._name,
                Value=json.dumps({"access_token": token.access_token, "expires_at": token.expires_at}),
                Type="SecureString",
                Overwrite=True,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if _refusal(code):
                raise Misconfigured(
                    f"the SSM parameter {self._name} may not be written by this function ({code})"
                ) from exc
            raise
        self._provider.clear_cache()
        return token
