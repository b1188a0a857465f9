"""One Lambda execution environment: a process that imports one handler and runs invocations.

Started by :mod:`local.workers` as ``python -u -P local/worker.py <result-fd>`` with exactly the
function's environment (``_HANDLER``, ``LAMBDA_TASK_ROOT`` and ``PYTHONPATH`` among it). It reads
one JSON invocation per line on stdin and answers one JSON line on the inherited ``result-fd``,
so stdout and stderr stay the function's own log streams, as in Lambda. It needs only the
standard library: nothing of ``local`` is importable from inside the function's process.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO


class LambdaContext:
    """The attributes and method the Python runtime's context object has."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = (
            f"arn:aws:lambda:{env['AWS_REGION']}:123456789012:function:{self.function_name}"
        )
        self.memory_limit_in_mb = int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = request_id
        self.log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, kind: str | None = None) -> dict[str, Any]:
    return {
        "ok": False,
        "errorType": kind or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _load() -> Callable[[Any, Any], Any]:
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    handler: Callable[[Any, Any], Any] = getattr(module, attribute)
    return handler


def _runtime_frame(filename: str) -> bool:
    return filename == __file__ or filename.startswith("<frozen") or "/importlib/" in filename


def _answer(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def _invoke(handler: Callable[[Any, Any], Any], request: dict[str, Any], traced: bool) -> dict[str, Any]:
    context = LambdaContext(request["request_id"], request["deadline_ms"])
    if traced:  # as Lambda with active tracing: a sampled trace header per invocation
        root = f"1-{int(time.time()):08x}-{os.urandom(12).hex()}"
        os.environ["_X_AMZN_TRACE_ID"] = f"Root={root};Parent={os.urandom(8).hex()};Sampled=1"
    try:
        result = handler(request["event"], context)
    except Exception as exc:
        print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
        return _error(exc)
    try:
        return {"ok": True, "result": json.loads(json.dumps(result))}
    except (TypeError, ValueError) as exc:
        return _error(exc, "Runtime.MarshalError")


def main() -> None:
    out = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    root_level = os.environ.pop("WXSUB_LOCAL_ROOT_LOG_LEVEL", None)
    traced = os.environ.pop("WXSUB_LOCAL_TRACED", None) == "1"
    if root_level:
        logging.basicConfig(level=root_level.upper(), stream=sys.stderr)
    started = time.perf_counter()
    try:
        handler = _load()
    except Exception as exc:
        module = os.environ["_HANDLER"].rpartition(".")[0]
        print(
            f"[ERROR] Runtime.ImportModuleError: Unable to import module '{module}': {exc}", file=sys.stderr
        )
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _runtime_frame(f.filename)]
        print("".join(traceback.format_list(frames)).rstrip(), file=sys.stderr)
        _answer(out, _error(exc, "Runtime.ImportModuleError"))
        return
    _answer(out, {"ok": True, "ready": True, "init_ms": round((time.perf_counter() - started) * 1000)})
    for line in sys.stdin:
        request = json.loads(line)
        _answer(out, _invoke(handler, request, traced))


if __name__ == "__main__":
    main()
