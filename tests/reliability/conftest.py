"""Fixtures of the reliability suite: ``make reliability`` runs it in full, ``make test`` shorter.

The integration fixtures and helpers are reused (see harness.py), with two changes. ``stack`` is
a stack as a developer runs it to debug: Powertools at DEBUG and root logging at INFO in every
function, every line it logs also copied to a transcript file, so the secret scan at the end reads
the whole session and not only the 100,000 lines a stack keeps. ``api`` and ``signed`` clients copy
every answer of the API to the transcript too.

Each test reports its figure through ``figure``: the part it measures, how many cases it actually
ran, what it measured and the goal. The row is PASS only if the test itself passed, so a figure
cannot be at its goal while its test fails. Rows go to ``bench/results/reliability.json`` (or
``$WXSUB_RELIABILITY_RESULTS``); ``python -m bench.reliability`` prints them as a table.

``WXSUB_RELIABILITY=full`` selects the full case counts; anything else the short form CI runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import (
    FULL,
    SCALE,
    Figure,
    Figures,
    Scale,
    Transcript,
    integration,
    loud_stack,
    signing_clients,
    unsigned,
)

from bench.reliability import RESULTS, render
from local.stack import LocalStack

local_env = integration.local_env  # the fixed environment: the secrets the SecureStrings hold


@pytest.fixture(scope="session")
def scale() -> Scale:
    return SCALE


@pytest.fixture(scope="session")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> Transcript:
    return Transcript(tmp_path_factory.mktemp("transcript"))


@pytest.fixture(scope="session")
def stack(transcript: Transcript, local_env: dict[str, str]) -> Iterator[LocalStack]:
    with loud_stack(transcript, local_env) as running:
        transcript.learn(running)
        yield running
        transcript.learn(running)


@pytest.fixture(autouse=True)
def _learn_secrets(transcript: Transcript) -> Iterator[None]:
    """After each test, before anything resets a sandbox, note the secrets its users and tokens hold."""
    yield
    transcript.learn_all()


@pytest.fixture
def signed(stack: LocalStack, transcript: Transcript) -> Iterator[Callable[..., httpx.Client]]:
    """``signed()`` → a SigV4-signing client on the API whose answers are transcribed."""
    yield from signing_clients(stack, transcript)


@pytest.fixture
def api(stack: LocalStack, transcript: Transcript) -> Iterator[httpx.Client]:
    with unsigned(stack, transcript) as client:
        yield client


# -- figures ------------------------------------------------------------------------------------

_PASSED = pytest.StashKey[bool]()
_FIGURES = pytest.StashKey[Figures]()


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest, scale: Scale) -> Figures:
    found = Figures(Path(os.environ.get("WXSUB_RELIABILITY_RESULTS") or RESULTS), scale.mode)
    request.config.stash[_FIGURES] = found
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


@pytest.fixture
def figure(request: pytest.FixtureRequest, figures: Figures) -> Iterator[Figure]:
    measured = Figure()
    yield measured
    passed = request.node.stash.get(_PASSED, False)
    for row in measured.rows:
        figures.add({**row, "test": request.node.nodeid, "passed": bool(passed and row["at_goal"])})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The secret scan reads what every other test left, so it runs last."""
    last = [item for item in items if item.path.name == "test_secrets_scan.py"]
    for item in last:
        items.remove(item)
    items.extend(last)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The short form's table at the end of ``make test``; ``make reliability`` prints its own."""
    found = terminalreporter.config.stash.get(_FIGURES, None)
    if found is not None and found.data["parts"] and not FULL:
        terminalreporter.write_line("")
        for line in render(found.data):
            terminalreporter.write_line(line)
