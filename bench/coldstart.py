"""What a user waits for on a cold start, per function, against its library floor; and what a login costs.

``python -m bench coldstart`` (and the last part of ``make bench``). For every function of
template.yaml, in fresh interpreters that see only what Lambda would (the function's code, the
shared layer, and a site-packages holding exactly the layer's requirements plus the runtime's
boto3, linked from .venv), with bytecode compiled beforehand and tracing on as deployed:

- **first invocation**: importing ``app`` (its cold-start construction included) plus the first
  event's extra time over the second, both events run in that same process against the local
  stack (moto + the WeChat sandbox over loopback);
- **library floor**: a fresh interpreter importing exactly the third-party top-level packages the
  function ended up loading (read from its ``sys.modules``) and building the same boto3
  clients/resources (recorded by patching ``boto3`` in an unmeasured run only);
- the ratios first/floor and first/``import boto3, httpx`` (same interpreter setup, same run),
  each checked against the issue's goals (PASS/FAIL); the ten largest imports (``-X importtime``,
  by top-level package);
- AWS requests per login and per subscription report, counted by the local AWS, priced at list
  prices beside the campaign's cost per message.

Medians of ``RUNS`` runs; the spread (min-max) is printed beside each median because this
machine's timings are noisy. Writes bench/results/coldstart.json.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench import long_term_enum

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "coldstart.json"
REGION = "us-east-1"
RUNS = 7
IMPORTTIME_RUNS = 3
COST_ROUNDS = 20
FLOOR_GOAL = 1.15
BASELINE_GOALS = {"login": 2.6, "subscriptions": 2.6}
BASELINE_GOAL_OTHERS = 3.0
# Lambda's Python runtime brings boto3 (and its dependencies); the layer brings the rest.
RUNTIME_PACKAGES = ("boto3",)
OWN = {"app", "wxsub"}  # the function's and the layer's own code
BENCH_ENV = {
    "WECHAT_APP_SECRET": "bench-app-secret-0c1d2e3f4a5b6c7d",
    "WECHAT_PUSH_TOKEN": "benchPushToken5e2a",
    "WECHAT_PUSH_AES_KEY": "benchAesKey0123456789abcdefghijklmnopqrstuv",
    "AWS_ACCESS_KEY_ID": "AKIABENCHLOCAL000001",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-access-key-7d1e0b3a",
    "AWS_DEFAULT_REGION": REGION,
}

# The measuring process: standard library only, so nothing but what it is told to import is loaded
# before its timer starts (json and importlib are loaded first, as Lambda's runtime loads them).
CHILD = r"""
import importlib, json, os, sys, time


class Context:
    def __init__(self, request_id):
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:%s:123456789012:function:%s" % (
            env["AWS_REGION"], self.function_name)
        self.memory_limit_in_mb = int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = request_id
        self.log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.time() + 20

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def record_clients(clients):
    import boto3.session

    plain, resource = boto3.session.Session.client, boto3.session.Session.resource
    inside = [0]

    def client(self, *args, **kwargs):
        if not inside[0]:
            clients.append(["client", args[0] if args else kwargs.get("service_name")])
        return plain(self, *args, **kwargs)

    def make_resource(self, *args, **kwargs):
        clients.append(["resource", args[0] if args else kwargs.get("service_name")])
        inside[0] += 1
        try:
            return resource(self, *args, **kwargs)
        finally:
            inside[0] -= 1

    boto3.session.Session.client, boto3.session.Session.resource = client, make_resource


def third_party(site, whole=False):
    names = set()
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None) or ""
        if where.startswith(site):
            names.add(name if whole else name.partition(".")[0])
    return sorted(names)


def handler_mode(spec, out):
    clients = []
    if spec.get("probe"):
        record_clients(clients)
    module_name, _, attribute = spec["handler"].rpartition(".")
    sys.stderr.write("-- wxsub bench: handler import starts\n")
    sys.stderr.flush()
    started = time.perf_counter()
    module = importlib.import_module(module_name)
    init_ms = (time.perf_counter() - started) * 1000
    handler = getattr(module, attribute)
    calls = []
    for i, event in enumerate(spec["events"]):
        os.environ["_X_AMZN_TRACE_ID"] = "Root=1-%08x-%s;Parent=%s;Sampled=1" % (
            int(time.time()), os.urandom(12).hex(), os.urandom(8).hex())
        context = Context("bench-%d-%s" % (i, os.urandom(4).hex()))
        started = time.perf_counter()
        try:
            result = handler(event, context)
            error = None
        except Exception as exc:
            result, error = None, "%s: %s" % (type(exc).__name__, str(exc)[:300])
        took = (time.perf_counter() - started) * 1000
        del os.environ["_X_AMZN_TRACE_ID"]
        answer = {"ms": took, "error": error}
        if isinstance(result, dict):
            answer["status"] = result.get("statusCode")
            answer["body"] = str(result.get("body", result))[:300]
        calls.append(answer)
    out.update(
        init_ms=init_ms,
        calls=calls,
        modules=third_party(spec["site"]),
        every_module=third_party(spec["site"], whole=True),
        clients=clients,
    )


def floor_mode(spec, out):
    failed = []
    started = time.perf_counter()
    for name in spec["modules"]:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append("%s: %s" % (name, type(exc).__name__))
    if spec["clients"]:
        import boto3

        for kind, service in spec["clients"]:
            (boto3.resource if kind == "resource" else boto3.client)(service)
    out.update(floor_ms=(time.perf_counter() - started) * 1000, failed=failed)


def baseline_mode(spec, out):
    started = time.perf_counter()
    import boto3, httpx  # noqa

    out.update(baseline_ms=(time.perf_counter() - started) * 1000)


def main():
    mode, spec_path, out_path = sys.argv[1:4]
    with open(spec_path) as f:
        spec = json.load(f)
    out = {}
    {"handler": handler_mode, "floor": floor_mode, "baseline": baseline_mode}[mode](spec, out)
    with open(out_path, "w") as f:
        json.dump(out, f)


main()
"""


# -- a Lambda-like site-packages -----------------------------------------------------------------


def deploy_site(target: Path) -> list[str]:
    """Links into ``target`` the distributions the layer installs plus the runtime's boto3, with their
    dependencies (extras and markers evaluated), from the dev venv; returns their names."""
    requirements = [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines()
    ]
    todo = [Requirement(r) for r in [*filter(None, requirements), *RUNTIME_PACKAGES]]
    seen: dict[str, set[str]] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = set(req.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        dist = metadata.distribution(name)
        for text in dist.requires or []:
            sub = Requirement(text)
            active = ["", *sorted(seen[name])]
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in active):
                todo.append(sub)
    target.mkdir(parents=True, exist_ok=True)
    for installed in seen:
        dist = metadata.distribution(installed)
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            source, link = base / top, target / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return sorted(seen)


# -- the local stack and the events ---------------------------------------------------------------


@dataclass
class Events:
    """Fresh, representative events for each function, made against the running stack."""

    stack: Any
    api: httpx.Client = field(init=False)
    signed: httpx.Client = field(init=False)
    sandbox: httpx.Client = field(init=False)
    routes: Any = field(init=False)
    long_term_data: dict[str, str] = field(default_factory=dict)
    granted: str = ""
    sqs: Any = None

    def __post_init__(self) -> None:
        import boto3

        from local.gateway import compile_routes
        from local.sigv4 import SigV4Auth

        stack = self.stack
        self.routes = compile_routes(stack.description.routes)
        self.api = httpx.Client(base_url=stack.api_url, timeout=60)
        self.signed = httpx.Client(
            base_url=stack.api_url, auth=SigV4Auth(*stack.credentials, stack.region), timeout=60
        )
        self.sandbox = httpx.Client(base_url=stack.sandbox_url, timeout=30)
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=stack.aws_endpoint,
            region_name=stack.region,
            aws_access_key_id=stack.credentials[0],
            aws_secret_access_key=stack.credentials[1],
        )

    def prepare(self) -> None:
        from sandbox import SEEDED_LONG_TERM

        self.stack.run_schedule("RefreshTokenFunction")
        self.stack.run_schedule("SyncTemplatesFunction")
        self.granted = self.new_user()[0]
        self.sandbox.post(
            "/sandbox/subscribe",
            json={"openid": self.granted, "template_id": SEEDED_LONG_TERM, "status": "accept"},
        ).raise_for_status()
        assert self.stack.sandbox is not None
        self.stack.sandbox.wait_for_pushes(20)
        enum = long_term_enum(self.signed)
        self.long_term_data = {"time1": "2026年11月24日 10:30", "enum_string2": enum, "thing3": "设备提醒"}

    def close(self) -> None:
        for client in (self.api, self.signed, self.sandbox):
            client.close()

    # users and sessions, through the stack's own functions
    def code(self) -> str:
        answer = self.sandbox.post("/sandbox/login", json={})
        answer.raise_for_status()
        return str(answer.json()["code"])

    def new_user(self) -> tuple[str, str]:
        answer = self.api.post("/login", json={"code": self.code()})
        assert answer.status_code == 200, answer.text
        return answer.json()["openid"], answer.json()["token"]

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        query: str = "",
        iam: bool = False,
        raw: str | None = None,
    ) -> dict[str, Any]:
        """The payload 2.0 event the local gateway would hand the function for this request."""
        from local.gateway import RequestData, http_event, match_route

        found = match_route(self.routes, method, path)
        assert found is not None, f"no route {method} {path}"
        route, params = found
        content = raw if raw is not None else (json.dumps(body) if body is not None else "")
        request = RequestData(
            method=method,
            raw_path=path,
            raw_query=query,
            headers=[
                ("content-type", "application/json"),
                ("user-agent", "wxsub-bench"),
                *(headers or {}).items(),
            ],
            body=content.encode(),
            source_ip="127.0.0.1",
            port=443,
            request_id=str(uuid.uuid4()),
        )
        key = self.stack.credentials[0]
        authorizer = {"iam": {"accessKey": key, "accountId": "123456789012", "userId": key}} if iam else None
        return http_event(route, params, request, authorizer)

    def campaign(self) -> str:
        answer = self.signed.post(
            "/campaigns",
            json=self.campaign_body(),
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["campaign_id"])

    def campaign_body(self) -> dict[str, Any]:
        from sandbox import SEEDED_LONG_TERM

        template_id = SEEDED_LONG_TERM
        return {
            "template_id": template_id,
            "data": self.long_term_data,
            "audience": {"openids": [self.granted]},
        }

    def queue_record(self, logical_id: str, campaign_id: str) -> dict[str, Any]:
        """The queued message for ``campaign_id`` in the queue feeding ``logical_id``, as an SQS record."""
        source = next(s for s in self.stack.description.queue_sources if s.function == logical_id)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = self.sqs.receive_message(
                QueueUrl=source.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
            )
            for message in got.get("Messages", []):
                if json.loads(message["Body"]).get("campaign_id") == campaign_id:
                    return {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "attributes": message.get("Attributes", {}),
                        "messageAttributes": {},
                        "md5OfBody": message["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": source.queue_arn,
                        "awsRegion": self.stack.region,
                    }
        raise TimeoutError(f"no queued message for campaign {campaign_id} ({logical_id})")

    def push(self) -> dict[str, Any]:
        from sandbox import SEEDED_ONE_TIME, crypto

        names = self.stack.description.parameters
        token = self.stack.secure_strings[names["PushTokenParam"]]
        aes_key = self.stack.secure_strings[names["PushAesKeyParam"]]
        openid = "obench" + secrets.token_hex(11)
        event = {
            "ToUserName": "gh_000sandbox0",
            "FromUserName": openid,
            "CreateTime": int(time.time()),
            "MsgType": "event",
            "Event": "subscribe_msg_popup_event",
            "List": [{"TemplateId": SEEDED_ONE_TIME, "SubscribeStatusString": "accept", "PopupScene": "0"}],
        }
        encrypted = crypto.encrypt(aes_key, json.dumps(event).encode(), self.stack.appid)
        stamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        query = httpx.QueryParams(
            {
                "signature": crypto.signature(token, stamp, nonce),
                "timestamp": stamp,
                "nonce": nonce,
                "openid": openid,
                "encrypt_type": "aes",
                "msg_signature": crypto.signature(token, stamp, nonce, encrypted),
            }
        )
        body = json.dumps({"ToUserName": event["ToUserName"], "Encrypt": encrypted})
        return self.http("POST", "/wechat/push", raw=body, query=str(query))

    def stream_record(self, campaign_id: str) -> dict[str, Any]:
        sample = json.loads((ROOT / "events" / "count_deliveries.json").read_text())
        text = json.dumps(sample).replace("REPLACE_WITH_CAMPAIGN_ID", campaign_id)
        text = text.replace("REPLACE_WITH_OPENID", self.granted)
        record = json.loads(text)["Records"][0]
        message_id = uuid.uuid4().hex
        record["eventID"] = uuid.uuid4().hex
        change = record["dynamodb"]
        change["Keys"]["message_id"]["S"] = message_id
        change["SequenceNumber"] = str(
            secrets.randbelow(10**21) + 10**21
        )  # the tally's token derives from it
        for image in ("OldImage", "NewImage"):
            change[image]["message_id"]["S"] = message_id
        return {"Records": [record]}

    def one(self, name: str) -> dict[str, Any]:
        """One fresh event for the function in ``functions/<name>``; a schedule's input otherwise."""
        from local.events import schedule_event

        made = {
            "login": lambda: self.http("POST", "/login", {"code": self.code()}),
            "subscriptions": self.subscription_report,
            "send_message": lambda: self.http(
                "POST", "/messages", self.send_body(), headers=self.key(), iam=True
            ),
            "wechat_push": self.push,
            "campaigns": lambda: self.http(
                "POST", "/campaigns", self.campaign_body(), headers=self.key(), iam=True
            ),
            "start_campaign": lambda: {
                "Records": [self.queue_record("StartCampaignFunction", self.campaign())]
            },
            "send_worker": self.queued_send,
            "count_deliveries": lambda: self.stream_record(self.campaign()),
            "api_docs": lambda: self.http("GET", "/openapi.json"),
        }
        if name in made:
            return made[name]()
        lid = next(lid for lid, fn in self.stack.description.functions.items() if fn.code_dir.name == name)
        schedule = next((s for s in self.stack.description.schedules if s.function == lid), None)
        if schedule is not None:
            return dict(schedule_event(schedule, self.stack.region))
        raise KeyError(f"no representative event for {name}")

    @staticmethod
    def key() -> dict[str, str]:
        return {"idempotency-key": str(uuid.uuid4())}

    def send_body(self) -> dict[str, Any]:
        from sandbox import SEEDED_LONG_TERM

        return {"openid": self.granted, "template_id": SEEDED_LONG_TERM, "data": self.long_term_data}

    def subscription_report(self) -> dict[str, Any]:
        """A new user's session reporting what wx.requestSubscribeMessage resolved with."""
        from sandbox import SEEDED_ONE_TIME

        _, token = self.new_user()
        body = {"errMsg": "requestSubscribeMessage:ok", SEEDED_ONE_TIME: "accept"}
        return self.http("POST", "/subscriptions", body, headers={"authorization": f"Bearer {token}"})

    def queued_send(self) -> dict[str, Any]:
        """A campaign expanded by the stack's own StartCampaign: its queued send, as SQS delivers it."""
        campaign_id = self.campaign()
        expand = {"Records": [self.queue_record("StartCampaignFunction", campaign_id)]}
        self.stack.invoke("StartCampaignFunction", expand)
        return {"Records": [self.queue_record("SendWorkerFunction", campaign_id)]}


# -- measuring ------------------------------------------------------------------------------------


class SegmentSink:
    """A UDP socket standing in for the X-Ray daemon: counts the segments the functions emit."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recv(65536)
                self.count += 1
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Bench:
    stack: Any
    work: Path
    site: Path
    sink: SegmentSink
    child: Path = field(init=False)

    def __post_init__(self) -> None:
        self.child = self.work / "child.py"
        self.child.write_text(CHILD)

    def env(self, name: str, *, write_bytecode: bool = False) -> dict[str, str]:
        from local.workers import lambda_environment

        fn = self.function(name)
        policy = self.stack.description.policies.by_function.get(fn.logical_id)
        credentials = (policy.access_key, policy.secret_key) if policy else self.stack.credentials
        env = lambda_environment(
            fn, region=self.stack.region, credentials=credentials, aws_endpoint=self.stack.aws_endpoint
        )
        env.pop("AWS_SAM_LOCAL", None)  # tracing on, as deployed
        env.pop("POWERTOOLS_TRACE_DISABLED", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(str(p) for p in (fn.code_dir, *fn.layer_dirs, self.site)),
                "PYTHONPYCACHEPREFIX": str(self.work / "pycache"),
                # what Lambda sets when tracing is active; the daemon is our UDP sink
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                "AWS_XRAY_DAEMON_ADDRESS": self.sink.address,
                "_AWS_XRAY_DAEMON_ADDRESS": self.sink.address.split(":")[0],
                "_AWS_XRAY_DAEMON_PORT": self.sink.address.split(":")[1],
            }
        )
        if not write_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def function(self, name: str) -> Any:
        return next(fn for fn in self.stack.description.functions.values() if fn.code_dir.name == name)

    def run(
        self, mode: str, name: str, spec: dict[str, Any], *, write: bool = False, importtime: bool = False
    ) -> tuple[dict[str, Any], str]:
        spec_path, out_path = self.work / f"{mode}-spec.json", self.work / f"{mode}-out.json"
        spec_path.write_text(json.dumps(spec))
        out_path.unlink(missing_ok=True)
        flags = ["-X", "importtime"] if importtime else []
        done = subprocess.run(
            [sys.executable, "-S", *flags, str(self.child), mode, str(spec_path), str(out_path)],
            env=self.env(name, write_bytecode=write),
            cwd=self.function(name).code_dir,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0 or not out_path.exists():
            tail = "\n".join(done.stderr.strip().splitlines()[-6:])
            raise RuntimeError(f"{name} {mode} run failed (exit {done.returncode}):\n{tail}")
        return json.loads(out_path.read_text()), done.stderr


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def importtime_top(stderr: str, n: int = 10) -> list[dict[str, Any]]:
    """Per top-level package: the cumulative time where it is entered from outside itself (its own
    and everything it pulled in) and the sum of its modules' self times, from ``-X importtime``."""
    lines = stderr.split("-- wxsub bench: handler import starts", 1)[-1].splitlines()
    pending: list[tuple[int, dict[str, Any]]] = []  # lines come in post-order: imports before importer
    for line in lines:
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        label = parts[2].rstrip()
        depth = (len(label) - len(label.lstrip(" "))) // 2
        node: dict[str, Any] = {
            "top": label.strip().partition(".")[0],
            "self": int(parts[0]),
            "cum": int(parts[1]),
            "children": [],
        }
        while pending and pending[-1][0] > depth:
            node["children"].insert(0, pending.pop()[1])
        pending.append((depth, node))
    incl: Counter[str] = Counter()
    self_total: Counter[str] = Counter()

    def walk(node: dict[str, Any], outer: frozenset[str]) -> None:
        self_total[node["top"]] += node["self"]
        if node["top"] not in outer:  # entered from outside the package
            incl[node["top"]] += node["cum"]
        for child in node["children"]:
            walk(child, outer | {node["top"]})

    for _, root in pending:
        walk(root, frozenset())
    ranked = sorted(incl, key=lambda t: incl[t], reverse=True)[:n]
    return [
        {
            "package": top,
            "cumulative_ms": incl[top] / 1000,
            "self_ms": self_total[top] / 1000,
        }
        for top in ranked
    ]


def measure_function(bench: Bench, events: Events, name: str, baseline_ms: float) -> dict[str, Any]:
    fn = bench.function(name)
    handler = fn.handler
    site = str(bench.site) + os.sep
    result: dict[str, Any] = {"function": name, "logical_id": fn.logical_id}

    def spec(probe: bool = False) -> dict[str, Any]:
        return {
            "handler": handler,
            "site": site,
            "events": [events.one(name), events.one(name)],
            "probe": probe,
        }

    # unmeasured: writes the bytecode of everything imported, records the clients built
    probe, _ = bench.run("handler", name, spec(probe=True), write=True)
    clients = [list(c) for c in dict.fromkeys(tuple(c) for c in probe["clients"])]
    # the modules of the probe (both events run): what the floors import
    floor_spec = {"modules": probe["modules"], "clients": clients}
    # informational: every third-party module the function loaded, not only the top-level packages
    # (pydantic's top-level import is lazy, so the floor above never pays for its models)
    libs_spec = {"modules": probe["every_module"], "clients": clients}
    handler_runs: list[dict[str, Any]] = []
    floor_runs: list[float] = []
    libs_runs: list[float] = []
    floor_failed: list[str] = []
    # the floor's bytecode is the handler's; one unmeasured run in case the floor imports differ
    bench.run("floor", name, floor_spec, write=True)
    bench.run("floor", name, libs_spec, write=True)
    # interleaved, so a change in the machine's load during the measurement weighs on all three alike
    for _ in range(RUNS):
        out, _ = bench.run("handler", name, spec())
        handler_runs.append(out)
        out, _ = bench.run("floor", name, floor_spec)
        floor_runs.append(out["floor_ms"])
        floor_failed = out["failed"]
        out, _ = bench.run("floor", name, libs_spec)
        libs_runs.append(out["floor_ms"])
    tops = []
    for _ in range(IMPORTTIME_RUNS):
        _, stderr = bench.run("handler", name, {**spec(), "events": []}, importtime=True)
        tops.append(importtime_top(stderr, n=100))

    calls_ok = all(
        len(run["calls"]) == 2
        and all(
            c["error"] is None and (c.get("status") is None or 200 <= c["status"] < 300) for c in run["calls"]
        )
        for run in handler_runs
    )
    init = [r["init_ms"] for r in handler_runs]
    extra = [r["calls"][0]["ms"] - r["calls"][1]["ms"] for r in handler_runs]
    total = [i + max(0.0, e) for i, e in zip(init, extra, strict=True)]
    floor = statistics.median(floor_runs)
    first = statistics.median(total)
    goal = BASELINE_GOALS.get(name, BASELINE_GOAL_OTHERS)
    ratio_floor, ratio_base = first / floor, first / baseline_ms
    libs = statistics.median(libs_runs)
    sample = handler_runs[0]["calls"]
    result.update(
        {
            "init_ms": _spread(init),
            "first_extra_ms": _spread(extra),
            "first_call_ms": _spread([r["calls"][0]["ms"] for r in handler_runs]),
            "second_call_ms": _spread([r["calls"][1]["ms"] for r in handler_runs]),
            "first_invocation_ms": _spread(total),
            "floor_ms": _spread(floor_runs),
            "floor_modules": probe["modules"],
            "libs_ms": _spread(libs_runs),
            "ratio_libs": first / libs,
            "floor_import_failures": floor_failed,
            "clients": clients,
            "ratio_floor": ratio_floor,
            "ratio_baseline": ratio_base,
            "events_ok": calls_ok,
            "event_answers": [
                {k: c.get(k) for k in ("status", "error")} | ({"body": c.get("body")} if not calls_ok else {})
                for c in sample
            ],
            "goal_floor": FLOOR_GOAL,
            "goal_baseline": goal,
            "floor_pass": ratio_floor <= FLOOR_GOAL,
            "baseline_pass": ratio_base <= goal,
            "top_imports": _median_tops(tops),
        }
    )
    result["verdict"] = "PASS" if calls_ok and result["floor_pass"] and result["baseline_pass"] else "FAIL"
    return result


def _median_tops(runs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The ten largest third-party packages by cumulative time, and the own code's self time."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        for row in run:
            by[row["package"]].append(row)

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median([r[key] for r in rows] + [0.0] * (len(runs) - len(rows))))

    rows: list[dict[str, Any]] = [
        {"package": pkg, "cumulative_ms": median(rs, "cumulative_ms"), "self_ms": median(rs, "self_ms")}
        for pkg, rs in by.items()
    ]
    third = sorted(
        (r for r in rows if r["package"] not in OWN), key=lambda r: r["cumulative_ms"], reverse=True
    )
    return {"third_party": third[:10], "own": [r for r in rows if r["package"] in OWN]}


def measure_baseline(bench: Bench) -> dict[str, float]:
    bench.run("baseline", "login", {}, write=True)
    return _spread([bench.run("baseline", "login", {})[0]["baseline_ms"] for _ in range(RUNS)])


# -- what a login costs ---------------------------------------------------------------------------


def login_cost(events: Events, campaign_usd: float | None) -> dict[str, Any]:
    from bench.campaign import PRICES, dynamodb_units

    stack = events.stack
    out: dict[str, Any] = {"rounds": COST_ROUNDS}
    users: list[str] = []
    codes = [events.code() for _ in range(COST_ROUNDS)]
    # one untimed login, so every function process serving the counted ones is warm
    events.new_user()
    stack.reset_aws_requests()
    for code in codes:
        answer = events.api.post("/login", json={"code": code})
        assert answer.status_code == 200, answer.text
        users.append(answer.json()["token"])
    out["login"] = _per_op(stack.aws_requests(), COST_ROUNDS)
    from sandbox import SEEDED_ONE_TIME

    events.api.post(
        "/subscriptions",
        json={"errMsg": "requestSubscribeMessage:ok", SEEDED_ONE_TIME: "accept"},
        headers={"authorization": f"Bearer {events.new_user()[1]}"},
    )
    stack.reset_aws_requests()
    for token in users:
        answer = events.api.post(
            "/subscriptions",
            json={"errMsg": "requestSubscribeMessage:ok", SEEDED_ONE_TIME: "accept"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
    out["subscription_report"] = _per_op(stack.aws_requests(), COST_ROUNDS)
    for what in ("login", "subscription_report"):
        rows = out[what]["rows"]
        keyed = {(r["service"], r["operation"], r["table"] or ""): {**r, "count": r["count"]} for r in rows}
        units = dynamodb_units(keyed, {})
        per = {k: v / COST_ROUNDS for k, v in units.items()}
        lines = [
            ("DynamoDB writes", per["wru"], "WRU", "wru"),
            ("DynamoDB reads", per["rru"], "RRU", "rru"),
            ("API Gateway", 1.0, "requests", "http_api"),
            ("Lambda requests", 1.0, "invocations", "lambda_request"),
        ]
        priced: list[dict[str, Any]] = [
            {
                "what": w,
                "per_call": q,
                "unit": u,
                "usd_per_million": q * PRICES[p][0] * 1e6,
                "price": PRICES[p][1],
            }
            for w, q, u, p in lines
        ]
        ssm = sum(r["count"] for r in rows if r["service"] == "ssm") / COST_ROUNDS
        other = sum(r["count"] for r in rows if r["service"] not in ("ssm", "dynamodb")) / COST_ROUNDS
        out[what].update(
            {
                "priced": priced,
                "usd_per_million": sum(p["usd_per_million"] for p in priced),
                "ssm_per_call": ssm,
                "other_requests_per_call": other,
            }
        )
    out["campaign_usd_per_million_messages"] = campaign_usd
    return out


def _per_op(counted: Any, rounds: int) -> dict[str, Any]:
    rows = [
        {
            "service": r.service,
            "operation": r.operation,
            "table": r.table,
            "count": r.count,
            "items": r.items,
            "per_call": r.count / rounds,
        }
        for r in counted.rows
    ]
    return {"total_per_call": counted.total / rounds, "rows": rows}


def _campaign_cost(given: Mapping[str, Any] | None) -> float | None:
    source = given
    if source is None:
        path = ROOT / "bench" / "results" / "campaign.json"
        try:
            source = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
    return ((source or {}).get("cost") or {}).get("usd_per_million")


# -- reporting ------------------------------------------------------------------------------------


def report(result: Mapping[str, Any]) -> None:
    base = result["baseline_ms"]
    print(
        f"\nCold starts (issue: measure what a user waits for), {RUNS} runs each, median [min-max], ms."
        f"\n  first = import app (cold-start construction included) + first event's extra over the second;"
        f"\n  floor = import the same third-party packages + build the same boto3 clients;"
        f"\n  libs  = (not a goal) import every third-party module the function loaded + the same clients;"
        f"\n  base  = import boto3, httpx: {base['median']:.0f} [{base['min']:.0f}-{base['max']:.0f}] ms."
        f"\n  Bytecode compiled, tracing on (segments sent to a local UDP sink: {result['segments']}),"
        f" site-packages = layer requirements + boto3 only."
    )
    print(
        f"  {'function':<18}{'import':>7}{'+1st':>6}{'first':>7}{'[min-max]':>12}"
        f"{'floor':>7}{'[min-max]':>12}{'/floor':>8}{'/base':>7}{'libs':>6}{'/libs':>7}  verdict"
        f"  (goals: /floor <= {FLOOR_GOAL}, /base <= g)"
    )
    for row in result["functions"]:
        if "error" in row:
            print(f"  {row['function']:<18}ERROR: {row['error']}")
            continue
        first, floor = row["first_invocation_ms"], row["floor_ms"]
        over_floor, over_base = ("ok" if row[k] else "over" for k in ("floor_pass", "baseline_pass"))
        marks = f"/floor {over_floor}, /base {over_base} (g={row['goal_baseline']})"
        extra = f"{row['first_extra_ms']['median']:>6.0f}" if row["events_ok"] else f"{'n/a':>6}"
        print(
            f"  {row['function']:<18}{row['init_ms']['median']:>7.0f}{extra}{first['median']:>7.0f}"
            f"{_range(first):>12}{floor['median']:>7.0f}{_range(floor):>12}"
            f"{row['ratio_floor']:>8.2f}{row['ratio_baseline']:>7.2f}"
            f"{row['libs_ms']['median']:>6.0f}{row['ratio_libs']:>7.2f}  {row['verdict']:<7}  {marks}"
        )
        if not row["events_ok"]:
            print(f"      first event not measured cleanly: {row['event_answers']}")
    print("\n  Ten largest imports per function (cumulative ms where the package is entered; self ms)")
    for row in result["functions"]:
        if "error" in row:
            continue
        tops = row["top_imports"]
        parts = [f"{t['package']} {t['cumulative_ms']:.0f}/{t['self_ms']:.0f}" for t in tops["third_party"]]
        own = ", ".join(f"{t['package']} {t['self_ms']:.0f}" for t in tops["own"])
        print(f"  {row['function']:<18}" + ", ".join(parts) + f"; own code (self): {own}")
    print("  (cumulative figures overlap: boto3's includes the botocore it imports)")
    cost = result.get("cost")
    if cost:
        _report_cost(cost)


def _range(spread: Mapping[str, float]) -> str:
    return f"[{spread['min']:.0f}-{spread['max']:.0f}]"


def _report_cost(cost: Mapping[str, Any]) -> None:
    print(f"\nAWS requests per call, counted by the local AWS over {cost['rounds']} calls each")
    for what, label in (("login", "POST /login"), ("subscription_report", "POST /subscriptions")):
        part = cost[what]
        ops = ", ".join(
            f"{r['service']} {r['operation']}{' ' + r['table'] if r['table'] else ''} {r['per_call']:.2f}"
            for r in sorted(part["rows"], key=lambda r: (r["service"], r["operation"]))
        )
        print(f"  {label:<22}{part['total_per_call']:.2f} requests: {ops}")
        priced = "; ".join(
            f"{p['what']} {p['per_call']:.2f} {p['unit']} ${p['usd_per_million']:.2f}" for p in part["priced"]
        )
        print(f"  {'':<22}${part['usd_per_million']:.2f} per million at list prices ({priced})")
    campaign = cost.get("campaign_usd_per_million_messages")
    login = cost["login"]["usd_per_million"]
    if campaign:
        print(
            f"  login cost line: ${login:.2f} per million logins vs ${campaign:.2f} per million campaign "
            f"messages (bench/campaign.py): {login / campaign:.2f}x"
        )
    else:
        print(
            f"  login cost line: ${login:.2f} per million logins "
            "(no campaign figure: run `python -m bench campaign`)"
        )
    print(
        "  SSM GetParameter on standard parameters has no request charge "
        "(SecureString decryption: KMS requests)."
    )


def summary_line(result: Mapping[str, Any]) -> str:
    verdicts = Counter(row.get("verdict", "ERROR") for row in result["functions"])
    return json.dumps({"coldstart": dict(verdicts), "results": str(RESULTS.relative_to(ROOT))})


# -- entry ----------------------------------------------------------------------------------------


@contextmanager
def _stack() -> Iterator[Any]:
    from local.stack import LocalStack

    stack = LocalStack(ROOT / "template.yaml", env=BENCH_ENV, schedules=False, pollers=False, max_workers=2)
    with stack:
        yield stack


def run(campaign: Mapping[str, Any] | None = None, only: list[str] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    print("\nCold starts: preparing (a Lambda-like site-packages, the local stack) ...", flush=True)
    work = Path(tempfile.mkdtemp(prefix="wxsub-coldstart-"))
    sink = SegmentSink()
    result: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "runs": RUNS}
    try:
        result["site_packages"] = deploy_site(work / "site")
        with _stack() as stack:
            events = Events(stack)
            try:
                events.prepare()
                bench = Bench(stack, work, work / "site", sink)
                result["baseline_ms"] = measure_baseline(bench)
                names = [fn.code_dir.name for fn in stack.description.functions.values()]
                rows = []
                for name in names:
                    if only and name not in only:
                        continue
                    print(f"  {name} ...", flush=True)
                    try:
                        rows.append(measure_function(bench, events, name, result["baseline_ms"]["median"]))
                    except (RuntimeError, AssertionError, TimeoutError, KeyError, httpx.HTTPError) as exc:
                        rows.append({"function": name, "error": f"{type(exc).__name__}: {exc}"})
                result["functions"] = rows
                result["segments"] = sink.count
                result["cost"] = login_cost(events, _campaign_cost(campaign))
            finally:
                events.close()
    finally:
        sink.close()
        shutil.rmtree(work, ignore_errors=True)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    report(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    print(
        f"\n  {RESULTS.relative_to(ROOT)} written; the cold-start bench took {result['wall_seconds']:.0f} s"
    )
    print(summary_line(result))
    return result


if __name__ == "__main__":
    run(only=sys.argv[1:] or None)
