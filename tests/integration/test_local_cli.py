"""``python -m local`` (what ``make local`` runs): banner, serving, Ctrl-C, a busy port."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest

from local import running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "tests/integration/fixtures/template.yaml"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIACLITEST000000001", "AWS_SECRET_ACCESS_KEY": "cli-test-secret-9b1e"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "AWS_"))}
    env |= {"PORT": str(port), "PYTHONPATH": f"layers/shared{os.pathsep}.", **CREDENTIALS}
    return subprocess.Popen(
        [sys.executable, "-m", "local", "--template", TEMPLATE],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; got:\n" + "\n".join(lines))


def _put_event(endpoint: str, detail_type: str, detail: dict[str, int]) -> None:
    events = boto3.client(
        "events",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    entry = {"Source": "fixture.cli", "DetailType": detail_type, "Detail": json.dumps(detail)}
    events.put_events(Entries=[{**entry, "EventBusName": "wxsub-local-events"}])


def test_make_local_serves_in_the_foreground_and_ctrl_c_stops_everything() -> None:
    port = _free_port()
    process = _start(port)
    try:
        # Given the stack started in the foreground
        banner = _read_until(process, "Ctrl-C stops everything.")
        text = "\n".join(banner)
        assert f"API      http://127.0.0.1:{port}" in text
        assert "POST /secure" in text and "IAM (SigV4, service execute-api)" in text
        assert re.search(r"AWS      http://127\.0\.0\.1:\d+", text)
        assert "schedule TickFunction.Every rate(1 minute)" in text
        assert "IAM routes accept access key AKIACLITEST000000001" in text
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in text

        # and says where it listens for make demo in another terminal (no secret in that record)
        record = running.record_path(port)
        assert json.loads(record.read_text())["api_url"] == f"http://127.0.0.1:{port}"
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in record.read_text()

        assert "-> BatchFunction (batch 1, 3 at once)" in text
        assert "bus      wxsub-local-events" in text

        # and prints each event put on the bus as one line
        aws = re.search(r"AWS      (http://\S+)", text)
        assert aws is not None
        _put_event(aws.group(1), "fixture.cli", {"n": 1})
        _read_until(process, '[events] fixture.cli {"n":1}')

        # When it serves a request, from a worker process
        pid = httpx.get(f"http://127.0.0.1:{port}/echo", timeout=30).json()["pid"]

        # Then Ctrl-C stops it cleanly, worker processes included
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 0
        assert "Traceback" not in out
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in out
        assert out.rstrip().endswith("stopped")
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not record.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            running.record_path(port).unlink(missing_ok=True)


def test_a_busy_port_is_named_and_nothing_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        process = _start(port)
        out, _ = process.communicate(timeout=30)

    assert process.returncode == 1
    assert f"port {port} is already in use" in out


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` right now (the worker processes of a running stack)."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.timeout(240)
def test_sigterm_stops_the_stack_cleanly_twenty_times_whenever_it_arrives() -> None:
    # SIGTERM at every moment a user might press it: while moto and the gateway start, just after
    # the banner, and while a request is being served; each stop must be clean, with no traceback
    # (a signal that raised inside a lock once gave "RuntimeError: release unlocked lock").
    problems: list[str] = []
    for attempt in range(20):
        port = _free_port()
        process = _start(port)
        try:
            if attempt % 4 == 0:
                time.sleep(0.05 + 0.4 * attempt / 4)  # while it loads and starts
            else:
                _read_until(process, "Ctrl-C stops everything.")
                if attempt % 4 == 2:
                    httpx.get(f"http://127.0.0.1:{port}/echo", timeout=30)
            workers = _children(process.pid)
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
            if process.returncode == -signal.SIGTERM and not out and not workers:
                continue  # the signal beat the interpreter to its handler: nothing had started
            if process.returncode != 0 or "Traceback" in out or not out.rstrip().endswith("stopped"):
                problems.append(f"stop {attempt}: exit {process.returncode}\n{out[-2000:]}")
            left = [pid for pid in workers if _alive(pid)]
            if left:
                problems.append(f"stop {attempt}: worker processes {left} still running")
            if running.record_path(port).exists():
                problems.append(f"stop {attempt}: {running.record_path(port)} left behind")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            running.record_path(port).unlink(missing_ok=True)

    assert problems == [], "\n".join(problems)
