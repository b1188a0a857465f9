"""Each function's IAM statements, as SAM would give its role, for the local AWS to enforce.

SAM expands ``Policies`` into the function's role: policy templates (``DynamoDBCrudPolicy`` and
the like, expanded here with SAM's own translator and its template definitions), inline
``Statement`` documents and named ``PolicyDocument`` entries. Their intrinsics are resolved with
the stack's names, so each statement names the same ARNs the local resources have.

What this cannot read it says so instead of guessing: a function with its own ``Role``, a
managed policy other than the logging and tracing ones, or ``NotAction``/``NotResource`` leaves
that function unchecked (:attr:`FunctionPolicy.unchecked` gives the reason). ``Condition`` blocks
are not evaluated: a conditional Allow counts as an Allow, so the check can only be looser than
AWS on them, never stricter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from local.template import Resolver, TemplateError

# Managed policies that grant nothing the local AWS serves (logs, traces), so they change nothing here.
_NOTHING_LOCAL = frozenset(
    {
        "AWSLambdaBasicExecutionRole",
        "AWSLambdaExecute",
        "AWSXRayDaemonWriteAccess",
        "AWSXrayWriteOnlyAccess",
        "CloudWatchLambdaInsightsExecutionRolePolicy",
    }
)


@dataclass(frozen=True)
class FunctionPolicy:
    """One function's resolved statements and the credentials its process signs with."""

    function: str
    access_key: str
    secret_key: str
    statements: tuple[dict[str, Any], ...] = ()
    unchecked: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "statements": list(self.statements)}


@dataclass
class Policies:
    """Every function's policy, keyed by logical id."""

    by_function: dict[str, FunctionPolicy] = field(default_factory=dict)

    def registry(self) -> dict[str, Any]:
        """What the local AWS front needs: access key -> function and statements, checked ones only."""
        return {p.access_key: p.to_json() for p in self.by_function.values() if p.unchecked is None}


def function_credentials(logical_id: str) -> tuple[str, str]:
    """A stable access key per function (20 characters, as AWS's are) and a secret moto ignores."""
    digest = hashlib.sha256(logical_id.encode()).hexdigest().upper()
    return "AKIALOCAL" + digest[:11], "local-function-" + digest[11:31].lower()


def function_policy(logical_id: str, props: Mapping[str, Any], resolver: Resolver) -> FunctionPolicy:
    key, secret = function_credentials(logical_id)
    if "Role" in props:
        return FunctionPolicy(logical_id, key, secret, unchecked="it names its own Role")
    policies = props.get("Policies") or []
    if not isinstance(policies, list):
        policies = [policies]
    statements: list[dict[str, Any]] = []
    for entry in policies:
        found, why = _statements(entry)
        if why is not None:
            return FunctionPolicy(logical_id, key, secret, unchecked=why)
        for statement in found:
            resolved = resolver.resolve(statement)
            normal, why = _normalise(resolved)
            if why is not None:
                return FunctionPolicy(logical_id, key, secret, unchecked=why)
            statements.append(normal)
    return FunctionPolicy(logical_id, key, secret, tuple(statements))


def _statements(entry: Any) -> tuple[list[Any], str | None]:
    if isinstance(entry, str):
        name = entry.rsplit("/", 1)[-1]
        return ([], None) if name in _NOTHING_LOCAL else ([], f"managed policy {name} is not modelled")
    if not isinstance(entry, dict):
        raise TemplateError(f"a Policies entry must be a name or a mapping, not {entry!r}")
    if "Statement" in entry:
        return _as_list(entry["Statement"]), None
    if "PolicyDocument" in entry:
        return _as_list((entry["PolicyDocument"] or {}).get("Statement")), None
    if len(entry) == 1:
        ((name, parameters),) = entry.items()
        processor = _processor()
        if not processor.has(name):
            return [], f"policy {name} is neither a SAM policy template nor a document"
        expanded = processor.convert(name, parameters or {})
        return _as_list(expanded.get("Statement")), None
    return [], f"Policies entry {sorted(entry)} is not understood"


def _normalise(statement: Any) -> tuple[dict[str, Any], str | None]:
    if not isinstance(statement, dict):
        return {}, f"statement {statement!r} is not a mapping"
    if "NotAction" in statement or "NotResource" in statement:
        return {}, "NotAction/NotResource statements are not modelled"
    return {
        "Effect": str(statement.get("Effect", "Allow")),
        "Action": [str(a) for a in _as_list(statement.get("Action"))],
        "Resource": [str(r) for r in _as_list(statement.get("Resource"))],
    }, None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@cache
def _processor() -> Any:
    from samtranslator.policy_template_processor.processor import (
        PolicyTemplatesProcessor,  # type: ignore[import-untyped]
    )

    return PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())
