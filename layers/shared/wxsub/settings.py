"""Typed settings, read once from the environment at cold start.

Only names and switches live in the environment: every secret is an SSM SecureString whose
*name* is configured here (DESIGN.md, configuration keys). A function asks for the keys it
needs with :meth:`Settings.need`, which fails fast naming the missing key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

from wxsub.errors import ConfigurationError

Stage = Literal["dev", "prod"]
DEFAULT_API_BASE = "https://api.weixin.qq.com"


@dataclass(frozen=True)
class Settings:
    stage: Stage
    appid: str
    api_base: str
    wechat_timeout: float
    token_cache_seconds: int
    session_ttl_seconds: int
    send_attempts: int
    retry_base_seconds: float
    app_secret_param: str | None
    session_key_param: str | None
    access_token_param: str | None
    push_token_param: str | None
    push_aes_key_param: str | None
    state_table: str | None
    idempotency_table: str | None
    grants_table: str | None
    deliveries_table: str | None
    templates_table: str | None
    push_require_encryption: bool
    push_max_skew_seconds: int
    settle_window_seconds: int = 600
    campaigns_table: str | None = None
    send_queue_url: str | None = None
    send_dlq_url: str | None = None
    expand_queue_url: str | None = None
    expand_queue_arn: str | None = None
    scheduler_role_arn: str | None = None
    event_bus_name: str | None = None
    campaign_max_recipients: int = 10000
    send_rate_per_second: int = 200
    send_worker_concurrency: int = 1
    send_retry_delay_seconds: int = 30
    function_timeout_seconds: int | None = None

    @property
    def miniprogram_state(self) -> str:
        """The ``miniprogram_state`` a send uses when the caller names none."""
        return "formal" if self.stage == "prod" else "developer"

    def need(self, name: str) -> str:
        """The value of an optional setting this function requires, or a cold-start failure."""
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(f"missing configuration: set {name.upper()}")
        return str(value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stage = env.get("STAGE", "dev")
        if stage not in ("dev", "prod"):
            raise ConfigurationError(f"STAGE must be dev or prod, not {stage!r}")
        appid = env.get("WECHAT_APPID", "")
        if not appid:
            raise ConfigurationError("missing configuration: set WECHAT_APPID")
        optional = {
            f.name: env.get(f.name.upper()) or None
            for f in fields(cls)
            if f.name.endswith(("_param", "_table", "_url", "_arn", "_name"))
        }
        token_cache = _number(env, "TOKEN_CACHE_SECONDS", 30, int)
        if not 0 <= token_cache <= 60:
            raise ConfigurationError(
                "TOKEN_CACHE_SECONDS must be between 0 and 60 (WeChat's overlap is 300 s)"
            )
        return cls(
            stage=stage,  # type: ignore[arg-type]
            appid=appid,
            api_base=env.get("WECHAT_API_BASE") or DEFAULT_API_BASE,
            wechat_timeout=_number(env, "WECHAT_TIMEOUT_SECONDS", 5.0, float),
            token_cache_seconds=token_cache,
            session_ttl_seconds=_number(env, "SESSION_TTL_SECONDS", 604800, int),
            send_attempts=_number(env, "SEND_ATTEMPTS", 3, int),
            retry_base_seconds=_number(env, "RETRY_BASE_SECONDS", 0.2, float),
            push_require_encryption=_flag(env, "PUSH_REQUIRE_ENCRYPTION"),
            push_max_skew_seconds=_number(env, "PUSH_MAX_SKEW_SECONDS", 300, int),
            settle_window_seconds=_number(env, "SETTLE_WINDOW_SECONDS", 600, int),
            campaign_max_recipients=_number(env, "CAMPAIGN_MAX_RECIPIENTS", 10000, int),
            send_rate_per_second=_number(env, "SEND_RATE_PER_SECOND", 200, int),
            send_worker_concurrency=_number(env, "SEND_WORKER_CONCURRENCY", 1, int),
            send_retry_delay_seconds=_number(env, "SEND_RETRY_DELAY_SECONDS", 30, int),
            function_timeout_seconds=_number(env, "FUNCTION_TIMEOUT_SECONDS", 0, int) or None,
            **optional,
        )


def _number[T: (int, float)](env: Mapping[str, str], key: str, default: T, kind: type[T]) -> T:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{key} must be a number, not {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"{key} must not be negative")
    return value


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigurationError(f"{key} must be true or false, not {raw!r}")
