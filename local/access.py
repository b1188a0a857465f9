"""Least privilege on the local AWS: each function's calls checked against its own statements.

Moto's IAM enforcement cannot do this job (it authorises DynamoDB and SSM calls against resource
``*``, so every ARN-scoped statement would deny). Instead each function signs with its own access
key (:func:`local.policies.function_credentials`) and the front looks up that key's statements:
every AWS action and resource a call needs (a transaction needs each item's action on each
table, a batch send needs ``sqs:SendMessage``, a schedule with a role needs ``iam:PassRole``) must
be allowed by some statement and denied by none, or the call fails as ``AccessDenied`` does on
AWS. Calls signed with any other key (tests, the stack's own clients) are not checked.

What each allowed call used is remembered, so :meth:`Access.report` can list every granted
(action, resource) pair no call needed: the needless permissions.

Standard library only: this runs inside moto's process.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

ACCOUNT_ID = "123456789012"
_SCOPE = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/")
_DYNAMODB_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
_DYNAMODB_TRANSACT |= {"ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_SCHEDULE_METHODS = {"POST": "CreateSchedule", "PUT": "UpdateSchedule", "DELETE": "DeleteSchedule"}
_SCHEDULE_METHODS |= {"GET": "GetSchedule"}


@dataclass(frozen=True)
class Need:
    """One IAM action on one resource that a call requires."""

    action: str
    resource: str


def access_key(environ: dict[str, Any]) -> str | None:
    found = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return found.group(1) if found else None


def needs(service: str, operation: str, body: dict[str, Any], environ: dict[str, Any]) -> list[Need]:
    """Every (action, resource) the call needs, as AWS authorises that service's operation."""
    found = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    region = found.group(2) if found else "us-east-1"
    arn = f"arn:aws:{{}}:{region}:{ACCOUNT_ID}:"
    if service == "dynamodb":
        return _dynamodb(operation, body, arn.format("dynamodb"))
    if service == "ssm":
        names = [body["Name"]] if isinstance(body.get("Name"), str) else []
        names += [n for n in body.get("Names") or [] if isinstance(n, str)]
        if isinstance(body.get("Path"), str):
            names.append(body["Path"])
        resources = [arn.format("ssm") + "parameter" + ("" if n.startswith("/") else "/") + n for n in names]
        return [Need(f"ssm:{operation}", r) for r in resources or ["*"]]
    if service == "sqs":
        action = "sqs:" + _SQS_BATCH.get(operation, operation)
        url = body.get("QueueUrl")
        name = url.rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) else body.get("QueueName")
        return [Need(action, arn.format("sqs") + str(name) if name else "*")]
    if service == "events" and operation == "PutEvents":
        buses = {
            str(e.get("EventBusName") or "default") for e in body.get("Entries") or [] if isinstance(e, dict)
        }
        return [
            Need(
                "events:PutEvents",
                bus if bus.startswith("arn:") else arn.format("events") + "event-bus/" + bus,
            )
            for bus in sorted(buses or {"default"})
        ]
    if service == "scheduler":
        return _scheduler(body, environ, arn.format("scheduler"))
    return [Need(f"{service}:{operation}", "*")]


def _dynamodb(operation: str, body: dict[str, Any], arn: str) -> list[Need]:
    found: list[Need] = []
    if operation in ("TransactWriteItems", "TransactGetItems"):
        for entry in body.get("TransactItems") or []:
            for kind, item in entry.items() if isinstance(entry, dict) else ():
                if isinstance(item, dict) and kind in _DYNAMODB_TRANSACT:
                    found.append(
                        Need("dynamodb:" + _DYNAMODB_TRANSACT[kind], arn + f"table/{item.get('TableName')}")
                    )
        return found
    if isinstance(body.get("RequestItems"), dict):
        return [Need(f"dynamodb:{operation}", arn + f"table/{name}") for name in sorted(body["RequestItems"])]
    if isinstance(body.get("TableName"), str):
        resource = arn + f"table/{body['TableName']}"
        if isinstance(body.get("IndexName"), str):
            resource += f"/index/{body['IndexName']}"
        return [Need(f"dynamodb:{operation}", resource)]
    return [Need(f"dynamodb:{operation}", "*")]


def _scheduler(body: dict[str, Any], environ: dict[str, Any], arn: str) -> list[Need]:
    path = unquote(str(environ.get("PATH_INFO") or "/")).strip("/").split("/")
    method = str(environ.get("REQUEST_METHOD", "GET"))
    if len(path) != 2 or path[0] != "schedules":
        return [Need(f"scheduler:{method}:{'/'.join(path)}", "*")]
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    group = body.get("GroupName") or (query.get("groupName") or ["default"])[0]
    found = [Need("scheduler:" + _SCHEDULE_METHODS.get(method, method), arn + f"schedule/{group}/{path[1]}")]
    role = (body.get("Target") or {}).get("RoleArn") if isinstance(body.get("Target"), dict) else None
    if method in ("POST", "PUT") and isinstance(role, str):
        found.append(Need("iam:PassRole", role))
    return found


@lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


def _matches(pattern: str, value: str, *, ignore_case: bool) -> bool:
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


class Access:
    """The registered functions' statements, the decisions, and what was used."""

    def __init__(self) -> None:
        self._by_key: dict[str, dict[str, Any]] = {}
        self._used: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def register(self, registry: dict[str, Any]) -> None:
        with self._lock:
            self._by_key = {str(k): v for k, v in registry.items()}
            self._used = {str(v["function"]): set() for v in self._by_key.values()}

    def checks(self, environ: dict[str, Any]) -> bool:
        key = access_key(environ)
        return key is not None and key in self._by_key

    def denial(self, environ: dict[str, Any], wanted: list[Need]) -> str | None:
        """The AccessDenied message for the first need no statement allows; None if all are allowed."""
        key = access_key(environ)
        policy = self._by_key.get(key or "")
        if policy is None:
            return None
        function = str(policy["function"])
        grants: list[tuple[str, str]] = []
        for need in wanted:
            allowed = _decide(policy["statements"], need)
            if allowed is None:
                return (
                    f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{function}Role/{function} is not "
                    f"authorized to perform: {need.action} on resource: {need.resource} because no "
                    f"identity-based policy allows the {need.action} action"
                )
            grants.extend(allowed)
        with self._lock:
            self._used.setdefault(function, set()).update(grants)
        return None

    def report(self) -> dict[str, Any]:
        """Per checked function: its granted (action, resource) pairs, and those no call used."""
        with self._lock:
            out: dict[str, Any] = {}
            for policy in self._by_key.values():
                function = str(policy["function"])
                granted = sorted(
                    {
                        (action, resource)
                        for s in policy["statements"]
                        if s["Effect"] == "Allow"
                        for action in s["Action"]
                        for resource in s["Resource"]
                    }
                )
                used = self._used.get(function, set())
                out[function] = {
                    "granted": [list(g) for g in granted],
                    "unused": [list(g) for g in granted if g not in used],
                }
            return out


def _decide(statements: list[dict[str, Any]], need: Need) -> list[tuple[str, str]] | None:
    """The Allow grants (action pattern, resource pattern) covering ``need``; None if denied."""
    grants: list[tuple[str, str]] = []
    for statement in statements:
        for action in statement["Action"]:
            if not _matches(action, need.action, ignore_case=True):
                continue
            for resource in statement["Resource"]:
                if _matches(resource, need.resource, ignore_case=False):
                    if statement["Effect"] == "Deny":
                        return None
                    grants.append((action, resource))
    return grants or None


def denied_answer(json_protocol: bool, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """What AWS answers a call its caller may not make, in the protocol botocore will parse."""
    if json_protocol:
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")], body
    body = json.dumps({"Message": message}).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException")]
    return "403 Forbidden", headers, body
