"""``make bench``: cold starts, validation cost, the send path and a campaign on the local stack.

Prints figures and ratios; nothing here asserts a time. Each part is bounded in count and runs
only against loopback addresses. ``python -m bench campaign`` runs the campaign figures alone
(bench/campaign.py, which also writes bench/results/campaign.json); ``python -m bench send`` the
others alone.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("login", "send_message", "wechat_push", "refresh_token")
COLD_RUNS = 3
CONFIG_KEYS = (
    "APP_SECRET_PARAM",
    "SESSION_KEY_PARAM",
    "ACCESS_TOKEN_PARAM",
    "PUSH_TOKEN_PARAM",
    "PUSH_AES_KEY_PARAM",
    "STATE_TABLE",
    "IDEMPOTENCY_TABLE",
    "GRANTS_TABLE",
    "DELIVERIES_TABLE",
    "TEMPLATES_TABLE",
)
SENDS = 200


def cold_starts() -> None:
    print("Cold start: importing functions/<name>/app.py in a fresh Python, median of 3")
    print("  (site-packages holds pip's .pyc, as a compiled build would; the handler's own code does not)")
    times = {name: statistics.median(_import(name) for _ in range(COLD_RUNS)) for name in FUNCTIONS}
    lightest = min(times.values())
    for name, took in times.items():
        print(f"  {name:<16}{took:>7.0f} ms  {took / lightest:4.1f}x the lightest")


def _import(name: str) -> float:
    path = str(ROOT / "functions" / name / "app.py")
    code = (
        "import importlib.util, time; t = time.perf_counter();"
        f"s = importlib.util.spec_from_file_location('app', {path!r});"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m);"
        "print((time.perf_counter() - t) * 1000)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions' / name}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "WECHAT_APPID": "wx0000000000bench",
        **{key: f"bench-{key.lower()}" for key in CONFIG_KEYS},
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SAM_LOCAL": "true",
        "POWERTOOLS_SERVICE_NAME": "wxsub",
        "POWERTOOLS_METRICS_NAMESPACE": "wxsub",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def validation(send_p50_ms: float) -> None:
    from wxsub import keywords

    content = "".join(
        f"{label}:{{{{{key}.DATA}}}}\n"
        for label, key in [
            ("物品", "thing1"),
            ("时间", "time2"),
            ("单号", "character_string3"),
            ("金额", "amount4"),
        ]
    )
    content += "状态:{{phrase5.DATA}}\n"
    template = keywords.parse_content(content)
    data = {
        "thing1": "机械键盘",
        "time2": "2026年11月24日 10:30",
        "character_string3": "KHDD1912310002",
        "amount4": "¥100.00",
        "phrase5": "配送中",
    }
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        keywords.validate(template, data)
    per_call_us = (time.perf_counter() - start) / rounds * 1e6
    print("\nKeyword validation (5 keywords) before each send")
    print(f"  {per_call_us:.1f} µs per message")
    share = per_call_us / (send_p50_ms * 1000)
    print(f"  {share:.4f}x of this stack's median send; WeChat would answer 47003 only after a round trip")


def send_path() -> float:
    """Returns the median latency of a single caller's send, in ms."""
    from local.sigv4 import SigV4Auth
    from local.stack import LocalStack
    from sandbox import SEEDED_LONG_TERM

    print(f"\nSend path on the local stack (moto + sandbox + gateway), {SENDS} sends of a long-term template")
    with LocalStack(ROOT / "template.yaml", env={"AWS_DEFAULT_REGION": "us-east-1"}, max_workers=4) as stack:
        assert stack.sandbox_url is not None
        sb = httpx.Client(base_url=stack.sandbox_url, timeout=30)
        openid = sb.post("/sandbox/login", json={}).json()["openid"]
        sb.post(
            "/sandbox/subscribe", json={"openid": openid, "template_id": SEEDED_LONG_TERM, "status": "accept"}
        )
        assert stack.sandbox is not None
        stack.sandbox.wait_for_pushes(20)
        client = httpx.Client(
            base_url=stack.api_url, auth=SigV4Auth(*stack.credentials, stack.region), timeout=60
        )
        templates = client.get("/templates").json()["templates"]
        enum = next(
            k["enum_values"][0]
            for t in templates
            if t["template_id"] == SEEDED_LONG_TERM
            for k in t["keywords"]
            if k["rule"] == "enum"
        )
        body = {
            "openid": openid,
            "template_id": SEEDED_LONG_TERM,
            "data": {"time1": "2026年11月24日 10:30", "enum_string2": enum, "thing3": "设备提醒"},
        }
        client.post("/messages", json=body)  # warm every worker's first call
        single, p50 = _measure(client, body, 1)
        for concurrency in (4, 8):
            rate, _ = _measure(client, body, concurrency)
            print(f"    {rate / single:.1f}x the single-caller rate")
    return p50


def _measure(client: httpx.Client, body: dict[str, object], concurrency: int) -> tuple[float, float]:
    def one(_: int) -> float:
        start = time.perf_counter()
        answer = client.post("/messages", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert answer.status_code == 200, answer.text
        return (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = sorted(pool.map(one, range(SENDS)))
    elapsed = time.perf_counter() - start
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    print(
        f"  concurrency {concurrency}: {SENDS / elapsed:6.1f} sends/s, p50 {p50:5.1f} ms, p95 {p95:5.1f} ms"
    )
    return SENDS / elapsed, p50


def main(parts: list[str]) -> None:
    unknown = set(parts) - {"send", "campaign"}
    if unknown:
        raise SystemExit(f"usage: python -m bench [send] [campaign]  (unknown: {', '.join(sorted(unknown))})")
    print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count()}))
    if not parts or "send" in parts:
        cold_starts()
        validation(send_path())
    if not parts or "campaign" in parts:
        from bench.campaign import run

        run()


if __name__ == "__main__":
    main(sys.argv[1:])
