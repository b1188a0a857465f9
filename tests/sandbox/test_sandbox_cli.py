"""``python -m sandbox``: one line with the URL, environment defaults, clean exit on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(15)
def test_cli_serves_until_sigterm_with_environment_defaults() -> None:
    env = os.environ | {"WECHAT_APPID": "wx2222222222sandbox", "WECHAT_APP_SECRET": "cli-secret"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"sandbox listening on (http://127\.0\.0\.1:[0-9]+)", line)
        assert match is not None, line
        url = match.group(1)
        assert httpx.get(f"{url}/sandbox/config").json()["appid"] == "wx2222222222sandbox"
        code = httpx.post(f"{url}/sandbox/login", json={}).json()["code"]
        params = {"appid": "wx2222222222sandbox", "secret": "cli-secret", "js_code": code}
        answer = httpx.get(f"{url}/sns/jscode2session", params=params | {"grant_type": "authorization_code"})
        assert "openid" in answer.json()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert process.stderr is not None
        assert "cli-secret" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
