"""What the reliability tests share besides fixtures: the scale, the transcript, the figure rows.

The integration suite's fixtures module and wx_flows.py are reused as they are: this module puts
tests/integration on ``sys.path`` (as pytest does for the integration tests) and loads that
conftest under a name of its own, so its helpers can be imported without clashing with this
directory's conftest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))


def _load_integration_fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("wxsub_integration_fixtures", INTEGRATION / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


integration = _load_integration_fixtures()

from wx_flows import stored_token  # noqa: E402

from local.stack import LocalStack  # noqa: E402

ROOT: Path = integration.ROOT
FULL = os.environ.get("WXSUB_RELIABILITY", "").lower() == "full"
# a stack as a developer runs it to debug: Powertools at DEBUG (root logging at INFO, see loud_stack)
LOUD = {**integration.PRODUCT_PARAMETERS, "LogLevel": "DEBUG"}


@dataclass(frozen=True)
class Scale:
    """How many cases each part runs: the full form (``make reliability``) or the short one (CI)."""

    mode: str
    openapi_examples: int  # per operation and generation mode; hypothesis may stop early
    openapi_min_cases: int
    push_cases: int
    token_cases: int
    rounds: int  # of 50 parallel sends, and of 50 parallel pushes
    timeout: int  # seconds, for each test


FULL_SCALE = Scale("full", 80, 1000, 2400, 600, 6, 1800)
SHORT_SCALE = Scale("short", 14, 200, 240, 64, 2, 300)
SCALE = FULL_SCALE if FULL else SHORT_SCALE


class Transcript:
    """Log lines and API answers of every stack of the session, on disk, and the secrets they held."""

    def __init__(self, directory: Path) -> None:
        self.logs_path = directory / "logs.txt"
        self.answers_path = directory / "answers.txt"
        self._logs = self.logs_path.open("a", encoding="utf-8")
        self._answers = self.answers_path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.lines = 0
        self.answers = 0
        self.stacks: list[LocalStack] = []
        self.secrets: dict[str, set[str]] = {}

    def log(self, line: str) -> None:
        with self._lock:
            self._logs.write(line.replace("\n", " ") + "\n")
            self.lines += 1

    def keep(self, response: httpx.Response) -> None:
        """An httpx response hook: the status, headers and body of every answer of the API."""
        response.read()
        headers = " ".join(f"{k}: {v}" for k, v in response.headers.items())
        text = response.content.decode("utf-8", "replace")
        with self._lock:
            self._answers.write(f"{response.status_code} {headers}\n{text}\n\x1e\n")
            self.answers += 1

    def learn(self, stack: LocalStack) -> None:
        """Note the secrets ``stack`` holds now: its SecureStrings, the access token, users' session_keys."""
        names = stack.description.parameters
        for label, parameter in (
            ("AppSecret", "AppSecretParam"),
            ("push Token", "PushTokenParam"),
            ("EncodingAESKey", "PushAesKeyParam"),
            ("session signing key", "SessionKeyParam"),
        ):
            self._add(label, stack.secure_strings[str(names[parameter])])
        self._add("access token", str(stored_token(stack)["access_token"]))
        assert stack.sandbox is not None
        with stack.sandbox.state.lock:
            keys = [user.session_key for user in stack.sandbox.state.users.values()]
        for key in keys:
            self._add("session_key", key)

    def learn_all(self) -> None:
        for stack in self.stacks:
            if stack.api_url and stack.sandbox is not None:
                self.learn(stack)

    def flush(self) -> None:
        with self._lock:
            self._logs.flush()
            self._answers.flush()

    def _add(self, label: str, value: str) -> None:
        if value:
            self.secrets.setdefault(label, set()).add(value)


class TranscribedStack(LocalStack):
    """A LocalStack whose every log line is also written to the session's transcript."""

    def __init__(self, *args: Any, transcript: Transcript, **kwargs: Any) -> None:
        self.transcript = transcript
        super().__init__(*args, **kwargs)

    def log(self, line: str) -> None:
        super().log(line)
        self.transcript.log(line)


def loud_stack(transcript: Transcript, env: dict[str, str]) -> TranscribedStack:
    """A product stack logging at DEBUG (root logging at INFO), transcribed; not yet started."""
    stack = TranscribedStack(
        ROOT / "template.yaml", env=env, parameters=LOUD, root_log_level="INFO", transcript=transcript
    )
    transcript.stacks.append(stack)
    return stack


def signing_clients(stack: LocalStack, transcript: Transcript) -> Iterator[Callable[..., httpx.Client]]:
    """The integration suite's SigV4 client factory, with every answer kept in the transcript."""
    for make in integration._client_factory(stack):
        yield _keeping(make, transcript)


def _keeping(make: Callable[..., httpx.Client], transcript: Transcript) -> Callable[..., httpx.Client]:
    def kept(**options: Any) -> httpx.Client:
        options.setdefault("event_hooks", {"response": [transcript.keep]})
        return make(**options)

    return kept


def unsigned(stack: LocalStack, transcript: Transcript) -> httpx.Client:
    """An unsigned client on the API whose answers are transcribed."""
    return httpx.Client(base_url=stack.api_url, timeout=60, event_hooks={"response": [transcript.keep]})


def json_error(answer: httpx.Response) -> bool:
    """Whether ``answer`` is the API's error shape: a JSON object with string ``error`` and ``message``."""
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        body = answer.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str)
    )


class Figures:
    """The rows of the table, written to the results file after every test that records one."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "mode": mode,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(),
            "parts": {},
        }

    def add(self, row: dict[str, Any]) -> None:
        self.data["parts"][row["part"]] = row
        self.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")


class Figure:
    """What one test measured; ``record`` it before asserting, so a figure off its goal is reported."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, part: str, *, cases: int, figure: str, goal: str, at_goal: bool, **detail: Any) -> None:
        self.rows.append(
            {"part": part, "cases": cases, "figure": figure, "goal": goal, "at_goal": at_goal, **detail}
        )
