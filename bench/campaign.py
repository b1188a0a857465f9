"""Campaign figures for ``make bench`` (issue 10, item 8): throughput and its local limit, the baseline
loop, the worker's CPU per message, AWS requests per message and what they cost.

Everything runs against one :class:`local.stack.LocalStack` on loopback (moto behind the counting
front, the WeChat sandbox answering after 30 ms, the template's functions in worker processes).
Each step is bounded in count and time. Nothing is tuned and nothing asserts a figure: the issue's
targets are printed as PASS/FAIL next to what was measured. The steps, in order:

1. warm-up: the SendWorker pool started to its concurrency and a 50-recipient campaign run, so the
   measured campaign meets warm execution environments (cold starts are not per message);
2. ``W``: 20 threads of conditional ``UpdateItem`` against the stack's moto for 4 s, on a table of
   the bench's own;
3. the measured campaign: 1,000 users granted through the sandbox (their popup pushes settled),
   the front's request counts reset, ``POST /campaigns`` (audience ``granted``), ``GET`` every
   0.1 s until ``done``, then until ``counts.delivered`` is 1,000 (sent events settled) before the
   counts are read. The bench's own ``GET`` polls are measured afterwards and taken out;
4. the baseline: the same 1,000 users granted again in WeChat only (the sandbox's pushes off, so
   wxsub sees nothing), then wechatpy's sequential loop (bench/wechatpy_loop.py, run by the
   bench's own venv, bench/deps.py);
5. the CPU split: a second campaign (200 of the users, granted again) while py-spy samples every
   SendWorker process and moto, so the measured campaign is never sampled.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "campaign.json"
RECIPIENTS = int(os.environ.get("BENCH_CAMPAIGN_RECIPIENTS", "1000"))
WARM_RECIPIENTS = 50
PROFILE_RECIPIENTS = 200
LATENCY_SECONDS = 0.03
PARAMETERS = {"SendRatePerSecond": "10000"}  # high enough never to bind; the rest as the template says
WORKER = "SendWorkerFunction"
MOTO = "local AWS (moto + front)"
HERE = "bench process (gateway, sandbox, pollers, bench)"
WRITE_THREADS = 20
WRITE_WARMUP_SECONDS = 0.5
WRITE_SECONDS = 4.0
POLL_SECONDS = 0.1
CAMPAIGN_TIMEOUT = max(150.0, RECIPIENTS / 4)  # at least 4 msg/s, or the step gives up
DELIVERED_TIMEOUT = max(120.0, RECIPIENTS / 5)
GRANT_THREADS = 16
CALIBRATION_GETS = 10
SPY_RATE = 250
HOT_SPOTS = 12
DATA = {
    "thing1": "机械键盘",
    "time2": "2026年11月24日 10:30",
    "character_string3": "KHDD1912310002",
    "amount4": "¥100.00",
    "phrase5": "配送中",
}
SEND_PATH = "/cgi-bin/message/subscribe/send"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "limit": ("throughput >= 0.67 x the local limit", 0.67),
    "loop": ("throughput >= 2 x the loop", 2.0),
    "writes": ("DynamoDB writes <= 4 per delivered message", 4.0),
    "cpu": ("worker CPU <= 12 ms per message", 12.0),
}

# List prices in us-east-1 (USD per unit), as AWS publishes them.
REGION = "us-east-1"
PRICES = {
    "wru": (0.625e-6, "$0.625 per million write request units (DynamoDB on-demand)"),
    "rru": (0.125e-6, "$0.125 per million read request units (DynamoDB on-demand)"),
    "sqs": (0.40e-6, "$0.40 per million requests (SQS standard, per 64 KB chunk, past the free tier)"),
    "events": (1.00e-6, "$1.00 per million events (EventBridge custom events)"),
    "lambda_request": (0.20e-6, "$0.20 per million requests (Lambda)"),
    "lambda_gb_s": (0.0000133334, "$0.0000133334 per GB-s (Lambda arm64)"),
    "scheduler": (1.00e-6, "$1.00 per million invocations (EventBridge Scheduler, past 14 M free)"),
    "http_api": (1.00e-6, "$1.00 per million requests (API Gateway HTTP API, first 300 M a month)"),
}
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem")
DYNAMODB_BATCH_WRITES = ("TransactWriteItems", "BatchWriteItem")
DYNAMODB_READS = ("GetItem", "Query", "Scan")


class BenchError(RuntimeError):
    """A step did not finish in its time; the figures gathered so far are still reported."""


# -- what the local stack gives a benchmark ---------------------------------------------------------


@dataclass
class Invocations:
    """Every invocation of every function of the stack: how many and how long (seconds, local).

    Each function pool's ``invoke`` is wrapped in this process (the gateway, the pollers and
    direct invokes all go through it); the time includes waiting for a free worker and the pipe.
    """

    counts: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, pools: Mapping[str, Any]) -> None:
        for logical_id, pool in pools.items():
            pool.invoke = self._wrap(logical_id, pool.invoke)

    def _wrap(self, logical_id: str, invoke: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def counted(event: Any) -> Any:
            started = time.perf_counter()
            try:
                return invoke(event)
            finally:
                with self._lock:
                    self.counts[logical_id] += 1
                    self.seconds[logical_id] += time.perf_counter() - started

        return counted

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            return Counter(self.counts), Counter(self.seconds)


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, every process) since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        ticks = [int(v) for v in handle.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / CLOCK_TICKS


def pool_pids(stack: Any, logical_id: str) -> set[int]:
    pool = stack._pools.get(logical_id)  # local.workers.FunctionPool: one process per environment
    return {worker.process.pid for worker in list(getattr(pool, "_all", ()))}


def cpu_by_group(stack: Any) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process the stack runs, grouped: each function, moto, this one;
    and under "machine" the whole machine's busy seconds."""
    groups: dict[str, dict[int, float]] = {}
    for logical_id in stack._pools:
        seen = {pid: process_cpu(pid) for pid in pool_pids(stack, logical_id)}
        groups[logical_id] = {pid: cpu for pid, cpu in seen.items() if cpu is not None}
    moto = stack._moto._process.pid
    groups[MOTO] = {moto: process_cpu(moto) or 0.0}
    groups[HERE] = {os.getpid(): process_cpu(os.getpid()) or 0.0}
    groups["machine"] = {0: machine_busy()}
    return groups


def cpu_spent(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds between two readings of a group (a process started between counts whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def cpu_between(
    before: Mapping[str, Mapping[int, float]], after: Mapping[str, Mapping[int, float]]
) -> dict[str, float]:
    spent = {group: cpu_spent(before.get(group, {}), readings) for group, readings in after.items()}
    ours = sum(seconds for group, seconds in spent.items() if group != "machine")
    spent["other processes on the machine"] = max(0.0, spent.pop("machine") - ours)
    return spent


Rows = dict[tuple[str, str, str], dict[str, float]]


def request_rows(stack: Any) -> Rows:
    """The front's counts as {(service, operation, table): {"count", "items"}}, tables by logical id."""
    names = {table.name: table.logical_id for table in stack.description.tables}
    rows: Rows = {}
    for row in stack.aws_requests().rows:
        table = ",".join(names.get(t, t) for t in (row.table or "").split(",") if t)
        rows[(row.service, row.operation, table)] = {"count": row.count, "items": row.items or 0}
    return rows


def subtract(rows: Rows, less: Rows, times: float = 1.0) -> Rows:
    out: Rows = {}
    for key in set(rows) | set(less):
        count = rows.get(key, {}).get("count", 0) - times * less.get(key, {}).get("count", 0)
        items = rows.get(key, {}).get("items", 0) - times * less.get(key, {}).get("items", 0)
        if count > 1e-9:
            out[key] = {"count": count, "items": max(0.0, items)}
    return out


def dynamodb_writes(rows: Rows) -> float:
    """Item writes: PutItem, UpdateItem and DeleteItem one each; transactions and batches their items."""
    total = 0.0
    for (service, operation, _), row in rows.items():
        if service == "dynamodb" and operation in DYNAMODB_WRITES:
            total += row["count"]
        elif service == "dynamodb" and operation in DYNAMODB_BATCH_WRITES:
            total += row["items"]
    return total


def by_phase(
    at_done: Rows, final: Rows, *, sent: int, delivered_at_done: int, delivered: int
) -> dict[str, Any]:
    """Requests per sent message on the send path and per sent-event receipt, apart.

    From POST to ``done`` the workers send while a few receipts already come in; from ``done``
    until every message is delivered only receipts (and the pollers' idle receives) remain. So a
    receipt's requests are the second phase's divided by the receipts it settled, and the send
    path's are the first phase's less the receipts settled in it.
    """
    receipts = delivered - delivered_at_done
    if receipts <= 0 or sent <= 0:
        return {}
    rows = []
    for key in sorted(set(at_done) | set(final)):
        first, total = at_done.get(key, {}), final.get(key, {})
        weight = "items" if key[1] in DYNAMODB_BATCH_WRITES else "count"
        receipt = (total.get(weight, 0) - first.get(weight, 0)) / receipts
        send = (first.get(weight, 0) - delivered_at_done * receipt) / sent
        rows.append(
            {
                "service": key[0],
                "operation": key[1],
                "table": key[2] or None,
                "send": send,
                "receipt": receipt,
            }
        )
    writes = [
        r
        for r in rows
        if r["service"] == "dynamodb" and r["operation"] in DYNAMODB_WRITES + DYNAMODB_BATCH_WRITES
    ]
    return {
        "receipts_after_done": receipts,
        "rows": rows,
        "writes_send_path": sum(r["send"] for r in writes),
        "writes_receipt": sum(r["receipt"] for r in writes),
    }


def _plain(rows: Rows) -> list[dict[str, Any]]:
    return [
        {"service": s, "operation": o, "table": t or None, **row} for (s, o, t), row in sorted(rows.items())
    ]


def _item_size(value: Any) -> int:
    """DynamoDB's item size: attribute names plus values (a number ~ its digits / 2 + 1)."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TYPES:
        kind, inner = next(iter(value.items()))
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return len(inner.strip("-").replace(".", "")) // 2 + 1
        if kind == "B":
            return len(inner)
        if kind in ("BOOL", "NULL"):
            return 1
        if kind in ("SS", "NS", "BS"):
            return sum(_item_size({kind[0]: v}) for v in inner)
        if kind == "L":
            return 3 + sum(1 + _item_size(v) for v in inner)
        return 3 + sum(len(k.encode()) + 1 + _item_size(v) for k, v in inner.items())
    return sum(len(name.encode()) + _item_size(attr) for name, attr in value.items())


_TYPES = {"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"}


# -- the bench ----------------------------------------------------------------------------------------


class CampaignBench:
    def __init__(self, stack: Any, result: dict[str, Any]) -> None:
        from local.sigv4 import SigV4Auth
        from sandbox import SEEDED_ONE_TIME

        self.stack = stack
        self.result = result
        self.template_id = SEEDED_ONE_TIME
        self.api = httpx.Client(
            base_url=stack.api_url,
            auth=SigV4Auth(*stack.credentials, stack.region),
            timeout=30,
            trust_env=False,
        )
        limits = httpx.Limits(max_connections=GRANT_THREADS * 2)
        self.sb = httpx.Client(base_url=stack.sandbox_url, timeout=30, trust_env=False, limits=limits)
        self.invocations = Invocations()
        self.polls = 0
        self.users: list[str] = []
        self.source = next(s for s in stack.description.queue_sources if s.function == WORKER)
        self.concurrency = stack.queue_concurrency(self.source)

    def close(self) -> None:
        self.api.close()
        self.sb.close()

    def _client(self, service: str, **config: Any) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.stack.aws_endpoint,
            region_name=self.stack.region,
            aws_access_key_id=self.stack.credentials[0],
            aws_secret_access_key=self.stack.credentials[1],
            config=Config(**config),
        )

    # steps

    def setup(self) -> None:
        self.stack.run_schedule("RefreshTokenFunction")  # schedules are off: the token once, now
        self.stack.run_schedule("SyncTemplatesFunction")
        self.invocations.attach(self.stack._pools)
        self._ok(self.sb.post("/sandbox/config", json={"latency": LATENCY_SECONDS}))
        self.result["setup"] = {
            "recipients": RECIPIENTS,
            "sandbox_latency_ms": LATENCY_SECONDS * 1000,
            "parameters": dict(PARAMETERS),
            "worker_concurrency": self.concurrency,
            "batch_size": self.source.batch_size,
            "in_flight": self.concurrency * self.source.batch_size,
            "load_average_at_start": os.getloadavg(),
        }

    def warm_up(self) -> None:
        started = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:  # every SendWorker environment started
            list(pool.map(lambda _: self.stack.invoke(WORKER, {"Records": []}), range(self.concurrency)))
        users = self.grant(WARM_RECIPIENTS)
        self.settle_pushes()
        campaign_id = self.start_campaign()
        self.wait_for(campaign_id, lambda c: c["state"] == "done", CAMPAIGN_TIMEOUT, POLL_SECONDS * 5)
        self.wait_for(campaign_id, lambda c: c["counts"]["delivered"] >= len(users), DELIVERED_TIMEOUT, 0.5)
        self.settle_pushes()
        self.result["warm_up_seconds"] = round(time.perf_counter() - started, 1)

    def write_rate(self) -> None:
        """W: conditional UpdateItem from 20 threads against the stack's moto, on a table of our own."""
        client = self._client("dynamodb", max_pool_connections=WRITE_THREADS, retries={"mode": "standard"})
        table = "wxsub-bench-write-rate"
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        counts = [0] * WRITE_THREADS
        measuring, stop = threading.Event(), threading.Event()

        def writer(n: int) -> None:
            i = 0
            while not stop.is_set():
                client.update_item(
                    TableName=table,
                    Key={"pk": {"S": f"w#{n}#{i % 64}"}},
                    UpdateExpression="SET n = if_not_exists(n, :zero) + :one, written_at = :at",
                    ConditionExpression="attribute_not_exists(pk) OR n >= :zero",
                    ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":at": {"N": str(i)}},
                )
                i += 1
                if measuring.is_set():
                    counts[n] += 1

        threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(WRITE_THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(WRITE_WARMUP_SECONDS)
        before = cpu_by_group(self.stack)
        measuring.set()
        began = time.perf_counter()
        time.sleep(WRITE_SECONDS)
        measuring.clear()
        elapsed = time.perf_counter() - began
        spent = cpu_between(before, cpu_by_group(self.stack))
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        client.delete_table(TableName=table)
        self.result["write_rate"] = {
            "writes_per_s": sum(counts) / elapsed,
            "moto_cpu_ms_per_write": spent[MOTO] / max(1, sum(counts)) * 1000,
            "other_processes_cpu_share": spent["other processes on the machine"] / (elapsed * _cores()),
            "threads": WRITE_THREADS,
            "seconds": round(elapsed, 2),
            "how": "conditional UpdateItem (SET n = if_not_exists(n) + 1 on one of 64 keys a thread), boto3",
        }

    def campaign(self) -> None:
        """The measured campaign."""
        took = time.perf_counter()
        self.users = self.grant(RECIPIENTS)
        self.settle_pushes()
        self.result["grant_seconds"] = round(time.perf_counter() - took, 1)
        events_before = len(self.stack.bus_events())
        cpu_before = cpu_by_group(self.stack)
        calls_before, seconds_before = self.invocations.snapshot()
        polls_before = self.polls
        self.stack.reset_aws_requests()
        wall_start = time.time()
        start = time.perf_counter()
        campaign_id = self.start_campaign()
        done = self.wait_for(campaign_id, lambda c: c["state"] == "done", CAMPAIGN_TIMEOUT, POLL_SECONDS)
        elapsed = time.perf_counter() - start
        cpu_done = cpu_by_group(self.stack)
        rows_done, polls_done = request_rows(self.stack), self.polls - polls_before
        self.wait_for(campaign_id, lambda c: c["counts"]["delivered"] >= RECIPIENTS, DELIVERED_TIMEOUT, 0.5)
        self.settle_pushes()
        final = self.get_campaign(campaign_id)
        rows, polls = request_rows(self.stack), self.polls - polls_before
        cpu_final = cpu_by_group(self.stack)
        calls_after, seconds_after = self.invocations.snapshot()
        events = self.settled_events(events_before)
        per_get = self.calibrate_get(campaign_id)
        times = sorted(c["at"] for c in self.sandbox_calls() if c["at"] >= wall_start - 1)
        sending = (times[-1] - times[0] + LATENCY_SECONDS) if times else float("nan")
        sent = int(done["counts"]["sent"])
        delivered = int(final["counts"]["delivered"])
        product_rows = subtract(rows, per_get, polls)
        invocations = {
            name: {
                "count": calls_after[name] - calls_before[name],
                "seconds": seconds_after[name] - seconds_before[name],
            }
            for name in calls_after
            if calls_after[name] - calls_before[name]
        }
        until_done = cpu_between(cpu_before, cpu_done)
        until_delivered = cpu_between(cpu_before, cpu_final)
        if "CampaignsFunction" in invocations:  # the bench's own GET polls are not the product's
            entry = invocations["CampaignsFunction"]
            product = max(0.0, (entry["count"] - polls) / entry["count"])
            entry["count"] -= polls
            entry["seconds"] *= product
            until_delivered["CampaignsFunction"] = until_delivered.get("CampaignsFunction", 0.0) * product
        self.result["campaign"] = {
            "campaign_id": campaign_id,
            "seconds_post_to_done": elapsed,
            "msg_per_s": sent / elapsed,
            "sending_seconds": sending,
            "sending_msg_per_s": len(times) / sending if times else float("nan"),
            "send_calls": len(times),
            "counts_at_done": done["counts"],
            "counts_final": final["counts"],
            "failed": final.get("failed", {}),
            "delivered": delivered,
            "bench_polls": {"until_done": polls_done, "in_all": polls, "requests_per_get": _plain(per_get)},
            "aws_requests": _plain(product_rows),
            "aws_requests_at_done": _plain(subtract(rows_done, per_get, polls_done)),
            "by_phase": by_phase(
                subtract(rows_done, per_get, polls_done),
                product_rows,
                sent=sent,
                delivered_at_done=int(done["counts"]["delivered"]),
                delivered=delivered,
            ),
            "dynamodb_writes": dynamodb_writes(product_rows),
            "dynamodb_writes_per_delivered": dynamodb_writes(product_rows) / max(1, delivered),
            "events": events,
            "invocations": invocations,
            "worker_cpu_seconds": until_done.get(WORKER, 0.0),
            "worker_cpu_ms_per_msg": until_done.get(WORKER, 0.0) / max(1, sent) * 1000,
            "worker_processes": len(cpu_done.get(WORKER, {})),
            "worker_processes_started_during": len(
                set(cpu_done.get(WORKER, {})) - set(cpu_before.get(WORKER, {}))
            ),
            "cpu_until_done": until_done,
            "cpu_until_delivered": until_delivered,
            "item_sizes": self.item_sizes(),
        }

    def baseline(self, python: Path | None, why: str) -> None:
        """The same users, granted again in WeChat only, sent to one after another."""
        config = self._ok(self.sb.get("/sandbox/config"))
        self._ok(self.sb.post("/sandbox/config", json={"push_url": None}))
        try:
            self.grant(len(self.users), self.users)
            job = {
                "api_base": self.stack.sandbox_url,
                "appid": self.stack.appid,
                "access_token": self.access_token(),
                "template_id": self.template_id,
                "data": DATA,
                "openids": self.users,
            }
            if python is None:
                from bench.wechatpy_loop import httpx_loop

                self.result["loop"] = httpx_loop(job, f"wechatpy could not be installed: {why}")
                return
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                json.dump(job, handle)
            try:
                out = subprocess.run(
                    [str(python), str(ROOT / "bench" / "wechatpy_loop.py"), handle.name],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=len(self.users) * (LATENCY_SECONDS + 0.2) + 30,
                    env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
                )
            finally:
                os.unlink(handle.name)
            if out.returncode != 0:
                raise BenchError(f"wechatpy loop failed: {out.stderr.strip()[-500:]}")
            self.result["loop"] = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            self._ok(self.sb.post("/sandbox/config", json={"push_url": config["push_url"]}))

    def profile(self, py_spy: Path | None, why: str) -> None:
        """The CPU split: py-spy samples every SendWorker process and moto during a second campaign.

        A campaign of its own (200 of the same users, granted again through the sandbox), so the
        sampler never touches the measured one. py-spy reads the processes from outside
        (``--nonblocking``: they are never paused) and keeps only the thread holding the GIL at each
        sample (``--gil``): its idle filter alone kept threads blocked in ``recv`` or on a queue
        here, which is waiting, not CPU. CPU spent with the GIL released (socket calls) is missed;
        the report gives the samples' seconds next to the measured CPU.
        """
        if py_spy is None:
            raise BenchError(f"py-spy is not available ({why or 'not installed'}): no CPU split")
        users = self.users[:PROFILE_RECIPIENTS]
        self.grant(len(users), users)
        self.settle_pushes()
        targets = [("worker", pid) for pid in sorted(pool_pids(self.stack, WORKER))]
        targets.append(("moto", self.stack._moto._process.pid))
        stacks: dict[str, Counter[str]] = {"worker": Counter(), "moto": Counter()}
        with tempfile.TemporaryDirectory() as folder:
            spies = [self._spy(py_spy, Path(folder), kind, pid) for kind, pid in targets]
            try:
                time.sleep(1.0)  # attached before the first send
                before = cpu_by_group(self.stack)
                campaign_id = self.start_campaign()
                done = self.wait_for(campaign_id, lambda c: c["state"] == "done", CAMPAIGN_TIMEOUT, 0.3)
                spent = cpu_between(before, cpu_by_group(self.stack))
            finally:
                for _, _, spy in spies:
                    spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
                for _, _, spy in spies:
                    try:
                        spy.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        spy.kill()
                        spy.wait()
            failures = []
            for kind, out, _ in spies:
                if out.exists():
                    stacks[kind].update(read_raw(out))
                    keep = os.environ.get("BENCH_SPY_KEEP")  # the raw samples, to look at by hand
                    if keep:
                        Path(keep).mkdir(parents=True, exist_ok=True)
                        (Path(keep) / out.name).write_bytes(out.read_bytes())
                else:
                    log = out.with_suffix(".log").read_text(errors="replace").strip()
                    failures.append(log[-300:] or "no output")
        if not stacks["worker"]:
            raise BenchError(f"py-spy recorded nothing: {failures[:1]}")
        sent = max(1, int(done["counts"]["sent"]))
        parts, hot = split_worker(stacks["worker"])
        self.result["cpu_split"] = {
            "recipients": sent,
            "how": f"py-spy record --gil --nonblocking --rate {SPY_RATE}, every SendWorker process and moto",
            "worker_cpu_seconds": spent.get(WORKER, 0.0),
            "worker_cpu_ms_per_msg_while_sampled": spent.get(WORKER, 0.0) / sent * 1000,
            "worker_samples": sum(stacks["worker"].values()),
            "worker_samples_by_part": parts,
            "worker_hot_spots": hot,
            "moto_cpu_seconds": spent[MOTO],
            "moto_cpu_ms_per_msg": spent[MOTO] / sent * 1000,
            "moto_samples": sum(stacks["moto"].values()),
            "moto_samples_by_operation": split_moto(stacks["moto"]),
            "spy_failures": failures,
        }

    # helpers

    @staticmethod
    def _spy(py_spy: Path, folder: Path, kind: str, pid: int) -> tuple[str, Path, subprocess.Popen[bytes]]:
        out = folder / f"{kind}-{pid}.txt"
        command = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--full-filenames"]
        command += [
            "--nonblocking",
            "--gil",
            "--rate",
            str(SPY_RATE),
            "--duration",
            str(int(CAMPAIGN_TIMEOUT)),
        ]
        with open(out.with_suffix(".log"), "wb") as log:
            return kind, out, subprocess.Popen([*command, "--output", str(out)], stdout=log, stderr=log)

    def grant(self, n: int, openids: list[str] | None = None) -> list[str]:
        """``n`` users accept the template in WeChat (new users unless ``openids`` are given)."""

        def one(i: int) -> str:
            openid = openids[i] if openids else self._ok(self.sb.post("/sandbox/users", json={}))["openid"]
            body = {"openid": openid, "template_id": self.template_id, "status": "accept"}
            self._ok(self.sb.post("/sandbox/subscribe", json=body))
            return str(openid)

        with ThreadPoolExecutor(GRANT_THREADS) as pool:
            return list(pool.map(one, range(n)))

    def settle_pushes(self, timeout: float = DELIVERED_TIMEOUT) -> None:
        assert self.stack.sandbox is not None
        records = self.stack.sandbox.wait_for_pushes(timeout)
        pending = [r for r in records if r["state"] == "pending"]
        if pending:
            raise BenchError(f"{len(pending)} sandbox pushes still pending after {timeout:g} s")

    def start_campaign(self) -> str:
        body = {"template_id": self.template_id, "data": DATA, "audience": "granted"}
        answer = self.api.post("/campaigns", json=body)
        if answer.status_code != 202:
            raise BenchError(f"POST /campaigns answered {answer.status_code}: {answer.text[:300]}")
        return str(answer.json()["campaign_id"])

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        self.polls += 1
        return dict(self._ok(self.api.get(f"/campaigns/{campaign_id}")))

    def wait_for(
        self, campaign_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float, every: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            current = self.get_campaign(campaign_id)
            if condition(current):
                return current
            if current["state"] in ("cancelled", "paused") or time.monotonic() > deadline:
                raise BenchError(f"campaign {campaign_id} stopped at {current['state']} {current['counts']}")
            time.sleep(every)

    def calibrate_get(self, campaign_id: str) -> Rows:
        """What one GET /campaigns/{id} costs the local AWS (to take the bench's polls out)."""
        before = request_rows(self.stack)
        for _ in range(CALIBRATION_GETS):
            self.get_campaign(campaign_id)
        per_get: Rows = {}
        for key, row in request_rows(self.stack).items():
            count = (row["count"] - before.get(key, {}).get("count", 0)) / CALIBRATION_GETS
            if key[0] != "sqs" and count > 0:  # the pollers' long polls run meanwhile
                items = (row["items"] - before.get(key, {}).get("items", 0)) / CALIBRATION_GETS
                per_get[key] = {"count": count, "items": items}
        return per_get

    def settled_events(self, before: int) -> dict[str, int]:
        """Events put on the bus since ``before``, by detail-type, once the tap stops finding more."""
        seen, deadline = -1, time.monotonic() + 15
        while time.monotonic() < deadline:
            count = len(self.stack.bus_events())
            if count == seen:
                break
            seen = count
            time.sleep(1.0)
        return dict(Counter(str(e.get("detail-type")) for e in self.stack.bus_events()[before:]))

    def sandbox_calls(self) -> list[dict[str, Any]]:
        return list(self._ok(self.sb.get("/sandbox/calls", params={"path": SEND_PATH}))["calls"])

    def access_token(self) -> str:
        name = self.stack.description.parameters["AccessTokenParam"]
        raw = self._client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        return str(json.loads(raw)["access_token"])

    def item_sizes(self) -> dict[str, dict[str, float]]:
        """Each table's items as DynamoDB sizes them, read past the counting front (not counted)."""
        from local.aws_front import INTERNAL_HEADER

        client = self._client("dynamodb")
        client.meta.events.register(
            "before-sign", lambda request, **_: request.headers.__setitem__(INTERNAL_HEADER, "1")
        )
        sizes: dict[str, dict[str, float]] = {}
        for table in self.stack.description.tables:
            pages = client.get_paginator("scan").paginate(TableName=table.name)
            each = [_item_size(item) for page in pages for item in page.get("Items", [])]
            if each:
                sizes[table.logical_id] = {
                    "items": len(each),
                    "mean_bytes": sum(each) / len(each),
                    "max_bytes": max(each),
                    "gsis": len(table.properties.get("GlobalSecondaryIndexes") or []),
                }
        return sizes

    @staticmethod
    def _ok(answer: httpx.Response) -> Any:
        if answer.status_code >= 300:
            raise BenchError(f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}")
        return answer.json()


def _cores() -> int:
    return os.cpu_count() or 1


# -- reading py-spy's samples -------------------------------------------------------------------------

PARTS = {
    "wxsub": "wxsub (ours: layers/shared/wxsub, functions/send_worker)",
    "botocore": "AWS SDK (botocore, boto3, urllib3 under it)",
    "httpx": "httpx (httpx, httpcore, h11)",
    "powertools": "Powertools (logger, metrics, parameters)",
    "runtime": "the local runtime loop (local/worker.py)",
    "other": "other libraries",
    "unattributed": "standard library with no library caller",
}
_PACKAGES = {
    "botocore": "botocore",
    "boto3": "botocore",
    "urllib3": "botocore",
    "s3transfer": "botocore",
    "jmespath": "botocore",
    "dateutil": "botocore",
    "httpx": "httpx",
    "httpcore": "httpx",
    "h11": "httpx",
    "anyio": "httpx",
    "sniffio": "httpx",
    "certifi": "httpx",
    "idna": "httpx",
    "aws_lambda_powertools": "powertools",
    "aws_xray_sdk": "powertools",
}
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):(?P<line>\d+)\)$")
_MOTO_OPERATION = re.compile(r"/moto/(?P<service>\w+)/responses\.py$")
_GENERIC = {"call_action", "dispatch", "_dispatch", "_wrapper", "_inner", "__init__", "setup_class"}
_SERVER = "HTTP server (werkzeug, socketserver: a thread per connection)"
_MOTO_PLACES = (  # (marker in a frame's file or function, bucket), tried from the innermost frame out
    ("core/serialize.py", "moto: serialising answers (core/serialize.py)"),
    ("moto_server/werkzeug_app.py", "moto: picking the backend for each request (DomainDispatcher)"),
    ("aws_front.py", "the front (local/aws_front.py: counting, faults)"),
    ("werkzeug/", _SERVER),
    ("socketserver.py", _SERVER),
    ("http/server.py", _SERVER),
)


def _part(filename: str) -> str | None:
    """Which part a function's file belongs to; None for the standard library and built-ins."""
    if "/layers/shared/wxsub/" in filename or "/functions/" in filename:
        return "wxsub"
    if "site-packages/" in filename:
        top = filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        return _PACKAGES.get(top, "other")
    if filename.endswith("local/worker.py"):
        return "runtime"
    return None


def read_raw(path: Path) -> Counter[str]:
    """py-spy's raw output: one collapsed stack (root first, frames joined by ';') and its count a line."""
    stacks: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) of each frame, root first."""
    return [(m["function"], m["file"]) for m in map(_FRAME.match, stack.split(";")) if m]


def split_worker(stacks: Counter[str]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Samples per part, each going to its innermost frame outside the standard library (time in
    json, hmac, socket... counts for whoever called them); and the busiest such frames."""
    parts: Counter[str] = Counter()
    hot: Counter[tuple[str, str, str]] = Counter()
    for stack, count in stacks.items():
        found = next(
            ((part, _short(file), fn) for fn, file in reversed(_frames(stack)) if (part := _part(file))), None
        )
        parts[found[0] if found else "unattributed"] += count
        if found:
            hot[found] += count
    total = sum(parts.values()) or 1
    top = [
        {"part": part, "where": f"{file}:{function}", "share": count / total}
        for (part, file, function), count in hot.most_common(HOT_SPOTS)
    ]
    return dict(parts), top


def split_moto(stacks: Counter[str]) -> dict[str, int]:
    """moto's samples by the AWS operation being served (its service's ``responses.py`` handler);
    outside any handler, by where the time went (serialising, routing, the front, the server)."""
    out: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = _frames(stack)
        service = operation = None
        for function, file in frames:
            match = _MOTO_OPERATION.search(file)
            if match and match["service"] != "core":
                service = match["service"]
                if function.rpartition(".")[2] not in _GENERIC:
                    operation = function.rpartition(".")[2]
        if service:
            name = f"{service} {operation}" if operation else f"{service}: serialising the answer, dispatch"
        else:
            places = (b for fn, file in reversed(frames) for marker, b in _MOTO_PLACES if marker in file + fn)
            name = next(places, "other")
        out[name] += count
    return dict(out)


def _short(file: str) -> str:
    for marker in ("site-packages/", "/layers/shared/", "/functions/", "/local/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


# -- arithmetic ---------------------------------------------------------------------------------------


def dynamodb_units(rows: Rows, sizes: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """WRU (1 per write of an item up to 1 KB, by each table's mean item size; 2 per transactional
    item), the upper bound of GSI writes (every write also rewriting every GSI of its table), and
    RRU (1 per read: strongly consistent, up to 4 KB; 2 per transactional read)."""
    wru = gsi = rru = 0.0
    for (service, operation, table), row in rows.items():
        tables = [t for t in table.split(",") if t]
        if service != "dynamodb":
            continue
        if operation in DYNAMODB_WRITES or operation in DYNAMODB_BATCH_WRITES:
            n = row["count"] if operation in DYNAMODB_WRITES else row["items"]
            kb = max((math.ceil(sizes.get(t, {}).get("mean_bytes", 1) / 1024) for t in tables), default=1)
            units = n * kb * (2 if operation == "TransactWriteItems" else 1)
            wru += units
            gsi += units * max((sizes.get(t, {}).get("gsis", 0) for t in tables), default=0)
        elif operation in DYNAMODB_READS:
            rru += row["count"]
        elif operation in ("BatchGetItem", "TransactGetItems"):
            rru += row["items"] * (2 if operation == "TransactGetItems" else 1)
    return {"wru": wru, "gsi_wru_upper": gsi, "rru": rru}


def costs(campaign: dict[str, Any], memory: Mapping[str, int]) -> dict[str, Any]:
    """Requests per delivered message and their price per million messages, as written-out lines."""
    delivered = max(1, campaign["delivered"])
    rows = {(r["service"], r["operation"], r["table"] or ""): r for r in campaign["aws_requests"]}
    units = dynamodb_units(rows, campaign.get("item_sizes", {}))
    invocations = campaign["invocations"]
    cpu = campaign["cpu_until_delivered"]
    quantities = {
        "DynamoDB writes": (units["wru"], "WRU", "wru"),
        "DynamoDB reads": (units["rru"], "RRU", "rru"),
        "SQS": (sum(r["count"] for (s, _, _), r in rows.items() if s == "sqs"), "requests", "sqs"),
        "EventBridge": (sum(campaign["events"].values()), "events", "events"),
        "Lambda requests": (sum(v["count"] for v in invocations.values()), "invocations", "lambda_request"),
        "Lambda duration": (
            sum(v["seconds"] * memory.get(k, 128) / 1024 for k, v in invocations.items()),
            "GB-s",
            "lambda_gb_s",
        ),
        "Scheduler": (
            sum(r["count"] for (s, o, _), r in rows.items() if (s, o) == ("scheduler", "CreateSchedule")),
            "schedules",
            "scheduler",
        ),
        # WeChat's sent-event pushes reach /wechat/push through the HTTP API; plus the one POST
        "API Gateway": (
            invocations.get("WeChatPushFunction", {}).get("count", 0) + 1,
            "requests",
            "http_api",
        ),
    }
    lines = []
    for what, (quantity, unit, price) in quantities.items():
        dollars, text = PRICES[price]
        per_msg = quantity / delivered
        usd = per_msg * dollars * 1e6
        lines.append(
            {"what": what, "per_msg": per_msg, "arithmetic": f"{per_msg:.3f} {unit}/msg × {text}", "usd": usd}
        )
    total = sum(line["usd"] for line in lines)
    cpu_gb_s = sum(cpu.get(k, 0.0) * memory.get(k, 128) / 1024 for k in invocations) / delivered
    cpu_usd = cpu_gb_s * PRICES["lambda_gb_s"][0] * 1e6
    duration_usd = next(line["usd"] for line in lines if line["what"] == "Lambda duration")
    ssm = sum(r["count"] for (s, _, _), r in rows.items() if s == "ssm") / delivered
    return {
        "region": REGION,
        "lines": lines,
        "usd_per_million": total,
        "gsi_wru_per_msg_upper": units["gsi_wru_upper"] / delivered,
        "gsi_usd_upper": units["gsi_wru_upper"] / delivered * PRICES["wru"][0] * 1e6,
        "lambda_cpu_gb_s_per_msg": cpu_gb_s,
        "lambda_cpu_usd": cpu_usd,
        "usd_per_million_with_cpu_duration": total - duration_usd + cpu_usd,
        "ssm_requests_per_msg": ssm,
    }


def targets(result: dict[str, Any]) -> dict[str, Any]:
    campaign, loop, setup = result.get("campaign") or {}, result.get("loop") or {}, result["setup"]
    w_rate = (result.get("write_rate") or {}).get("writes_per_s")
    writes = campaign.get("dynamodb_writes_per_delivered")
    rtt, rate, loop_rate = loop.get("rtt_ms_median"), campaign.get("msg_per_s"), loop.get("msg_per_s")
    limit = None
    if w_rate and writes and rtt:
        by_sends, by_writes = setup["in_flight"] / (rtt / 1000), w_rate / writes
        limit = {"c_over_rtt": by_sends, "w_over_writes": by_writes, "limit": min(by_sends, by_writes)}
    to_limit = rate / limit["limit"] if rate and limit else None
    to_loop = rate / loop_rate if rate and loop_rate else None
    cpu = campaign.get("worker_cpu_ms_per_msg")
    return {
        "limit": limit,
        "ratio_to_limit": to_limit,
        "ratio_to_loop": to_loop,
        "pass": {
            TARGETS["limit"][0]: None if to_limit is None else to_limit >= TARGETS["limit"][1],
            TARGETS["loop"][0]: None if to_loop is None else to_loop >= TARGETS["loop"][1],
            TARGETS["writes"][0]: None if writes is None else writes <= TARGETS["writes"][1],
            TARGETS["cpu"][0]: None if cpu is None else cpu <= TARGETS["cpu"][1],
        },
    }


# -- the report ---------------------------------------------------------------------------------------


def _verdict(result: dict[str, Any], target: str) -> str:
    name, bound = TARGETS[target]
    ok = result["targets"]["pass"][name]
    sign = "<=" if target in ("writes", "cpu") else ">="
    return f"target {sign} {bound:g}{'x' if target in ('limit', 'loop') else ''}: " + (
        "n/a" if ok is None else ("PASS" if ok else "FAIL")
    )


def _table(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    campaign, loop, w = result.get("campaign"), result.get("loop"), result.get("write_rate")
    limit = result["targets"]["limit"]
    rows: list[tuple[str, str, str]] = []
    if campaign:
        rows.append(
            (
                "throughput, POST /campaigns -> done",
                f"{campaign['msg_per_s']:.1f} msg/s ({campaign['seconds_post_to_done']:.1f} s)",
                "",
            )
        )
        sending = f"{campaign['sending_msg_per_s']:.1f} msg/s ({campaign['sending_seconds']:.1f} s"
        sending += ", first send to last answer)"
        rows.append(("throughput, sending phase only", sending, ""))
    if w:
        rows.append(
            ("W: local DynamoDB write rate", f"{w['writes_per_s']:.0f} writes/s ({w['threads']} threads)", "")
        )
    if campaign:
        writes = f"{campaign['dynamodb_writes_per_delivered']:.2f}"
        rows.append(("w: DynamoDB writes / delivered message", writes, _verdict(result, "writes")))
    if loop:
        rows.append(("RTT of one send (loop's median)", f"{loop['rtt_ms_median']:.1f} ms", ""))
    if limit:
        formula = f"min({limit['c_over_rtt']:.0f}, {limit['w_over_writes']:.1f}) = {limit['limit']:.1f} msg/s"
        rows.append(("local limit min(c/RTT, W/w)", formula, ""))
        rows.append(
            (
                "throughput / local limit",
                f"{result['targets']['ratio_to_limit']:.2f}",
                _verdict(result, "limit"),
            )
        )
    if loop:
        rows.append(
            (loop["label"], f"{loop['msg_per_s']:.1f} msg/s ({loop['ok']} of {loop['sends']} ok)", "")
        )
    if result["targets"]["ratio_to_loop"]:
        rows.append(("wxsub / loop", f"{result['targets']['ratio_to_loop']:.2f}x", _verdict(result, "loop")))
    if campaign:
        cpu = f"{campaign['worker_cpu_ms_per_msg']:.2f} ms ({campaign['worker_cpu_seconds']:.1f} s CPU, "
        cpu += f"{campaign['worker_processes']} processes)"
        rows.append(("SendWorker CPU per message", cpu, _verdict(result, "cpu")))
    return rows


def report(result: dict[str, Any]) -> None:
    setup = result["setup"]
    print(
        f"\nCampaign on the local stack: {setup['recipients']:,} granted recipients, the sandbox answering "
        f"after {setup['sandbox_latency_ms']:.0f} ms, SendRatePerSecond {PARAMETERS['SendRatePerSecond']}, "
        f"SendWorker {setup['worker_concurrency']} at once x batch {setup['batch_size']} "
        f"(c = {setup['in_flight']} sends in "
        f"flight), warm environments; load average at start {setup['load_average_at_start'][0]:.1f}"
    )
    others = (
        (result.get("campaign") or {}).get("cpu_until_done", {}).get("other processes on the machine", 0.0)
    )
    wall = (result.get("campaign") or {}).get("seconds_post_to_done", 0.0)
    if wall and others / (wall * _cores()) > 0.1:
        print(
            f"  (this machine is shared: other processes used {others:.0f} CPU-s, "
            f"{others / (wall * _cores()) * 100:.0f}% of its capacity, during the campaign)"
        )
    rows = _table(result)
    width = max((len(r[0]) for r in rows), default=0) + 2
    value_width = max((len(r[1]) for r in rows), default=0) + 2
    for label, value, target in rows:
        print(f"  {label:<{width}}{value:<{value_width}}{target}")
    if result.get("campaign"):
        _report_campaign(result)
    if result.get("cpu_split") and result.get("campaign"):
        _report_split(result["cpu_split"], result["campaign"])
    if result.get("cost"):
        _report_cost(result["cost"])
    for step, error in result.get("errors", {}).items():
        print(f"\n  {step} did not finish: {error}")


def _report_campaign(result: dict[str, Any]) -> None:
    campaign = result["campaign"]
    delivered = max(1, campaign["delivered"])
    counts = campaign["counts_final"]
    print(
        f"\n  final counts: queued {counts['queued']}, sent {counts['sent']}, skipped {counts['skipped']}, "
        f"failed {counts['failed']} {campaign['failed'] or ''}, unknown {counts['unknown']}, "
        f"delivered {counts['delivered']}; "
        f"WeChat saw {campaign['send_calls']} send calls"
    )
    print(
        f"\nAWS requests per delivered message, counted by the local AWS front from POST until delivered = "
        f"{delivered} (the bench's {campaign['bench_polls']['in_all']} GET polls taken out)"
    )
    phases = campaign.get("by_phase") or {}
    split = {(r["service"], r["operation"], r["table"]): r for r in phases.get("rows", [])}
    print(
        f"  {'service':<10}{'operation':<20}{'table':<18}{'per msg':>9}{'items/msg':>10}"
        f"{'send path':>11}{'receipt':>9}"
    )
    for row in campaign["aws_requests"]:
        items = f"{row['items'] / delivered:.3f}" if row["items"] else ""
        table = (row["table"] or "").removesuffix("Table")
        parts = split.get((row["service"], row["operation"], row["table"]))
        apart = f"{parts['send']:>11.3f}{parts['receipt']:>9.3f}" if parts else ""
        print(
            f"  {row['service']:<10}{row['operation']:<20}{table:<18}"
            f"{row['count'] / delivered:>9.3f}{items:>10}{apart}"
        )
    if phases:
        print(
            f"  DynamoDB writes: {phases['writes_send_path']:.2f} per message on the send path + "
            f"{phases['writes_receipt']:.2f} per sent-event receipt (send path: POST -> done less the "
            f"receipts settled meanwhile;\n  receipt: done -> delivered, {phases['receipts_after_done']} "
            "receipts; the pollers' idle ReceiveMessage falls in both)"
        )
    events = campaign["events"]
    print(f"  events on the bus per message: {sum(events.values()) / delivered:.3f} {events}")
    calls = ", ".join(
        f"{k} {v['count'] / delivered:.3f} ({v['seconds'] / max(1, v['count']) * 1000:.0f} ms each)"
        for k, v in sorted(campaign["invocations"].items())
    )
    print(f"  Lambda invocations per message: {calls}")
    cpu = campaign["cpu_until_delivered"]
    per_function = ", ".join(
        f"{name} {cpu[name] / delivered * 1000:.1f} ms"
        for name in sorted(campaign["invocations"], key=lambda n: -cpu.get(n, 0.0))
        if cpu.get(name)
    )
    print(
        f"  CPU per delivered message, POST -> delivered: {per_function}, "
        f"moto {cpu[MOTO] / delivered * 1000:.1f} ms"
    )
    wall = campaign["seconds_post_to_done"]
    print(f"\n  CPU from POST to done ({wall:.1f} s wall x {_cores()} cores = {wall * _cores():.1f} CPU-s)")
    for group, seconds in sorted(campaign["cpu_until_done"].items(), key=lambda kv: -kv[1]):
        if seconds > 0.005:
            print(f"    {group:<52}{seconds:7.2f} s  {seconds / wall * 100:5.0f}% of one core")
    w = result.get("write_rate") or {}
    moto = campaign["cpu_until_done"].get(MOTO, 0.0)
    requests = sum(r["count"] for r in campaign["aws_requests_at_done"])
    if w and requests:
        print(
            f"    moto CPU per AWS request: {moto / requests * 1000:.1f} ms in the campaign "
            f"({requests:.0f} requests to "
            f"done) against {w['moto_cpu_ms_per_write']:.1f} ms per write while measuring W"
        )


def _report_split(split: dict[str, Any], campaign: dict[str, Any]) -> None:
    parts, measured = split["worker_samples_by_part"], campaign["worker_cpu_ms_per_msg"]
    total = sum(parts.values()) or 1
    print(
        f"\n  SendWorker CPU per message, split ({split['how']}, during a second campaign of "
        f"{split['recipients']}: "
        f"{split['worker_samples']} samples = {split['worker_samples'] / SPY_RATE:.2f} s holding the GIL of "
        f"{split['worker_cpu_seconds']:.2f} s CPU measured meanwhile, "
        f"{split['worker_cpu_ms_per_msg_while_sampled']:.1f}"
        f" ms/msg); the shares applied to the {measured:.2f} ms/msg measured above (a thread the OS has"
        "\n  preempted still holds the GIL, so on a busy machine the samples' seconds can exceed the CPU)"
    )
    for part, count in sorted(parts.items(), key=lambda kv: -kv[1]):
        share = count / total
        print(f"    {PARTS.get(part, part):<60}{share * 100:5.1f}%  {share * measured:6.2f} ms/msg")
    print("    (a sample counts for its innermost frame outside the standard library: json, hmac,")
    print("    socket... count for whoever called them) busiest such frames:")
    for spot in split["worker_hot_spots"]:
        print(f"      {spot['share'] * 100:5.1f}%  {spot['where']}")
    moto = split["moto_samples_by_operation"]
    moto_total = sum(moto.values()) or 1
    print(
        f"\n  local AWS (moto) CPU per message in that campaign: {split['moto_cpu_ms_per_msg']:.1f} ms "
        f"({split['moto_samples']} samples = {split['moto_samples'] / SPY_RATE:.2f} s holding the GIL of "
        f"{split['moto_cpu_seconds']:.2f} s CPU), by what moto was doing:"
    )
    for name, count in sorted(moto.items(), key=lambda kv: -kv[1])[:HOT_SPOTS]:
        share = count / moto_total
        print(f"    {name:<64}{share * 100:5.1f}%  {share * split['moto_cpu_ms_per_msg']:6.2f} ms/msg")


def _report_cost(cost: dict[str, Any]) -> None:
    print(
        f"\nAWS cost per million delivered messages at list prices, {cost['region']}, from the counts above"
    )
    for line in cost["lines"]:
        print(f"  {line['what']:<17}{line['arithmetic']} = ${line['usd']:,.2f}")
    print(
        f"  {'total':<17}${cost['usd_per_million']:,.2f} per million messages "
        f"(${cost['usd_per_million_with_cpu_duration']:,.2f} with Lambda duration at the functions' CPU time)"
    )
    notes = [
        "DynamoDB: 1 WRU per write of an item up to 1 KB (each table's mean item size, measured at the end),",
        "2 per transactional item; 1 RRU per read (strongly consistent, up to 4 KB). GSI writes are not in",
        "the total: if every write also rewrote every GSI of its table, "
        f"+ {cost['gsi_wru_per_msg_upper']:.2f} WRU/msg = + ${cost['gsi_usd_upper']:,.2f}.",
        f"SSM GetParameter ({cost['ssm_requests_per_msg']:.3f}/msg) is free on standard parameters.",
        "Lambda duration: the local invocation times (waiting for a worker, the pipe, the handler on 2",
        "shared cores, mostly waiting on moto) at each function's MemorySize, an upper bound; the functions'",
        f"CPU time instead, a lower bound: {cost['lambda_cpu_gb_s_per_msg']:.4f} GB-s/msg = "
        f"${cost['lambda_cpu_usd']:,.2f}.",
    ]
    for note in notes:
        print(f"  {note}")


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures, for one JSON line."""
    campaign, loop, verdicts = result.get("campaign") or {}, result.get("loop") or {}, result["targets"]
    return {
        "campaign_msg_per_s": campaign.get("msg_per_s"),
        "sending_msg_per_s": campaign.get("sending_msg_per_s"),
        "local_limit_msg_per_s": (verdicts["limit"] or {}).get("limit"),
        "ratio_to_limit": verdicts["ratio_to_limit"],
        "loop_msg_per_s": loop.get("msg_per_s"),
        "ratio_to_loop": verdicts["ratio_to_loop"],
        "dynamodb_writes_per_delivered": campaign.get("dynamodb_writes_per_delivered"),
        "worker_cpu_ms_per_msg": campaign.get("worker_cpu_ms_per_msg"),
        "usd_per_million": (result.get("cost") or {}).get("usd_per_million"),
        "pass": verdicts["pass"],
    }


def run() -> dict[str, Any]:
    from bench.deps import bench_tools
    from local.stack import LocalStack
    from local.template import load_yaml

    started = time.monotonic()
    result: dict[str, Any] = {"errors": {}}
    print("\nCampaign benchmark (issue 10): preparing ...", flush=True)
    tools = bench_tools()
    template = ROOT / "template.yaml"
    declared = load_yaml(template).get("Parameters") or {}
    workers = int(declared.get("SendWorkerConcurrency", {}).get("Default", 4))
    stack = LocalStack(
        template,
        env={"AWS_DEFAULT_REGION": REGION},
        parameters=PARAMETERS,
        max_workers=workers,
        schedules=False,
    )
    with stack:
        memory = {lid: fn.memory for lid, fn in stack.description.functions.items()}
        bench = CampaignBench(stack, result)
        try:
            bench.setup()
            steps: list[tuple[str, Callable[[], None]]] = [
                ("warm-up", bench.warm_up),
                ("write rate", bench.write_rate),
                ("campaign", bench.campaign),
                ("loop", lambda: bench.baseline(tools.python, tools.why_not)),
                ("cpu split", lambda: bench.profile(tools.py_spy, tools.why_not)),
            ]
            for name, step in steps:
                if name in ("loop", "cpu split") and not bench.users:
                    continue
                try:
                    step()
                except (BenchError, httpx.HTTPError, subprocess.SubprocessError, OSError, KeyError) as exc:
                    result["errors"][name] = f"{type(exc).__name__}: {exc}"
                    if name == "warm-up":
                        break
                print(f"  {name}: done at {time.monotonic() - started:.0f} s", flush=True)
        finally:
            bench.close()
    result["targets"] = targets(result)
    if result.get("campaign"):
        result["cost"] = costs(result["campaign"], memory)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    report(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"\n  {RESULTS.relative_to(ROOT)} written; the campaign bench took {result['wall_seconds']:.0f} s")
    print(json.dumps({"campaign": summary(result)}, default=str))
    return result


if __name__ == "__main__":
    run()
