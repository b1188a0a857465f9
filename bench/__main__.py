"""``make bench``: validation cost, the send path, a campaign and cold starts on the local stack.

Prints figures and ratios; only the cold-start part checks goals (PASS/FAIL per function, never
an exit status). Each part is bounded in count and runs only against loopback addresses.
``python -m bench campaign`` runs the campaign figures alone (bench/campaign.py, which also writes
bench/results/campaign.json); ``python -m bench coldstart [function ...]`` the cold starts and the
login cost alone (bench/coldstart.py, bench/results/coldstart.json); ``python -m bench send`` the
validation and send-path figures alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import long_term_enum

ROOT = Path(__file__).resolve().parents[1]
SENDS = 200
PARTS = {"send", "campaign", "coldstart"}


def cold_starts(campaign: dict[str, Any] | None = None, only: list[str] | None = None) -> None:
    """Every function's first invocation against its library floor, and the login cost line."""
    from bench.coldstart import run

    run(campaign, only)


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
        enum = long_term_enum(client)
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


def main(args: list[str]) -> None:
    """``[send] [campaign] [coldstart [function ...]]``; no argument runs every part."""
    names = args[args.index("coldstart") + 1 :] if "coldstart" in args else []
    parts = set(args[: args.index("coldstart") + 1] if "coldstart" in args else args) or PARTS
    if parts - PARTS:
        raise SystemExit(
            "usage: python -m bench [send] [campaign] [coldstart [function ...]]"
            f"  (unknown: {', '.join(sorted(parts - PARTS))})"
        )
    print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count()}))
    if "send" in parts:
        validation(send_path())
    campaign = None
    if "campaign" in parts:
        from bench.campaign import run

        campaign = run()
    if "coldstart" in parts:
        # last, so its login cost line stands beside this run's campaign cost per message
        cold_starts(campaign, names or None)


if __name__ == "__main__":
    main(sys.argv[1:])
