"""The one place that builds real collaborators from settings, once per container.

Warm invocations reuse the httpx connection pool and boto3 clients built here. Tests build
services directly with their own collaborators instead of patching anything.
"""

from __future__ import annotations

import random
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.config import Config

from wxsub.bus import EventBus, NoEvents
from wxsub.deadline import Deadline
from wxsub.errors import ConfigurationError
from wxsub.observability import logger
from wxsub.settings import Settings

# Each factory imports what it builds, so a function loads only the services its handler wires
# (one that never signs a session never loads PyJWT and cryptography): cold starts pay for less.
if TYPE_CHECKING:
    from wxsub.services.campaigns import CampaignService
    from wxsub.services.expand import Expander
    from wxsub.services.idempotent import IdempotentSends
    from wxsub.services.library import TemplateLibrary
    from wxsub.services.login import LoginService
    from wxsub.services.push import PushService
    from wxsub.services.send import SendService
    from wxsub.services.settle import SettleUnknown
    from wxsub.services.subscriptions import SubscriptionService
    from wxsub.services.tally import DeliveryTally
    from wxsub.services.templates import TemplateRegistry, TemplateSync
    from wxsub.services.tokens import TokenProvider, TokenRefresher
    from wxsub.services.worker import SendWorker
    from wxsub.sessions import SessionSigner
    from wxsub.stores.aliases import TemplateAliases
    from wxsub.stores.campaigns import CampaignStore
    from wxsub.stores.deliveries import Deliveries
    from wxsub.stores.grants import GrantLedger
    from wxsub.stores.parameters import SecretStore, TokenStore
    from wxsub.stores.queues import OneTimeSchedules, Queue
    from wxsub.stores.state import StateTable
    from wxsub.stores.templates import TemplateStore
    from wxsub.wechat.client import WeChatTransport
    from wxsub.wechat.push import PushConfig

# Every AWS call, botocore's own retries included, must fit in what a send keeps back for
# recording its outcome: at most 3 attempts of a 2 s connect and 3 s read, not the ~25 s that
# the legacy defaults can wait on a throttled table.
AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3})
RECORD_SECONDS = 3.0


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def deadline() -> Deadline:
    """The current invocation's deadline; each handler binds its context to it."""
    return Deadline()


# every boto3 client built here, so a SnapStart restore can drop their pooled connections
_AWS_CLIENTS: list[Any] = []


@cache
def _ssm() -> Any:
    return _built(boto3.client("ssm", config=AWS_CONFIG))


@cache
def _dynamodb() -> Any:
    resource = boto3.resource("dynamodb", config=AWS_CONFIG)
    _built(resource.meta.client)
    return resource


@cache
def _client(service: Any) -> Any:
    return _built(boto3.client(service, config=AWS_CONFIG))


def _built(client: Any) -> Any:
    _AWS_CLIENTS.append(client)
    return client


def after_restore() -> None:
    """What Lambda runs after restoring a SnapStart snapshot of an initialised function.

    The snapshot holds what init built: open sockets (now dead), cached secrets (maybe rotated
    since) and the random generator's state (the same in every environment restored from it). So:
    drop pooled AWS and WeChat connections, forget cached parameters so the next read goes to SSM,
    and reseed ``random`` from the OS (``secrets`` and ``uuid4`` read the OS already).
    """
    random.seed()
    for client in _AWS_CLIENTS:
        client._endpoint.http_session.close()  # botocore's pools; the next call connects anew
    if _provider.cache_info().currsize:
        provider: Any = _provider()  # Powertools leaves clear_cache unannotated
        provider.clear_cache()
    if transport.cache_info().currsize:
        transport().reconnect()


try:  # Lambda's Python runtime provides it; SnapStart calls what is registered after a restore
    from snapshot_restore_py import register_after_restore  # type: ignore[import-untyped]
except ImportError:  # another runtime, or a machine without the package: nothing is restored
    pass
else:
    register_after_restore(after_restore)


@cache
def events() -> EventBus | NoEvents:
    """The stack's bus, or nowhere when this function has none configured."""
    name = settings().event_bus_name
    return EventBus(_client("events"), name) if name else NoEvents()


@cache
def _provider() -> SSMProvider:
    return SSMProvider(boto3_client=_ssm())


@cache
def transport() -> WeChatTransport:
    from wxsub.wechat.client import WeChatTransport

    s = settings()
    return WeChatTransport(s.api_base, s.wechat_timeout)


@cache
def secrets() -> SecretStore:
    from wxsub.stores.parameters import SecretStore

    return SecretStore(_provider())


@cache
def state() -> StateTable:
    from wxsub.stores.state import StateTable

    return StateTable(_dynamodb().Table(settings().need("state_table")))


def table(name: str) -> Any:
    return _dynamodb().Table(name)


def app_secret() -> str:
    return secrets().get(settings().need("app_secret_param"))


@cache
def token_store() -> TokenStore:
    from wxsub.stores.parameters import TokenStore

    s = settings()
    return TokenStore(_provider(), _ssm(), s.need("access_token_param"), s.token_cache_seconds)


@cache
def refresher() -> TokenRefresher:
    from wxsub.services.tokens import TokenRefresher
    from wxsub.wechat.api.auth import AuthApi

    return TokenRefresher(AuthApi(transport(), settings().appid), token_store(), app_secret, state)


@cache
def token_provider() -> TokenProvider:
    from wxsub.services.tokens import TokenProvider

    return TokenProvider(token_store(), refresher(), state())


def session_signer() -> SessionSigner:
    from wxsub.sessions import SessionSigner

    s = settings()
    return SessionSigner(secrets().get(s.need("session_key_param")), s.session_ttl_seconds, s.appid)


@cache
def login_service() -> LoginService:
    from wxsub.services.login import LoginService
    from wxsub.wechat.api.auth import AuthApi

    s = settings()
    return LoginService(
        AuthApi(transport(), s.appid),
        state(),
        app_secret,
        session_signer,
        attempts=s.send_attempts,
        retry_base_seconds=s.retry_base_seconds,
    )


@cache
def template_store() -> TemplateStore:
    from wxsub.stores.templates import TemplateStore

    return TemplateStore(table(settings().need("templates_table")))


@cache
def template_sync() -> TemplateSync:
    from wxsub.services.templates import TemplateSync
    from wxsub.wechat.api.subscribe import SubscribeApi

    return TemplateSync(SubscribeApi(transport()), token_provider(), template_store())


@cache
def template_aliases() -> TemplateAliases:
    from wxsub.stores.aliases import TemplateAliases

    return TemplateAliases(table(settings().need("state_table")))


@cache
def template_library() -> TemplateLibrary:
    from wxsub.services.library import TemplateLibrary
    from wxsub.wechat.api.library import LibraryApi

    return TemplateLibrary(
        LibraryApi(transport()), token_provider(), template_sync(), template_store(), template_aliases()
    )


@cache
def registry() -> TemplateRegistry:
    from wxsub.services.templates import TemplateRegistry

    return TemplateRegistry(template_store(), template_sync(), state())


@cache
def ledger() -> GrantLedger:
    from wxsub.stores.grants import GrantLedger

    return GrantLedger(table(settings().need("grants_table")))


@cache
def deliveries() -> Deliveries:
    from wxsub.services.announce import Announcer
    from wxsub.stores.deliveries import Deliveries

    s = settings()
    return Deliveries(
        table(s.need("deliveries_table")),
        settle_window_seconds=s.settle_window_seconds,
        on_settled=Announcer(events()),
    )


@cache
def send_service() -> SendService:
    from wxsub.services.send import SendService
    from wxsub.wechat.api.subscribe import SubscribeApi

    s = settings()
    call_seconds = s.wechat_timeout + min(s.wechat_timeout, 3.0)
    needed = call_seconds + RECORD_SECONDS
    too_short = None
    if s.function_timeout_seconds is not None and s.function_timeout_seconds < needed:
        too_short = (
            f"FunctionTimeoutSeconds ({s.function_timeout_seconds}) must be at least {needed:g}: "
            f"a send needs WeChatTimeoutSeconds ({s.wechat_timeout:g}) plus the connect timeout "
            f"and {RECORD_SECONDS:g} s to record the answer"
        )
        logger.error("misconfigured: no send can ever start", reason=too_short)
    return SendService(
        api=SubscribeApi(transport()),
        tokens=token_provider(),
        default_state=s.miniprogram_state,
        deliveries=deliveries(),
        attempts=s.send_attempts,
        retry_base_seconds=s.retry_base_seconds,
        check=registry().check,
        grants=ledger(),
        is_long_term=registry().is_long_term,
        deadline=deadline(),
        events=events(),
        call_seconds=call_seconds,
        record_seconds=RECORD_SECONDS,
        misconfigured=too_short,
    )


def push_config() -> PushConfig:
    """From the cached SecureStrings on every push, so a rotated Token or key is live within minutes.

    The EncodingAESKey is optional: a mini program in plaintext mode has none to put. The config
    (and its AES ciphers) is rebuilt only when a secret's value changes.
    """
    s = settings()
    aes = secrets().get_optional(s.push_aes_key_param) if s.push_aes_key_param else ""
    return _push_config(secrets().get(s.need("push_token_param")), aes)


@lru_cache(maxsize=4)
def _push_config(token: str, aes: str) -> PushConfig:
    from wxsub.wechat.push import PushConfig

    s = settings()
    return PushConfig(
        token=token,
        appid=s.appid,
        aes_keys=tuple(key.strip() for key in aes.split(",") if key.strip()),
        require_encryption=s.push_require_encryption,
        max_skew_seconds=s.push_max_skew_seconds,
    )


@cache
def push_service() -> PushService:
    from wxsub.services.push import PushService

    s = settings()
    aes = secrets().get_optional(s.push_aes_key_param) if s.push_aes_key_param else ""
    if s.push_require_encryption and not aes.strip(", "):
        raise ConfigurationError(
            "PUSH_REQUIRE_ENCRYPTION is true but the EncodingAESKey at "
            f"{s.push_aes_key_param or 'PUSH_AES_KEY_PARAM (not set)'} is missing or empty: "
            "put the key from the mini program console there, or set PushRequireEncryption to false"
        )
    # the lease outlives the function: a live first delivery is never taken over by a retry
    lease = (settings().function_timeout_seconds or 20) + 10
    return PushService(
        push_config, state(), ledger(), deliveries(), registry().is_long_term, lease_seconds=lease
    )


@cache
def settle_unknown() -> SettleUnknown:
    from wxsub.services.campaigns import CampaignResends
    from wxsub.services.settle import SettleUnknown
    from wxsub.stores.queues import Queue

    s = settings()
    resends = None
    if s.campaigns_table and s.send_queue_url:
        resends = CampaignResends(campaign_store(), Queue(_client("sqs"), s.send_queue_url), events())
    return SettleUnknown(
        deliveries(),
        ledger(),
        window_seconds=s.settle_window_seconds,
        deadline=deadline(),
        after_give_up=resends,
    )


@cache
def subscription_service() -> SubscriptionService:
    from wxsub.services.subscriptions import SubscriptionService

    return SubscriptionService(
        ledger(), state(), registry().known_long_term, recognises=registry().recognises
    )


@cache
def idempotency() -> IdempotentSends:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from wxsub.services.idempotent import IdempotentSends

    table_name = settings().need("idempotency_table")
    # our client, not one Powertools builds in a session of its own: it shares the loaded service
    # model, and a SnapStart restore resets its connections with the others
    return IdempotentSends(DynamoDBPersistenceLayer(table_name=table_name, boto3_client=_client("dynamodb")))


@cache
def delivery_tally() -> DeliveryTally:
    from wxsub.services.tally import DeliveryTally

    return DeliveryTally(campaign_store(), events())


@cache
def campaign_store() -> CampaignStore:
    from wxsub.stores.campaigns import CampaignStore

    return CampaignStore(table(settings().need("campaigns_table")))


def _expand_queue() -> Queue:
    from wxsub.stores.queues import Queue

    return Queue(_client("sqs"), settings().need("expand_queue_url"))


@cache
def _schedules() -> OneTimeSchedules:
    from wxsub.stores.queues import OneTimeSchedules

    s = settings()
    return OneTimeSchedules(_client("scheduler"), s.need("expand_queue_arn"), s.need("scheduler_role_arn"))


@cache
def campaign_service() -> CampaignService:
    from wxsub.services.campaigns import CampaignService

    return CampaignService(
        campaign_store(),
        registry().check,
        _expand_queue(),
        _schedules(),
        events(),
        settings().campaign_max_recipients,
    )


@cache
def expander() -> Expander:
    from wxsub.services.expand import Expander
    from wxsub.stores.queues import Queue

    return Expander(
        campaign_store(),
        ledger(),
        Queue(_client("sqs"), settings().need("send_queue_url")),
        _expand_queue(),
        events(),
    )


def expand_queue() -> Queue:
    return _expand_queue()


@cache
def send_worker() -> SendWorker:
    from wxsub.services.pace import Pacer
    from wxsub.services.worker import SendWorker
    from wxsub.stores.queues import Queue

    s = settings()
    sqs = _client("sqs")
    return SendWorker(
        sender=send_service(),
        store=campaign_store(),
        pacer=Pacer(s.send_rate_per_second, s.send_worker_concurrency),
        requeue=Queue(sqs, s.need("send_queue_url")),
        dead_letters=Queue(sqs, s.need("send_dlq_url")),
        schedules=_schedules(),
        events=events(),
        retry_delay_seconds=s.send_retry_delay_seconds,
    )
