"""Lambda execution environments as worker processes: one pool per function.

Each worker process runs one invocation at a time, as a Lambda execution environment does, so
module-level state (settings read at cold start, cached clients, Powertools' appended keys) is
never shared between concurrent invocations. A pool starts workers lazily (the first invocation
of each pays the cold start) up to the function's reserved concurrency or the stack's limit;
further invocations wait for a free one.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from local.model import Function

WORKER = Path(__file__).with_name("worker.py")
INIT_LIMIT_SECONDS = 10
LogSink = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    """An invocation's result, or the error Lambda would report (``errorType``, ``errorMessage``)."""

    ok: bool
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None


# Read by local/worker.py only: a root logger at this level, as a developer configures one to
# debug. Lambda's root logger otherwise stays at WARNING, as here.
ROOT_LOG_LEVEL = "WXSUB_LOCAL_ROOT_LOG_LEVEL"


def lambda_environment(
    fn: Function,
    *,
    region: str,
    credentials: tuple[str, str],
    aws_endpoint: str,
    xray_daemon: str | None = None,
) -> dict[str, str]:
    """The environment a function's process sees: its template variables and what Lambda adds.

    ``AWS_SAM_LOCAL`` is set as ``sam local`` sets it, which turns X-Ray tracing off (there is no
    daemon), unless ``xray_daemon`` (``host:port``, UDP) is given: then tracing is on as deployed
    with active tracing, each invocation gets a sampled trace header and segments go there. The
    shared config files are hidden, since Lambda has none and a developer's ``~/.aws/config``
    must not redirect a function away from moto.
    """
    stream = time.strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex
    env = dict(fn.environment)
    env.update(
        {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(str(p) for p in (fn.code_dir, *fn.layer_dirs)),
            "LAMBDA_TASK_ROOT": str(fn.code_dir),
            "_HANDLER": fn.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": credentials[0],
            "AWS_SECRET_ACCESS_KEY": credentials[1],
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_SAM_LOCAL": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    if xray_daemon:
        del env["AWS_SAM_LOCAL"]
        host, _, port = xray_daemon.rpartition(":")
        env.update(
            {
                "AWS_XRAY_DAEMON_ADDRESS": xray_daemon,
                "_AWS_XRAY_DAEMON_ADDRESS": host,
                "_AWS_XRAY_DAEMON_PORT": port,
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                "WXSUB_LOCAL_TRACED": "1",
            }
        )
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        env["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
    return env


class Worker:
    """One process; :meth:`call` sends a JSON line on stdin and reads the answer on a private pipe."""

    def __init__(self, fn: Function, env: Mapping[str, str], sink: LogSink) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-P", str(WORKER), str(write_fd)],
                env=dict(env),
                cwd=fn.code_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self._results = read_fd
        self._buffer = b""
        self._lock = threading.Lock()
        self._stopped = False
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=_forward, args=(stream, fn.logical_id, sink), daemon=True).start()

    def read(self, timeout: float) -> dict[str, Any] | None:
        """The next answer, or None when the process exited or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or not select.select([self._results], [], [], remaining)[0]:
                    return None
                chunk = os.read(self._results, 1 << 16)
            except (OSError, ValueError):
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, request: Mapping[str, Any], timeout: float) -> dict[str, Any] | None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            return None
        return self.read(timeout)

    def stop(self, *, kill: bool = False) -> None:
        """End the process: EOF on stdin lets it exit; ``kill`` (or a second's wait) ends it now."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self.process.poll() is None:
            try:
                if kill:
                    raise subprocess.TimeoutExpired(self.process.args, 0)
                self.close_input()
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.close(self._results)

    def close_input(self) -> None:
        """EOF on stdin: the process exits after its current invocation."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except OSError:
            pass


def _forward(stream: IO[bytes] | None, name: str, sink: LogSink) -> None:
    assert stream is not None
    for raw in stream:
        sink(f"[{name}] {raw.decode('utf-8', 'replace').rstrip()}")


class FunctionPool:
    """The execution environments of one function."""

    def __init__(self, fn: Function, env: Mapping[str, str], sink: LogSink, max_workers: int) -> None:
        self.fn = fn
        self._env = dict(env)
        self._sink = sink
        self._limit = min(max_workers, fn.reserved_concurrency or max_workers)
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._count = 0
        self._cond = threading.Condition()
        self._stopped = False

    def invoke(self, event: Any) -> Outcome:
        """Run one invocation with the function's ``Timeout``, as a synchronous Lambda invoke."""
        worker = self._acquire()
        if isinstance(worker, Outcome):
            return worker
        request_id = str(uuid.uuid4())
        deadline_ms = int(time.time() * 1000) + self.fn.timeout * 1000
        answer = worker.call(
            {"event": event, "request_id": request_id, "deadline_ms": deadline_ms}, self.fn.timeout + 0.5
        )
        if answer is None:
            timed_out = worker.process.poll() is None
            self._release(worker, healthy=False)
            if timed_out:
                self._sink(
                    f"[{self.fn.logical_id}] {request_id} Task timed out after {self.fn.timeout} seconds"
                )
                return Outcome(
                    False, None, "Sandbox.Timedout", f"Task timed out after {self.fn.timeout} seconds"
                )
            return Outcome(False, None, "Runtime.ExitError", "the function's process exited")
        self._release(worker, healthy=True)
        if answer.get("ok"):
            return Outcome(True, answer.get("result"))
        return Outcome(False, None, answer.get("errorType"), answer.get("errorMessage"))

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            workers = list(self._all)
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.close_input()
        for worker in workers:
            worker.stop()

    def _acquire(self) -> Worker | Outcome:
        with self._cond:
            while not self._idle and self._count >= self._limit and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return Outcome(False, None, "Local.Stopped", "the local stack is stopping")
            if self._idle:
                return self._idle.pop()
            self._count += 1
        return self._start()

    def _start(self) -> Worker | Outcome:
        started = time.perf_counter()
        worker = Worker(self.fn, self._env, self._sink)
        with self._cond:
            self._all.add(worker)
        answer = worker.read(max(INIT_LIMIT_SECONDS, self.fn.timeout))
        if answer is None or not answer.get("ready"):
            self._release(worker, healthy=False)
            if answer is None:
                return Outcome(False, None, "Runtime.ExitError", "the function's process failed to start")
            return Outcome(False, None, answer.get("errorType"), answer.get("errorMessage"))
        elapsed = (time.perf_counter() - started) * 1000
        self._sink(
            f"[{self.fn.logical_id}] cold start {elapsed:.0f} ms (handler import {answer.get('init_ms')} ms)"
        )
        return worker

    def _release(self, worker: Worker, *, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._stopped:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                self._count -= 1
            self._cond.notify()
        if not healthy:
            worker.stop(kill=True)
