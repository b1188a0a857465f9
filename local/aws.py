"""The local AWS endpoint: moto in server mode, with the template's tables, queues and parameters."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import boto3

from local.model import Description, Queue, Table

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
    It exits when its stdin closes, so it never outlives the stack's process.
    """

    # moto checks a ConditionExpression and then writes without a lock, so two concurrent
    # conditional updates can both pass; DynamoDB applies each request to an item atomically.
    # Serialising DynamoDB requests restores that guarantee (20 parallel sends on one grant
    # must deliver exactly one here as on AWS).
    _SERVE = (
        "import logging, sys, threading\n"
        "from moto.server import ThreadedMotoServer\n"
        "from moto.dynamodb.responses import DynamoHandler\n"
        "_lock, _call = threading.Lock(), DynamoHandler.call_action\n"
        "def _atomic(self):\n"
        "    with _lock:\n"
        "        return _call(self)\n"
        "DynamoHandler.call_action = _atomic\n"
        "logging.getLogger('werkzeug').setLevel(logging.ERROR)\n"
        "server = ThreadedMotoServer(ip_address=sys.argv[1], port=int(sys.argv[2]), verbose=False)\n"
        "server.start()\n"
        "print(server.get_host_and_port()[1], flush=True)\n"
        "sys.stdin.read()\n"
    )

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log: Callable[[str], None] = print) -> None:
        self._host = host
        self._port = port
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> MotoEndpoint:
        self._process = subprocess.Popen(
            [sys.executable, "-c", self._SERVE, self._host, str(self._port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
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

    def stop(self) -> None:
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


class Resources:
    """Creates and resets what the template declares, through boto3 clients bound to moto."""

    def __init__(self, endpoint: str, region: str, credentials: tuple[str, str]) -> None:
        session = boto3.session.Session(
            aws_access_key_id=credentials[0], aws_secret_access_key=credentials[1], region_name=region
        )
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        self.sqs = session.client("sqs", endpoint_url=endpoint)
        self.ssm = session.client("ssm", endpoint_url=endpoint)

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
