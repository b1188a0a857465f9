"""The front of the local AWS: a WSGI middleware around moto that counts requests and injects faults.

It runs inside moto's process (no extra network hop) and sees each request before moto does:

- every request is counted by service, operation and (DynamoDB) table; batch and transaction
  requests also count the items they carry;
- an armed fault makes the next ``count`` matching calls fail as AWS fails them (a throttle or an
  internal error, in the body shape botocore parses), before moto sees them or, with ``after``,
  once moto applied them ("the write happened, the answer was lost"), optionally late (``delay``);
- a DynamoDB transaction repeated with its ``ClientRequestToken`` is answered as DynamoDB answers
  it, without applying it twice (:class:`IdempotentTransactions`; moto ignores the token).

Both are driven over HTTP on the same endpoint, under :data:`CONTROL_PREFIX` (see docs/local.md).
Requests carrying :data:`INTERNAL_HEADER` are the stack's own machinery standing in for AWS
(polling runtime schedules, draining the event-bus tap, a schedule's delivery): they go straight
to moto, neither counted nor faulted, since on AWS no such request would exist or be the caller's.
This module imports only the standard library at import time, so the stack's side can read it.
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from local.access import Access, denied_answer, needs

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Answer = tuple[str, list[tuple[str, str]], bytes]

CONTROL_PREFIX = "/_local/"
INTERNAL_HEADER = "X-Local-Internal"
_INTERNAL_ENVIRON = "HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")
ERRORS = ("throttle", "internal", "none")
MAX_DELAY = 600.0
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_TARGET_SERVICES = {
    "DynamoDB": "dynamodb",
    "DynamoDBStreams": "dynamodb",
    "AmazonSSM": "ssm",
    "AmazonSQS": "sqs",
}
_OPERATION = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_FIELDS = ("operation", "service", "table", "parameter", "count", "error", "after", "delay")
_DYNAMODB = "com.amazonaws.dynamodb.v20120810#"
# (service or "*", error) -> HTTP status, __type, message; what AWS answers and botocore retries
_JSON_ERRORS = {
    ("dynamodb", "throttle"): (
        "400 Bad Request",
        _DYNAMODB + "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    ("dynamodb", "internal"): (
        "500 Internal Server Error",
        _DYNAMODB + "InternalServerError",
        "Internal error",
    ),
    ("*", "throttle"): ("400 Bad Request", "ThrottlingException", "Rate exceeded"),
    ("*", "internal"): ("500 Internal Server Error", "InternalServerError", "Internal error"),
}
_XML_ERRORS = {
    "throttle": ("400 Bad Request", "Throttling"),
    "internal": ("500 Internal Server Error", "InternalError"),
}


@dataclass(frozen=True)
class Call:
    """What the front reads of one AWS request: enough to count it and to match faults."""

    service: str
    operation: str
    tables: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    items: int | None = None
    json_protocol: bool = False
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def table_label(self) -> str | None:
        """The table the request names; several (a batch or transaction) comma-joined, sorted."""
        return ",".join(self.tables) or None


class FaultSpecError(ValueError):
    """A fault spec the front refuses; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Fault:
    id: str
    operation: str
    error: str
    count: int
    service: str | None = None
    table: str | None = None
    parameter: str | None = None
    after: bool = False
    delay: float = 0.0
    fired: int = 0

    def matches(self, call: Call) -> bool:
        return (
            self.fired < self.count
            and call.operation == self.operation
            and self.service in (None, call.service)
            and (self.table is None or self.table in call.tables)
            and (self.parameter is None or self.parameter in call.parameters)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "service": self.service,
            "table": self.table,
            "parameter": self.parameter,
            "error": self.error,
            "after": self.after,
            "delay": self.delay,
            "count": self.count,
            "fired": self.fired,
            "left": self.count - self.fired,
        }


def parse_fault(spec: Any) -> Fault:
    """A :class:`Fault` from its JSON spec; raises :class:`FaultSpecError` naming the bad field."""
    if not isinstance(spec, dict):
        raise FaultSpecError("body", "a fault is a JSON object")
    for key in spec:
        if key not in _FIELDS:
            raise FaultSpecError(key, f"unknown field {key!r}; known: {', '.join(_FIELDS)}")
    operation = spec.get("operation")
    if not isinstance(operation, str) or not _OPERATION.fullmatch(operation):
        raise FaultSpecError("operation", "operation is an API name such as PutItem or GetParameter")
    fault = Fault(
        id=uuid.uuid4().hex[:8],
        operation=operation,
        error=_choice(spec, "error", "throttle"),
        count=_positive_int(spec, "count", 1),
        service=_optional_name(spec, "service"),
        table=_optional_name(spec, "table"),
        parameter=_optional_name(spec, "parameter"),
        after=_flag(spec, "after"),
        delay=_delay(spec),
    )
    if fault.table and fault.parameter:
        raise FaultSpecError("parameter", "give a table or a parameter, not both")
    if fault.error == "none" and not fault.delay:
        raise FaultSpecError("delay", 'error "none" only delays the answer: give a delay > 0')
    return fault


def _choice(spec: dict[str, Any], key: str, default: str) -> str:
    value = spec.get(key, default)
    if value not in ERRORS:
        raise FaultSpecError(key, f"{key} is one of {', '.join(ERRORS)}")
    return str(value)


def _positive_int(spec: dict[str, Any], key: str, default: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FaultSpecError(key, f"{key} is an integer >= 1")
    return int(value)


def _optional_name(spec: dict[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise FaultSpecError(key, f"{key} is a non-empty string")
    return value


def _flag(spec: dict[str, Any], key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise FaultSpecError(key, f"{key} is true or false")
    return value


def _delay(spec: dict[str, Any]) -> float:
    value = spec.get("delay", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_DELAY:
        raise FaultSpecError("delay", f"delay is a number of seconds from 0 to {MAX_DELAY:g}")
    return float(value)


class Faults:
    """The armed faults, in the order armed; the first that matches a call takes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, call: Call) -> Fault | None:
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.matches(call):
                    fault.fired += 1
                    return fault
        return None

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class Counts:
    """Requests per (service, operation, table): how many, how many failed by a fault, items carried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str | None], dict[str, Any]] = {}

    def add(self, call: Call) -> None:
        key = (call.service, call.operation, call.table_label)
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = _row(call)
            row["count"] += 1
            if call.items is not None:
                row["items"] += call.items

    def failed(self, call: Call) -> None:
        key = (call.service, call.operation, call.table_label)
        with self._lock:
            self._rows.setdefault(key, _row(call))["failed"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            rows = [dict(row) for row in self._rows.values()]
        rows.sort(key=lambda row: (row["service"], row["operation"], row["table"] or ""))
        return {"total": sum(row["count"] for row in rows), "requests": rows}

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


def _row(call: Call) -> dict[str, Any]:
    row: dict[str, Any] = {
        "service": call.service,
        "operation": call.operation,
        "table": call.table_label,
        "count": 0,
        "failed": 0,
    }
    if call.items is not None:
        row["items"] = 0
    return row


class Front:
    """The WSGI app in front of moto's: control routes under :data:`CONTROL_PREFIX`, else count,
    maybe fault, and pass on."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.faults = Faults()
        self.counts = Counts()
        self.transactions = IdempotentTransactions()
        self.access = Access()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path.startswith(CONTROL_PREFIX):
            return _send(start_response, self._control(environ, path))
        if path.startswith("/moto-api") or environ.get(_INTERNAL_ENVIRON):
            return self.app(environ, start_response)
        call = read_call(environ)
        self.counts.add(call)
        if self.access.checks(environ):
            body = call.body if call.json_protocol else _loads(_buffer_body(environ))
            refused = self.access.denial(environ, needs(call.service, call.operation, body, environ))
            if refused is not None:
                self.counts.failed(call)
                return _send(start_response, denied_answer(call.json_protocol, refused))
        fault = self.faults.take(call)
        if fault is None and call.operation == "TransactWriteItems":
            return _send(start_response, self.transactions.answer(self.app, environ))
        if fault is None:
            return self.app(environ, start_response)
        return _send(start_response, self._inject(fault, call, environ))

    def _inject(self, fault: Fault, call: Call, environ: Environ) -> Answer:
        forwarded = _forward(self.app, environ) if fault.after or fault.error == "none" else None
        if fault.delay:
            time.sleep(fault.delay)
        if fault.error == "none" and forwarded is not None:
            return forwarded
        self.counts.failed(call)
        return error_answer(call, fault.error)

    def _control(self, environ: Environ, path: str) -> Answer:
        method = environ.get("REQUEST_METHOD", "GET")
        if path == CONTROL_PREFIX + "faults":
            return self._faults_route(method, environ)
        if path == CONTROL_PREFIX + "requests":
            if method == "GET":
                return _json("200 OK", self.counts.snapshot())
            if method == "DELETE":
                self.counts.clear()
                return _json("200 OK", self.counts.snapshot())
            return _json("405 Method Not Allowed", {"error": "method_not_allowed", "allow": "GET, DELETE"})
        if path == CONTROL_PREFIX + "policies":
            return self._policies_route(method, environ)
        return _json("404 Not Found", {"error": "not_found", "routes": ["faults", "requests", "policies"]})

    def _policies_route(self, method: str, environ: Environ) -> Answer:
        """PUT: the functions' access keys and statements (see local/access.py); GET: what was used."""
        if method == "PUT":
            self.access.register(_json_body(environ))
            return _json("200 OK", {"functions": len(self.access.report())})
        if method == "GET":
            return _json("200 OK", self.access.report())
        return _json("405 Method Not Allowed", {"error": "method_not_allowed", "allow": "GET, PUT"})

    def _faults_route(self, method: str, environ: Environ) -> Answer:
        if method == "POST":
            try:
                fault = parse_fault(_json_body(environ))
            except FaultSpecError as exc:
                return _json(
                    "400 Bad Request", {"error": "invalid_fault", "field": exc.field, "message": str(exc)}
                )
            self.faults.arm(fault)
            return _json("201 Created", fault.to_json())
        if method == "GET":
            return _json("200 OK", {"faults": self.faults.listing()})
        if method == "DELETE":
            self.faults.clear()
            return _json("200 OK", {"faults": []})
        return _json("405 Method Not Allowed", {"error": "method_not_allowed", "allow": "GET, POST, DELETE"})


class IdempotentTransactions:
    """``TransactWriteItems`` with a ``ClientRequestToken``, as DynamoDB keeps it and moto does not.

    The same token within ten minutes answers the first call's success without applying the
    items again; with other items it is refused with ``IdempotentParameterMismatchException``.
    A call that failed is not remembered, so its retry is applied.
    """

    LIFE_SECONDS = 600.0

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, str, Answer]] = {}
        self._lock = threading.Lock()

    def answer(self, app: WsgiApp, environ: Environ) -> Answer:
        body = _loads(_buffer_body(environ))
        token = body.pop("ClientRequestToken", None)
        if not isinstance(token, str):
            return _forward(app, environ)
        digest = json.dumps(body, sort_keys=True)
        now = time.monotonic()
        with self._lock:
            self._seen = {t: v for t, v in self._seen.items() if now - v[0] < self.LIFE_SECONDS}
            seen = self._seen.get(token)
            if seen is not None:
                if seen[1] != digest:
                    return _json_error(
                        "IdempotentParameterMismatchException",
                        "The request uses the same client token as a previous, but non-identical request.",
                    )
                return seen[2]
            answer = _forward(app, environ)
            if answer[0].startswith("200"):
                self._seen[token] = (now, digest, answer)
            return answer


def _json_error(kind: str, message: str) -> Answer:
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return "400 Bad Request", headers, json.dumps({"__type": _DYNAMODB + kind, "message": message}).encode()


def read_call(environ: Environ) -> Call:
    """Service and operation from the signature's scope and ``X-Amz-Target`` (or a Query ``Action``).

    Only JSON-protocol bodies (and form bodies without a target) are read; the body is put back
    for moto.
    """
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    service = _service(environ, target)
    if target:
        operation = target.rpartition(".")[2]
        body = _loads(_buffer_body(environ))
        return Call(
            service=service,
            operation=operation,
            tables=_tables(body) if service == "dynamodb" else (),
            parameters=_parameters(body),
            items=_items(body),
            json_protocol=True,
            body=body,
        )
    return Call(service=service, operation=_query_action(environ) or environ.get("REQUEST_METHOD", "GET"))


def _service(environ: Environ, target: str) -> str:
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope:
        return str(scope.group(1))
    prefix = target.partition(".")[0].split("_")[0]
    return _TARGET_SERVICES.get(prefix, prefix.lower() or "unknown")


def _query_action(environ: Environ) -> str | None:
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    if not query.get("Action") and str(environ.get("CONTENT_TYPE", "")).startswith(
        "application/x-www-form-urlencoded"
    ):
        query = parse_qs(_buffer_body(environ).decode("utf-8", "replace"))
    action = query.get("Action")
    return action[0] if action else None


def _buffer_body(environ: Environ) -> bytes:
    """Read the whole body and put a fresh stream back, with its length, for moto to read."""
    stream, length = environ["wsgi.input"], environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        body = stream.read(int(length))
    else:
        body = stream.read() if environ.get("wsgi.input_terminated") else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return bytes(body)


def _loads(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tables(body: dict[str, Any]) -> tuple[str, ...]:
    names = {body["TableName"]} if isinstance(body.get("TableName"), str) else set()
    for entry in _list(body.get("TransactItems")):
        for action in entry.values() if isinstance(entry, dict) else ():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.add(action["TableName"])
    requests = body.get("RequestItems")
    if isinstance(requests, dict):
        names.update(name for name in requests if isinstance(name, str))
    return tuple(sorted(names))


def _items(body: dict[str, Any]) -> int | None:
    """Items a transaction or batch carries (TransactItems, RequestItems' writes or keys)."""
    if "TransactItems" in body:
        return len(_list(body["TransactItems"]))
    requests = body.get("RequestItems")
    if not isinstance(requests, dict):
        return None
    return sum(
        len(_list(value.get("Keys"))) if isinstance(value, dict) else len(_list(value))
        for value in requests.values()
    )


def _parameters(body: dict[str, Any]) -> tuple[str, ...]:
    names = [body["Name"]] if isinstance(body.get("Name"), str) else []
    names += [name for name in _list(body.get("Names")) if isinstance(name, str)]
    return tuple(names)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def error_answer(call: Call, error: str) -> Answer:
    """The error AWS would send: JSON ``__type`` for JSON protocols, an XML ``ErrorResponse`` else."""
    request_id = str(uuid.uuid4())
    if not call.json_protocol:
        status, code = _XML_ERRORS[error]
        body = (
            f"<ErrorResponse><Error><Type>{'Sender' if error == 'throttle' else 'Receiver'}</Type>"
            f"<Code>{code}</Code><Message>Injected by the local AWS front</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    status, kind, message = _JSON_ERRORS.get((call.service, error)) or _JSON_ERRORS[("*", error)]
    version = "1.0" if call.service == "dynamodb" else "1.1"
    headers = [("Content-Type", f"application/x-amz-json-{version}"), ("x-amzn-RequestId", request_id)]
    return status, headers, json.dumps({"__type": kind, "message": message}).encode()


def _forward(app: WsgiApp, environ: Environ) -> Answer:
    """moto's whole answer, read before anything is sent to the client."""
    captured: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured[:] = [(status, list(headers))]
        return chunks.append

    result = app(environ, capture)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = captured[0]
    return status, headers, b"".join(chunks)


def _json_body(environ: Environ) -> Any:
    try:
        return json.loads(_buffer_body(environ) or b"null")
    except ValueError as exc:
        raise FaultSpecError("body", f"the body is not JSON: {exc}") from exc


def _json(status: str, payload: Any) -> Answer:
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode()


def _send(start_response: StartResponse, answer: Answer) -> list[bytes]:
    status, headers, body = answer
    headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _serialise_dynamodb() -> None:
    """Run moto's DynamoDB requests one at a time.

    moto checks a ConditionExpression and then writes without a lock, so two concurrent
    conditional updates can both pass; DynamoDB applies each request to an item atomically.
    Serialising DynamoDB requests restores that guarantee (20 parallel sends on one grant must
    deliver exactly one here as on AWS). The lock is inside moto, so a delayed fault holds no one up.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock, call = threading.Lock(), DynamoHandler.call_action

    def atomic(self: Any) -> Any:
        with lock:
            return call(self)

    DynamoHandler.call_action = atomic  # type: ignore[method-assign]


def _speed_up_moto() -> None:
    """Take out three costs moto pays on every request that AWS has no counterpart of.

    Measured with py-spy in the campaign bench, they were a third of moto's CPU:

    - finding the backend: each request listed moto's package directory twice and tried the
      service URL patterns one by one; the listing and each host's answer are now kept;
    - SQS retention: each message a ReceiveMessage looked at rebuilt every queue attribute to read
      one; it now reads the queue's retention period directly (same rule: a message older than it
      is not returned);
    - EventBridge targets: each event's delivery parsed the same JSONPath expressions again; parsed
      expressions are kept by their text (parsing is pure, and a parsed path is only read);
    - DynamoDB stream reads: each record went through the generic answer serialiser field by
      field; the records are already in the wire's JSON shape, so they are written out as JSON.
    Nothing here changes an answer.
    """
    import functools

    import jsonpath_ng.ext
    from moto import backends
    from moto.core.utils import unix_time
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import SQSBackend

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    find = DomainDispatcherApplication.get_backend_for_host
    hosts: dict[str | None, Any] = {}

    def backend_for_host(self: Any, host: str | None) -> Any:
        if host not in hosts:
            hosts[host] = find(self, host)
        return hosts[host]

    DomainDispatcherApplication.get_backend_for_host = backend_for_host  # type: ignore[method-assign]

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]

    def get_records(self: Any) -> str:
        result = self.backend.get_records(self._get_param("ShardIterator"), self._get_param("Limit") or 1000)
        return json.dumps(result, default=lambda value: value.timestamp())

    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign,assignment]


def main() -> None:
    """Serve moto behind the front on ``argv[1]:argv[2]``; print the port; exit when stdin closes."""
    import logging

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    _serialise_dynamodb()
    _speed_up_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = Front(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        sys.argv[1], int(sys.argv[2]), app, threaded=True, request_handler=MotoRequestHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
