"""The whole local stack in one object: moto, the sandbox, the gateway, the functions, the triggers.

Start order matters: the gateway binds first (so its URL can be the sandbox's push target and a
busy port fails before anything else starts), the sandbox next (its URL becomes the template's
``WeChatApiBase``), then the template is resolved against those local values, its resources are
created in moto with the SecureStrings written at the template's parameter names (and each event
bus with its tap, see :mod:`local.bus`), and the scheduled functions run once, in template order,
before :meth:`LocalStack.start` returns.

This module (with the CLI) is the only reader of the ``WECHAT_*`` secret variables: functions
read their secrets from SSM by name, exactly as on AWS.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import string
import sys
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from local.aws import AwsRequests, MotoEndpoint, Resources
from local.bus import BusTap
from local.events import QueuePoller, Scheduler, StreamPoller
from local.gateway import Gateway
from local.model import Description, QueueSource, Schedule, describe
from local.runtime_schedules import RuntimeSchedules, Targets
from local.template import ACCOUNT_ID
from local.workers import ROOT_LOG_LEVEL, FunctionPool, Outcome, lambda_environment

if TYPE_CHECKING:
    from sandbox.server import Sandbox

DEFAULT_CREDENTIALS = ("testing", "testing")
DEFAULT_REGION = "us-east-1"
# template parameter -> the local variable its SecureString is written from (None: generated)
SECURE_STRINGS: dict[str, str | None] = {
    "AppSecretParam": "WECHAT_APP_SECRET",
    "PushTokenParam": "WECHAT_PUSH_TOKEN",
    "PushAesKeyParam": "WECHAT_PUSH_AES_KEY",
    "SessionKeyParam": None,
}


class InvocationError(RuntimeError):
    """A function invoked directly (a schedule run, :meth:`LocalStack.invoke`) reported an error."""

    def __init__(self, function: str, outcome: Outcome) -> None:
        super().__init__(f"{function}: {outcome.error_type}: {outcome.error_message}")
        self.outcome = outcome


# (template, :meth:`LocalStack.permissions`) of every stack as it stopped, for a test session's summary
PERMISSION_REPORTS: list[tuple[Path, dict[str, Any]]] = []


class LocalStack:
    """The API on ``127.0.0.1`` from ``template``, with moto and (unless disabled) the WeChat sandbox.

    ``env`` is the local environment the stack reads (``os.environ`` when None): the ``WECHAT_*``
    variables, AWS credentials and region. ``parameters`` overrides template parameters.
    ``sandbox=False`` skips the sandbox (``WECHAT_API_BASE`` in ``env`` does too).

    After :meth:`start`: ``api_url``, ``aws_endpoint``, ``sandbox_url``/``sandbox``, ``appid``,
    ``credentials`` (what IAM routes accept), ``description`` (what the template declared), and
    ``secure_strings`` (SSM name -> value written; tests use it to prove no secret reaches a log).

    With ``least_privilege`` (the default) each function signs its AWS calls with its own access
    key and the local AWS allows only what that function's ``Policies`` grant (local/access.py);
    :meth:`permissions` then lists what each function was granted and never used.

    ``xray_daemon`` (``host:port``) turns tracing on as deployed with ``Tracing: Active``: the
    functions' X-Ray segments are sent there over UDP (a test's socket, or a real daemon).
    """

    def __init__(
        self,
        template: str | os.PathLike[str] = "template.yaml",
        *,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        schedules: bool = True,
        pollers: bool = True,
        sandbox: bool = True,
        parameters: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        max_workers: int = 4,
        root_log_level: str | None = None,
        echo: bool = False,
        least_privilege: bool = True,
        xray_daemon: str | None = None,
    ) -> None:
        self.template = Path(template).resolve()
        self._least_privilege = least_privilege
        self._xray_daemon = xray_daemon
        self._env = dict(os.environ if env is None else env)
        self._port = port
        self._host = host
        self._schedules_on = schedules
        self._pollers_on = pollers
        self._sandbox_on = sandbox and not self._env.get("WECHAT_API_BASE")
        self._parameters = dict(parameters or {})
        self._max_workers = max_workers
        self._root_log_level = root_log_level
        self._echo = echo
        self.region = self._env.get("AWS_DEFAULT_REGION") or self._env.get("AWS_REGION") or DEFAULT_REGION
        self.credentials: tuple[str, str] = (
            (self._env["AWS_ACCESS_KEY_ID"], self._env["AWS_SECRET_ACCESS_KEY"])
            if self._env.get("AWS_ACCESS_KEY_ID") and self._env.get("AWS_SECRET_ACCESS_KEY")
            else DEFAULT_CREDENTIALS
        )
        self.api_url = ""
        self.aws_endpoint = ""
        self.sandbox_url: str | None = None
        self.sandbox: Sandbox | None = None
        self.description = Description()
        self._lines: deque[str] = deque(maxlen=100_000)
        self._lines_lock = threading.Lock()
        self._moto: MotoEndpoint | None = None
        self._gateway: Gateway | None = None
        self._resources: Resources | None = None
        self._pools: dict[str, FunctionPool] = {}
        self._scheduler: Scheduler | None = None
        self._runtime_schedules: RuntimeSchedules | None = None
        self._bus: BusTap | None = None
        self._pollers: list[QueuePoller | StreamPoller] = []
        self._secrets: dict[str, str] = {}
        self.appid = ""
        self.secure_strings: dict[str, str] = {}

    def __enter__(self) -> LocalStack:
        return self.start() if not self.api_url else self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._moto = MotoEndpoint(self._host, log=self.log).start()
        self.aws_endpoint = self._moto.url
        self._gateway = Gateway(
            host=self._host,
            port=self._port,
            region=self.region,
            secrets={self.credentials[0]: self.credentials[1]},
            log=self.log,
        )
        self.api_url = self._gateway.url
        self._secrets = self._local_secrets()
        self.appid = self._secrets["WECHAT_APPID"]
        if self._sandbox_on:
            self._start_sandbox()
        self.description = describe(
            self.template,
            self._overrides(),
            region=self.region,
            aws_endpoint=self.aws_endpoint,
            api_url=self.api_url,
        )
        self._resources = Resources(self.aws_endpoint, self.region, self.credentials)
        self._resources.create(self.description)
        self.secure_strings = self._secure_strings()
        self._resources.put_secure_strings(self.secure_strings)
        self._bus = BusTap(
            self.description.event_buses,
            self._resources.internal_client("events"),
            self._resources.internal_client("sqs"),
            self.log,
        ).create()
        self._bus.start()
        if self._least_privilege:
            self._moto.enforce_policies(self.description.policies.registry())
        for lid, fn in self.description.functions.items():
            env = lambda_environment(
                fn,
                region=self.region,
                credentials=self._function_credentials(lid),
                aws_endpoint=self.aws_endpoint,
                xray_daemon=self._xray_daemon,
            )
            if self._root_log_level:
                env[ROOT_LOG_LEVEL] = self._root_log_level
            self._pools[lid] = FunctionPool(fn, env, self.log, self._max_workers)
        self._gateway.start(self.description.routes, self._invoke)
        self._scheduler = Scheduler(self.description.schedules, self._invoke, self.log, self.region)
        self._runtime_schedules = RuntimeSchedules(
            self._resources.internal_client("scheduler"),
            self._resources.internal_client("sqs"),
            Targets.of(self.description, self.region, ACCOUNT_ID),
            self._invoke,
            self.log,
        )
        if self._schedules_on:
            for schedule in self.description.schedules:
                if schedule.enabled:
                    self._scheduler.run(schedule)
            self._scheduler.start()
            self._runtime_schedules.start()
        if self._pollers_on:
            self._start_pollers(self._resources.sqs)
            self._start_stream_pollers(self._resources.internal_client("dynamodbstreams"))

    def _start_stream_pollers(self, streams: Any) -> None:
        for source in self.description.stream_sources:
            if source.enabled:
                poller = StreamPoller(source, streams, self._invoke, self.log)
                poller.start()
                self._pollers.append(poller)

    def _start_pollers(self, sqs: Any) -> None:
        for source in self.description.queue_sources:
            if source.enabled:
                poller = QueuePoller(
                    source,
                    sqs,
                    self._invoke,
                    self.log,
                    self.region,
                    concurrency=self.queue_concurrency(source),
                )
                poller.start()
                self._pollers.append(poller)

    def _function_credentials(self, logical_id: str) -> tuple[str, str]:
        if not self._least_privilege:
            return self.credentials
        policy = self.description.policies.by_function[logical_id]
        if policy.unchecked is not None:
            self.log(f"[local] {logical_id}: AWS calls not checked against its policy ({policy.unchecked})")
        return policy.access_key, policy.secret_key

    def permissions(self) -> dict[str, Any]:
        """Per function whose calls are checked: granted (action, resource) pairs and the unused ones."""
        assert self._moto is not None, "start() the stack first"
        return self._moto.permissions()

    def queue_concurrency(self, source: QueueSource) -> int:
        """How many batches of ``source`` run at once: its ``MaximumConcurrency`` (1 without),
        capped by the function's reserved concurrency and the stack's ``max_workers``."""
        reserved = self.description.functions[source.function].reserved_concurrency
        return max(1, min(source.max_concurrency or 1, reserved or self._max_workers, self._max_workers))

    def stop(self) -> None:
        """Stop everything this stack started; safe to call twice or after a failed start."""
        for poller in self._pollers:
            poller.stop()
        self._pollers.clear()
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._runtime_schedules is not None:
            self._runtime_schedules.stop()
            self._runtime_schedules = None
        if self._bus is not None:
            self._bus.stop()
            self._bus = None
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        for pool in self._pools.values():
            pool.stop()
        self._pools.clear()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        if self._moto is not None:
            if self._least_privilege and self.description.policies.by_function:
                with contextlib.suppress(httpx.HTTPError):
                    PERMISSION_REPORTS.append((self.template, self._moto.permissions()))
            self._moto.stop()
            self._moto = None

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke a function synchronously, as ``sam local invoke`` would; raises on a function error."""
        outcome = self._invoke(logical_id, event)
        if not outcome.ok:
            raise InvocationError(logical_id, outcome)
        return outcome.result

    def run_schedule(self, logical_id: str) -> Any:
        """Run a scheduled function now with its schedule's ``Input``.

        ``logical_id`` is the function's (its first schedule) or ``Function.Event``.
        """
        schedule = self._schedule(logical_id)
        assert self._scheduler is not None, "start() the stack first"
        outcome = self._scheduler.run(schedule)
        if not outcome.ok:
            raise InvocationError(schedule.function, outcome)
        return outcome.result

    def reset(self) -> None:
        """Empty every table and queue and the sandbox's users, grants and inbox; rerun the schedules.

        Schedules created at run time (in moto's Scheduler) are deleted and :meth:`bus_events`
        starts empty again.

        Armed AWS faults are cleared first; the AWS request counts are zeroed once the tables and
        queues are emptied, so they then hold the rerun schedules' requests and what follows.

        SSM parameters, the sandbox's tokens and the warm function processes are kept, so this
        costs milliseconds rather than a restart.
        """
        assert self._resources is not None and self._moto is not None, "start() the stack first"
        self._moto.clear_faults()
        if self._runtime_schedules is not None:
            self._runtime_schedules.reset()
        self._resources.empty(self.description.tables, self.description.queues)
        for poller in self._pollers:
            if isinstance(poller, StreamPoller):
                poller.renew()  # the tables were made anew, and with them their streams
        if self._bus is not None:
            self._bus.clear()
        self._moto.reset_requests()
        if self.sandbox_url:
            httpx.post(f"{self.sandbox_url}/sandbox/reset", json={}, timeout=10).raise_for_status()
        if self._schedules_on and self._scheduler is not None:
            for schedule in self.description.schedules:
                if schedule.enabled:
                    self._scheduler.run(schedule)

    def bus_events(self, bus: str | None = None) -> list[dict[str, Any]]:
        """Every event put on the template's event buses since the start or the last :meth:`reset`,
        oldest first, as EventBridge delivers them (``source``, ``detail-type``, ``detail``,
        ``time``, ...). ``bus`` (a logical id or name) keeps one bus's events."""
        assert self._bus is not None, "start() the stack first"
        return self._bus.events(bus)

    def aws_fault(
        self,
        operation: str,
        *,
        table: str | None = None,
        parameter: str | None = None,
        count: int = 1,
        error: str = "throttle",
        after: bool = False,
        delay: float = 0.0,
        service: str | None = None,
    ) -> dict[str, Any]:
        """Make the next ``count`` calls of ``operation`` fail in the local AWS (see docs/local.md).

        ``table`` is a table's logical id or name; ``parameter`` an SSM name or the template
        parameter holding one. ``error`` is ``throttle``, ``internal`` or ``none`` (only
        ``delay``); ``after`` lets moto apply the call before the error. Returns the armed fault.
        """
        assert self._moto is not None, "start() the stack first"
        spec: dict[str, Any] = {"operation": operation, "count": count, "error": error, "after": after}
        if delay:
            spec["delay"] = delay
        if service:
            spec["service"] = service
        if table:
            spec["table"] = self._table_aliases().get(table, table)
        if parameter:
            spec["parameter"] = self._parameter_name(parameter)
        return self._moto.arm_fault(spec)

    def aws_faults(self) -> list[dict[str, Any]]:
        """The armed faults with ``fired`` and ``left``."""
        assert self._moto is not None, "start() the stack first"
        return self._moto.faults()

    def clear_aws_faults(self) -> None:
        assert self._moto is not None, "start() the stack first"
        self._moto.clear_faults()

    def aws_requests(self) -> AwsRequests:
        """The requests the local AWS received since the last reset, by service, operation and table."""
        assert self._moto is not None, "start() the stack first"
        counted = self._moto.requests()
        return AwsRequests(counted.total, counted.rows, self._table_aliases())

    def reset_aws_requests(self) -> None:
        assert self._moto is not None, "start() the stack first"
        self._moto.reset_requests()

    def _table_aliases(self) -> dict[str, str]:
        return {table.logical_id: table.name for table in self.description.tables}

    def _parameter_name(self, parameter: str) -> str:
        value = self.description.parameters.get(parameter)
        return value if isinstance(value, str) and value.startswith("/") else parameter

    def logs(self) -> list[str]:
        """Every line the stack and its function processes wrote, prefixed with the source."""
        with self._lines_lock:
            return list(self._lines)

    def log(self, line: str) -> None:
        with self._lines_lock:
            self._lines.append(line)
        if self._echo:
            print(line, file=sys.stdout, flush=True)

    def _invoke(self, logical_id: str, event: Any) -> Outcome:
        pool = self._pools.get(logical_id)
        if pool is None:
            raise KeyError(f"no function {logical_id} in {self.template.name}")
        return pool.invoke(event)

    def _schedule(self, name: str) -> Schedule:
        for schedule in self.description.schedules:
            if name in (schedule.function, f"{schedule.function}.{schedule.event}"):
                return schedule
        raise KeyError(f"no schedule for {name} in {self.template.name}")

    def _local_secrets(self) -> dict[str, str]:
        """The WeChat credentials: the environment's, else the sandbox's defaults, else random.

        Random values are fine for the push Token and AES key: the stack configures both ends.
        """
        env = self._env
        appid, secret = _sandbox_defaults() if self._sandbox_on else ("", "")
        if env.get("WECHAT_API_BASE") and not (env.get("WECHAT_APPID") and env.get("WECHAT_APP_SECRET")):
            self.log("[local] WECHAT_API_BASE is set: set WECHAT_APPID and WECHAT_APP_SECRET too")
        aes = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
        return {
            "WECHAT_APPID": env.get("WECHAT_APPID") or appid or "wx" + secrets.token_hex(8),
            "WECHAT_APP_SECRET": env.get("WECHAT_APP_SECRET") or secret or secrets.token_hex(16),
            "WECHAT_PUSH_TOKEN": env.get("WECHAT_PUSH_TOKEN") or secrets.token_hex(16),
            "WECHAT_PUSH_AES_KEY": env.get("WECHAT_PUSH_AES_KEY") or aes,
        }

    def _start_sandbox(self) -> None:
        from sandbox.server import Sandbox

        self.sandbox = Sandbox(
            appid=self._secrets["WECHAT_APPID"],
            secret=self._secrets["WECHAT_APP_SECRET"],
            host=self._host,
            port=0,
            push_url=f"{self.api_url}/wechat/push",
            push_token=self._secrets["WECHAT_PUSH_TOKEN"],
            push_aes_key=self._secrets["WECHAT_PUSH_AES_KEY"],
        ).start()
        self.sandbox_url = self.sandbox.url

    def _overrides(self) -> dict[str, str]:
        declared = _declared_parameters(self.template)
        overrides: dict[str, str] = {}
        if "WeChatAppId" in declared:
            overrides["WeChatAppId"] = self._secrets["WECHAT_APPID"]
        base = self.sandbox_url or self._env.get("WECHAT_API_BASE")
        if base and "WeChatApiBase" in declared:
            overrides["WeChatApiBase"] = base
        overrides.update(self._parameters)
        return overrides

    def _secure_strings(self) -> dict[str, str]:
        values = {}
        for parameter, variable in SECURE_STRINGS.items():
            name = self.description.parameters.get(parameter)
            if name:
                values[str(name)] = self._secrets[variable] if variable else secrets.token_urlsafe(32)
        return values


def _declared_parameters(template: Path) -> set[str]:
    from local.template import load_yaml

    return set((load_yaml(template).get("Parameters") or {}).keys())


def _sandbox_defaults() -> tuple[str, str]:
    """The sandbox's own AppID and AppSecret."""
    from sandbox.server import DEFAULT_APPID, DEFAULT_SECRET

    return DEFAULT_APPID, DEFAULT_SECRET
