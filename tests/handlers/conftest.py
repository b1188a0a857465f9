"""Handler tests: the events in ``events/`` fed to each ``lambda_handler`` in this process.

AWS is moto and WeChat the sandbox, both from a local stack started for this module; the
functions' own environments from ``template.yaml`` are merged into this process's environment
(each function reads only its own keys), and every handler is imported by path, as Lambda does.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from handler_kit import Invoke

from local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


class Context:
    """What the Python runtime hands a handler."""

    def __init__(self, function_name: str, remaining_millis: int = 20_000) -> None:
        self.function_name = function_name
        self.remaining_millis = remaining_millis
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "handler-test"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture(scope="session")
def aws_and_wechat() -> Iterator[LocalStack]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with LocalStack(ROOT / "template.yaml", env=env, pollers=False) as stack:
        saved = dict(os.environ)
        for fn in stack.description.functions.values():
            os.environ.update(fn.environment)
        os.environ.update(
            {
                **env,
                "AWS_ENDPOINT_URL": stack.aws_endpoint,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        )
        try:
            yield stack
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture(scope="session")
def invoke(aws_and_wechat: LocalStack) -> Invoke:
    """``invoke("login", event)`` → what functions/login/app.py's handler returns.

    ``remaining_millis`` is the time the invocation has left, as Lambda's context reports it.
    """
    modules: dict[str, ModuleType] = {}

    def call(function: str, event: dict[str, Any], remaining_millis: int = 20_000) -> Any:
        if function not in modules:
            path = ROOT / "functions" / function / "app.py"
            spec = importlib.util.spec_from_file_location(f"handler_{function}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules[function] = module
        return modules[function].lambda_handler(event, Context(function, remaining_millis))

    return call
