"""What the local stack runs, derived from the template: functions, routes, schedules, queues.

:func:`describe` is the only place that interprets SAM resource types. It names every
resource the way the local stack creates it (``<stack>-<LogicalId>`` unless the template sets a
name), resolves each function's environment with Globals merged, and refuses features it would
otherwise get silently wrong (another runtime, payload format 1.0, a JWT or Lambda authorizer).
IAM roles are only named (so ``!GetAtt Role.Arn`` resolves): moto's Scheduler never assumes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.policies import Policies, function_policy
from local.template import ACCOUNT_ID, Resolver, TemplateError, env_string, load_yaml, merge_globals

FUNCTION_TYPES = ("AWS::Serverless::Function",)
TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable")
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...]
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    iam: bool

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class Schedule:
    function: str
    event: str
    expression: str
    input: Any
    enabled: bool
    timezone: str = "UTC"
    dead_letter_queue: str | None = None


@dataclass(frozen=True)
class QueueSource:
    function: str
    event: str
    queue_url: str
    queue_arn: str
    batch_size: int
    window_seconds: int
    report_failures: bool
    enabled: bool
    max_concurrency: int | None = None


@dataclass(frozen=True)
class StreamSource:
    """A DynamoDB stream event source: ``FilterCriteria`` patterns kept as parsed JSON."""

    function: str
    event: str
    stream_arn: str
    batch_size: int
    window_seconds: int
    starting_position: str
    filters: tuple[Any, ...]
    retries: int
    enabled: bool


@dataclass(frozen=True)
class Table:
    logical_id: str
    name: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Queue:
    logical_id: str
    name: str
    url: str
    arn: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class EventBus:
    logical_id: str
    name: str
    arn: str


@dataclass
class Description:
    functions: dict[str, Function] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    queue_sources: list[QueueSource] = field(default_factory=list)
    stream_sources: list[StreamSource] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    event_buses: list[EventBus] = field(default_factory=list)
    ssm_parameters: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    policies: Policies = field(default_factory=Policies)


def describe(
    path: Path,
    overrides: Mapping[str, str],
    *,
    region: str,
    aws_endpoint: str,
    api_url: str,
    stack_name: str = "wxsub-local",
) -> Description:
    """Everything the local stack creates and runs for the template at ``path``."""
    data = load_yaml(path)
    resolver = Resolver(
        parameters=_parameters(data.get("Parameters") or {}, overrides),
        physical={},
        conditions=data.get("Conditions") or {},
        mappings=data.get("Mappings") or {},
        region=region,
        stack_name=stack_name,
    )
    resources: dict[str, dict[str, Any]] = {
        lid: res
        for lid, res in data["Resources"].items()
        if "Condition" not in res or resolver.condition(res["Condition"])
    }
    globals_ = (data.get("Globals") or {}).get("Function") or {}
    functions = {
        lid: merge_globals(globals_, res.get("Properties") or {})
        for lid, res in resources.items()
        if res["Type"] in FUNCTION_TYPES
    }
    resources.update(_implicit_queues(functions))
    _name_resources(resources, resolver, aws_endpoint, api_url, stack_name)

    out = Description(parameters=dict(resolver.parameters))
    layer_dirs = {
        resolver.physical[lid]["Ref"]: _layer_dir(path.parent, res)
        for lid, res in resources.items()
        if res["Type"] in LAYER_TYPES
    }
    for lid, res in resources.items():
        props = resolver.resolve(res.get("Properties") or {})
        if res["Type"] in TABLE_TYPES:
            out.tables.append(Table(lid, resolver.physical[lid]["Ref"], props))
        elif res["Type"] == "AWS::SQS::Queue":
            p = resolver.physical[lid]
            out.queues.append(Queue(lid, p["QueueName"], p["QueueUrl"], p["Arn"], props))
        elif res["Type"] == "AWS::SSM::Parameter":
            out.ssm_parameters[resolver.physical[lid]["Ref"]] = env_string(props.get("Value", ""))
        elif res["Type"] == "AWS::Events::EventBus":
            p = resolver.physical[lid]
            out.event_buses.append(EventBus(lid, p["Name"], p["Arn"]))
    for lid, props in functions.items():
        fn = _function(lid, props, resolver, path.parent, layer_dirs)
        out.functions[lid] = fn
        out.policies.by_function[lid] = function_policy(lid, props, resolver)
        for event_name, event in (props.get("Events") or {}).items():
            _event(out, fn, event_name, event, resolver, resources)
    return out


def _parameters(declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"no such template parameter: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = overrides[name]
        elif "Default" in spec:
            values[name] = spec["Default"]
        else:
            raise TemplateError(f"template parameter {name} has no Default: give it a value")
        if spec.get("Type") == "CommaDelimitedList" and isinstance(values[name], str):
            values[name] = values[name].split(",")
        pattern = spec.get("AllowedPattern")
        if pattern and isinstance(values[name], str) and not re.fullmatch(pattern, values[name]):
            raise TemplateError(f"template parameter {name}={values[name]!r} does not match {pattern}")
        allowed = spec.get("AllowedValues")
        if allowed and str(values[name]) not in [str(a) for a in allowed]:
            raise TemplateError(f"template parameter {name} must be one of {allowed}")
    return values


def _implicit_queues(functions: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The dead-letter queues SAM generates for ``DeadLetterConfig: {Type: SQS}`` on schedules."""
    queues: dict[str, dict[str, Any]] = {}
    for lid, props in functions.items():
        for event_name, event in (props.get("Events") or {}).items():
            dlq = (event.get("Properties") or {}).get("DeadLetterConfig") or {}
            if event.get("Type") in ("Schedule", "ScheduleV2") and dlq.get("Type") == "SQS":
                queues[dlq.get("QueueLogicalId") or f"{lid}{event_name}Queue"] = {
                    "Type": "AWS::SQS::Queue",
                    "Properties": {},
                }
    return queues


def _name_resources(
    resources: Mapping[str, dict[str, Any]],
    resolver: Resolver,
    aws_endpoint: str,
    api_url: str,
    stack: str,
) -> None:
    region = resolver.region
    for lid, res in resources.items():
        props = res.get("Properties") or {}
        kind = res["Type"]

        def given(key: str, default: str, props: Mapping[str, Any] = props) -> str:
            return str(resolver.resolve(props[key])) if key in props else default

        if kind in TABLE_TYPES:
            name = given("TableName", f"{stack}-{lid}")
            arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"
            resolver.physical[lid] = {"Ref": name, "Arn": arn, "StreamArn": f"{arn}/stream/local"}
        elif kind == "AWS::SQS::Queue":
            fifo = bool(resolver.resolve(props.get("FifoQueue", False)))
            name = given("QueueName", f"{stack}-{lid}" + (".fifo" if fifo else ""))
            url = f"{aws_endpoint}/{ACCOUNT_ID}/{name}"
            arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"
            resolver.physical[lid] = {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": name}
        elif kind in FUNCTION_TYPES:
            name = given("FunctionName", f"{stack}-{lid}")
            arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
            resolver.physical[lid] = {"Ref": name, "Arn": arn}
        elif kind in LAYER_TYPES:
            arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:layer:{stack}-{lid}:1"
            resolver.physical[lid] = {"Ref": arn, "Arn": arn}
        elif kind in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
            resolver.physical[lid] = {"Ref": "local", "ApiEndpoint": api_url, "ApiId": "local"}
        elif kind == "AWS::SSM::Parameter":
            name = given("Name", f"{stack}-{lid}")
            resolver.physical[lid] = {"Ref": name, "Type": "String", "Value": props.get("Value")}
        elif (named := _name_other(kind, lid, given, region, stack)) is not None:
            resolver.physical[lid] = named


def _name_other(
    kind: str, lid: str, given: Callable[[str, str], str], region: str, stack: str
) -> dict[str, Any] | None:
    """Resources only referred to by name or ARN locally: event buses, IAM roles, and what only AWS
    runs (log groups, alarms, dashboards), named so the template resolves."""
    if kind == "AWS::Events::EventBus":
        name = given("Name", f"{stack}-{lid}")
        return {"Ref": name, "Name": name, "Arn": f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{name}"}
    if kind == "AWS::IAM::Role":
        name = given("RoleName", f"{stack}-{lid}")
        arn = f"arn:aws:iam::{ACCOUNT_ID}:role{given('Path', '/')}{name}"
        return {"Ref": name, "Arn": arn, "RoleId": f"AROA{lid.upper()[:17]}"}
    if kind == "AWS::Logs::LogGroup":
        name = given("LogGroupName", f"{stack}-{lid}")
        return {"Ref": name, "Arn": f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{name}:*"}
    if kind == "AWS::CloudWatch::Alarm":
        name = given("AlarmName", f"{stack}-{lid}")
        return {"Ref": name, "Arn": f"arn:aws:cloudwatch:{region}:{ACCOUNT_ID}:alarm:{name}"}
    if kind == "AWS::CloudWatch::Dashboard":
        return {"Ref": given("DashboardName", f"{stack}-{lid}")}
    return None


def _layer_dir(root: Path, resource: Mapping[str, Any]) -> Path:
    props = resource.get("Properties") or {}
    uri = props.get("ContentUri") or props.get("Content")
    if not isinstance(uri, str):
        raise TemplateError("a layer's ContentUri must be a local folder")
    folder = (root / uri).resolve()
    return folder / "python" if (folder / "python").is_dir() else folder


def _function(
    lid: str,
    props: Mapping[str, Any],
    resolver: Resolver,
    root: Path,
    layer_dirs: Mapping[str, Path],
) -> Function:
    runtime = str(resolver.resolve(props.get("Runtime", "")))
    if props.get("PackageType") == "Image" or not runtime.startswith("python"):
        raise TemplateError(f"{lid}: only zip-packaged Python functions run locally (Runtime {runtime!r})")
    code_uri = resolver.resolve(props.get("CodeUri"))
    if not isinstance(code_uri, str):
        raise TemplateError(f"{lid}: CodeUri must be a local folder")
    code_dir = (root / code_uri).resolve()
    if not code_dir.is_dir():
        raise TemplateError(f"{lid}: CodeUri {code_uri} is not a folder")
    variables = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
    layers = []
    for arn in resolver.resolve(props.get("Layers") or []):
        if arn not in layer_dirs:
            raise TemplateError(f"{lid}: layer {arn} is not defined in this template")
        layers.append(layer_dirs[arn])
    reserved = props.get("ReservedConcurrentExecutions")
    return Function(
        logical_id=lid,
        name=resolver.physical[lid]["Ref"],
        code_dir=code_dir,
        handler=str(resolver.resolve(props.get("Handler", ""))),
        timeout=int(resolver.resolve(props.get("Timeout", 3))),
        memory=int(resolver.resolve(props.get("MemorySize", 128))),
        environment={k: env_string(v) for k, v in variables.items()},
        layer_dirs=tuple(layers),
        reserved_concurrency=int(resolver.resolve(reserved)) if reserved is not None else None,
    )


def _event(
    out: Description,
    fn: Function,
    event_name: str,
    event: Mapping[str, Any],
    resolver: Resolver,
    resources: Mapping[str, dict[str, Any]],
) -> None:
    kind = event.get("Type")
    raw = event.get("Properties") or {}
    if kind == "HttpApi":
        out.routes.append(_route(fn, event_name, raw, resolver, resources))
    elif kind in ("Schedule", "ScheduleV2"):
        props = resolver.resolve(raw)
        state = props.get("State", "ENABLED")
        dlq = raw.get("DeadLetterConfig") or {}
        dlq_id = dlq.get("QueueLogicalId") or f"{fn.logical_id}{event_name}Queue"
        out.schedules.append(
            Schedule(
                function=fn.logical_id,
                event=event_name,
                expression=str(props.get("ScheduleExpression") or props.get("Schedule")),
                input=props.get("Input"),
                enabled=bool(props.get("Enabled", True)) and str(state).upper() == "ENABLED",
                timezone=str(props.get("ScheduleExpressionTimezone", "UTC")),
                dead_letter_queue=resolver.physical[dlq_id]["QueueUrl"] if dlq.get("Type") == "SQS" else None,
            )
        )
    elif kind == "SQS":
        props = resolver.resolve(raw)
        arn = str(props["Queue"])
        url = next((p["QueueUrl"] for p in resolver.physical.values() if p.get("Arn") == arn), None)
        if url is None:
            raise TemplateError(f"{fn.logical_id}.{event_name}: queue {arn} is not defined in this template")
        out.queue_sources.append(
            QueueSource(
                function=fn.logical_id,
                event=event_name,
                queue_url=url,
                queue_arn=arn,
                batch_size=int(props.get("BatchSize", 10)),
                window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                enabled=bool(props.get("Enabled", True)),
                max_concurrency=_max_concurrency(props),
            )
        )
    elif kind == "DynamoDB":
        props = resolver.resolve(raw)
        filters = ((props.get("FilterCriteria") or {}).get("Filters")) or []
        out.stream_sources.append(
            StreamSource(
                function=fn.logical_id,
                event=event_name,
                stream_arn=str(props["Stream"]),
                batch_size=int(props.get("BatchSize", 100)),
                window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                starting_position=str(props.get("StartingPosition", "LATEST")),
                filters=tuple(json.loads(f["Pattern"]) for f in filters),
                retries=int(props.get("MaximumRetryAttempts", -1)),
                enabled=bool(props.get("Enabled", True)),
            )
        )
    else:
        raise TemplateError(f"{fn.logical_id}.{event_name}: event type {kind} does not run locally")


def _max_concurrency(props: Mapping[str, Any]) -> int | None:
    value = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return None if value is None else int(value)


def _route(
    fn: Function,
    event_name: str,
    props: Mapping[str, Any],
    resolver: Resolver,
    resources: Mapping[str, dict[str, Any]],
) -> Route:
    if str(props.get("PayloadFormatVersion", "2.0")) != "2.0":
        raise TemplateError(f"{fn.logical_id}.{event_name}: only payload format 2.0 runs locally")
    api_ref = props.get("ApiId")
    api_props: Mapping[str, Any] = {}
    if isinstance(api_ref, dict) and "Ref" in api_ref and api_ref["Ref"] in resources:
        api_props = resources[api_ref["Ref"]].get("Properties") or {}
    auth = props.get("Auth") or {}
    authorizer = auth.get("Authorizer") or (api_props.get("Auth") or {}).get("DefaultAuthorizer") or "NONE"
    if authorizer not in ("AWS_IAM", "NONE"):
        raise TemplateError(f"{fn.logical_id}.{event_name}: authorizer {authorizer} does not run locally")
    path = str(resolver.resolve(props.get("Path", "$default")))
    method = str(resolver.resolve(props.get("Method", "ANY"))).upper()
    return Route(
        method="ANY" if path == "$default" else method,
        path=path,
        function=fn.logical_id,
        iam=authorizer == "AWS_IAM",
    )
