"""The SAM CLI suite (``make sam-test``): SAM's own ``sam local`` against the local AWS and sandbox.

It needs Docker, so ``make test`` leaves it out (``--ignore=tests/sam`` in pyproject.toml) and
``make sam-test`` runs it; ``.ci/run`` installs Docker first. One session builds the template,
takes the Lambda image and starts the local stack once; each test resets the stack's state.

The figures each test measures (a cold ``sam local invoke``, a first and a second request on a
warm container) are printed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.sam_local import SamLocal, session

ROOT = Path(__file__).resolve().parents[2]
# the fixed local secrets, so a test can assert none of them reaches a log or an answer
TEST_ENV = {
    "WECHAT_APP_SECRET": "samtest-app-secret-6c1d0e8f2a",
    "WECHAT_PUSH_TOKEN": "samtestPushToken42",
    "WECHAT_PUSH_AES_KEY": "samtestAesKey0123456789abcdefghijklmnopqrst",
    "AWS_ACCESS_KEY_ID": "AKIASAMTESTLOCAL0001",
    "AWS_SECRET_ACCESS_KEY": "samtest-secret-access-key-7d2e",
    "AWS_DEFAULT_REGION": "us-east-1",
}
Figures = list[tuple[str, str, float]]  # (function or route, what was timed, seconds)
FIGURES = pytest.StashKey[Figures]()


def _sam() -> str:
    return os.environ.get("WXSUB_SAM") or str(ROOT / ".venv-sam" / "bin" / "sam")


def _python312() -> str:
    return os.environ.get("WXSUB_PYTHON312") or shutil.which("python3.12") or sys.executable


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = []


@pytest.fixture(scope="session")
def figures(pytestconfig: pytest.Config) -> Figures:
    """Where a test puts what it timed, for the table at the end of the run."""
    return pytestconfig.stash[FIGURES]


@pytest.fixture(scope="session")
def local_secrets() -> dict[str, str]:
    return dict(TEST_ENV)


@pytest.fixture(scope="session")
def sam() -> Iterator[SamLocal]:
    with session(_sam(), _python312(), env=TEST_ENV, log=lambda line: print(line, file=sys.stderr)) as runner:
        yield runner


@pytest.fixture
def fresh(sam: SamLocal) -> SamLocal:
    """``sam`` with the stack's tables, queues and sandbox emptied."""
    sam.stack.reset()
    return sam


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    figures = config.stash.get(FIGURES, [])
    if not figures:
        return
    terminalreporter.section("SAM local figures (seconds, wall clock on this machine)")
    width = max(len(name) for name, _, _ in figures)
    for name, what, seconds in figures:
        terminalreporter.write_line(f"{name:<{width}}  {what:<44} {seconds:8.2f}")
