"""The local AWS endpoint: moto in server mode, with the template's tables, queues and parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
import httpx

from local.aws_front import CONTROL_PREFIX, INTERNAL_HEADER
from local.model import Description, Queue, Table

_ROOT = Path(__file__).resolve().parents[1]

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


class MotoEndpoint:
    """moto in server mode, in a process of its own, on a loopback port (``port=0``: a free one).

    Its own process because moto's backends are process-global: two stacks in one test session
    must not share tables, queues or parameters (and handlers then do not share moto's GIL).
    It exits when its stdin closes, so it never outlives the stack's process. moto is served
    behind :class:`local.aws_front.Front`, which counts requests and injects the faults armed
    through :meth:`arm_fault` (or over HTTP under ``/_local/``); DynamoDB requests are serialised.
    """

    _SERVE = "from local.aws_front import main; main()"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log: Callable[[str], None] = print) -> None:
        self._host = host
        self._port = port
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._control_client: httpx.Client | None = None
        self.url = ""

    def start(self) -> MotoEndpoint:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-c", self._SERVE, self._host, str(self._port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        port = self._process.stdout.readline().strip()
        if not port.isdigit():
            self._process.kill()
            error = self._process.stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"moto did not start: {error[-1] if error else 'no output'}")
        threading.Thread(target=self._forward, args=(self._process.stderr,), daemon=True).start()
        self.url = f"http://{self._host}:{int(port)}"
        return self

    def arm_fault(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Arm one fault (see docs/local.md); returns it as listed. A bad spec raises :class:`FaultError`."""
        answer = self._client().post(f"{self.url}{CONTROL_PREFIX}faults", json=dict(spec))
        if answer.status_code == 400:
            raise FaultError(answer.json()["field"], answer.json()["message"])
        answer.raise_for_status()
        return dict(answer.json())

    def faults(self) -> list[dict[str, Any]]:
        """The armed faults, in arming order, each with ``fired`` and ``left``."""
        return list(self._control("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def requests(self) -> AwsRequests:
        return AwsRequests.from_json(self._control("GET", "requests"))

    def reset_requests(self) -> None:
        self._control("DELETE", "requests")

    def enforce_policies(self, registry: Mapping[str, Any]) -> None:
        """Check each registered function's calls against its statements (see local/access.py)."""
        self._client().put(f"{self.url}{CONTROL_PREFIX}policies", json=dict(registry)).raise_for_status()

    def permissions(self) -> dict[str, Any]:
        """Per checked function: the (action, resource) pairs it was granted, and those no call used."""
        return self._control("GET", "policies")

    def _client(self) -> httpx.Client:
        if self._control_client is None:
            self._control_client = httpx.Client(timeout=10, trust_env=False)
        return self._control_client

    def _control(self, method: str, route: str) -> dict[str, Any]:
        answer = self._client().request(method, f"{self.url}{CONTROL_PREFIX}{route}")
        answer.raise_for_status()
        return dict(answer.json())

    def stop(self) -> None:
        if self._control_client is not None:
            self._control_client.close()
            self._control_client = None
        if self._process is None or self._process.poll() is not None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _forward(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._log(f"[moto] {raw.decode('utf-8', 'replace').rstrip()}")


class FaultError(ValueError):
    """The local AWS refused a fault spec; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class RequestCount:
    """Requests of one operation on one table (``None`` outside DynamoDB; several comma-joined)."""

    service: str
    operation: str
    table: str | None
    count: int
    failed: int
    items: int | None = None


@dataclass(frozen=True)
class AwsRequests:
    """What the local AWS counted since its last reset; ``aliases`` maps logical ids to table names."""

    total: int
    rows: tuple[RequestCount, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any], aliases: Mapping[str, str] | None = None) -> AwsRequests:
        rows = tuple(RequestCount(**row) for row in payload["requests"])
        return cls(total=int(payload["total"]), rows=rows, aliases=dict(aliases or {}))

    def count(
        self, service: str | None = None, operation: str | None = None, table: str | None = None
    ) -> int:
        """Requests matching every filter given (``table``: a logical id or a name)."""
        return sum(row.count for row in self.matching(service, operation, table))

    def failed(
        self, service: str | None = None, operation: str | None = None, table: str | None = None
    ) -> int:
        """Of those, how many a fault answered with an error."""
        return sum(row.failed for row in self.matching(service, operation, table))

    def items(
        self, service: str | None = None, operation: str | None = None, table: str | None = None
    ) -> int:
        """Items carried by the matching batch and transaction requests."""
        return sum(row.items or 0 for row in self.matching(service, operation, table))

    def matching(
        self, service: str | None = None, operation: str | None = None, table: str | None = None
    ) -> list[RequestCount]:
        name = self.aliases.get(table, table) if table else None
        return [
            row
            for row in self.rows
            if service in (None, row.service)
            and operation in (None, row.operation)
            and (name is None or name in (row.table or "").split(","))
        ]


class Resources:
    """Creates and resets what the template declares, through boto3 clients bound to moto."""

    def __init__(self, endpoint: str, region: str, credentials: tuple[str, str]) -> None:
        self._session = boto3.session.Session(
            aws_access_key_id=credentials[0], aws_secret_access_key=credentials[1], region_name=region
        )
        self._endpoint = endpoint
        self.dynamodb = self._session.client("dynamodb", endpoint_url=endpoint)
        self.sqs = self._session.client("sqs", endpoint_url=endpoint)
        self.ssm = self._session.client("ssm", endpoint_url=endpoint)

    def internal_client(self, service: str) -> Any:
        """A client for the stack's own machinery: the front neither counts nor faults its requests."""
        session: Any = self._session  # any service by name: boto3's typed overloads want literals
        client = session.client(service, endpoint_url=self._endpoint)
        client.meta.events.register("before-sign", _mark_internal)
        return client

    def create(self, description: Description) -> None:
        for table in description.tables:
            self.create_table(table)
        self.create_queues(description.queues)
        for name, value in description.ssm_parameters.items():
            self.ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)

    def create_queues(self, queues: Iterable[Queue]) -> None:
        """All queues first, then their redrive policies (a policy needs its DLQ to exist)."""
        queues = list(queues)
        for queue in queues:
            self.sqs.create_queue(QueueName=queue.name, Attributes=_queue_attributes(queue))
        for queue in queues:
            redrive = queue.properties.get("RedrivePolicy")
            if redrive:
                self.sqs.set_queue_attributes(
                    QueueUrl=queue.url, Attributes={"RedrivePolicy": json.dumps(redrive)}
                )

    def create_table(self, table: Table) -> None:
        self.dynamodb.create_table(**_table_arguments(table))
        ttl = table.properties.get("TimeToLiveSpecification") or {}
        if ttl.get("Enabled") in (True, "true"):
            self.dynamodb.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )

    def put_secure_strings(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self.ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    def empty(self, tables: Iterable[Table], queues: Iterable[Queue]) -> None:
        """Drop every item and message, keeping the resources and the SSM parameters.

        Queues are recreated rather than purged: SQS allows one purge a minute, and moto enforces it.
        """
        for table in tables:
            self.dynamodb.delete_table(TableName=table.name)
            self.create_table(table)
        queues = list(queues)
        for queue in queues:
            self.sqs.delete_queue(QueueUrl=queue.url)
        self.create_queues(queues)


def _mark_internal(request: Any, **_: Any) -> None:
    request.headers[INTERNAL_HEADER] = "1"


def _table_arguments(table: Table) -> dict[str, Any]:
    props = table.properties
    if "PrimaryKey" in props or "KeySchema" not in props:
        key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        kind = {"String": "S", "Number": "N", "Binary": "B"}[key["Type"]]
        return {
            "TableName": table.name,
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": kind}],
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        }
    arguments: dict[str, Any] = {
        "TableName": table.name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "TableClass"):
        if key in props:
            arguments[key] = props[key]
    if arguments["BillingMode"] == "PROVISIONED" and "ProvisionedThroughput" not in arguments:
        arguments["BillingMode"] = "PAY_PER_REQUEST"
    if arguments["BillingMode"] == "PAY_PER_REQUEST":
        for index in arguments.get("GlobalSecondaryIndexes", []):
            index.pop("ProvisionedThroughput", None)
    stream = props.get("StreamSpecification")
    if stream:
        arguments["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return arguments


def _queue_attributes(queue: Queue) -> dict[Any, str]:
    attributes = {}
    for key in _QUEUE_ATTRIBUTES:
        if key in queue.properties:
            value = queue.properties[key]
            attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return attributes
