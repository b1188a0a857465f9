"""The whole suite's logs and answers hold none of the secrets: 0 occurrences.

Runs last (conftest.py orders it so). Every stack of the session logged at DEBUG with root logging
at INFO, as a developer debugging would run it, and every line went to the transcript; every answer
of the API did too. The secrets are the ones those stacks actually held: the AppSecret, the push
Token, the EncodingAESKey and the session signing key (SecureStrings), every access token the
refresher stored, and the session_key of every user WeChat logged in, noted after each test.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import SCALE

from bench.reliability import SECRETS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(SCALE.timeout)]
REQUIRED = {"AppSecret", "session_key", "access token", "push Token", "EncodingAESKey", "session signing key"}


def test_no_secret_occurs_in_any_log_line_or_answer_of_the_suite(transcript: Any, figure: Any) -> None:
    transcript.learn_all()
    transcript.flush()
    logs = transcript.logs_path.read_text(encoding="utf-8")
    answers = transcript.answers_path.read_text(encoding="utf-8")
    found = {
        label: sum(logs.count(value) + answers.count(value) for value in values)
        for label, values in transcript.secrets.items()
    }
    occurrences = sum(found.values())
    held = sum(len(values) for values in transcript.secrets.values())
    figure.record(
        SECRETS,
        cases=transcript.lines + transcript.answers,
        figure=(
            f"{occurrences} occurrences of {held} secrets in {transcript.lines:,} log lines "
            f"and {transcript.answers:,} answers"
        ),
        goal="0 occurrences",
        at_goal=occurrences == 0 and set(found) >= REQUIRED,
        by_secret=found,
    )
    assert set(found) >= REQUIRED, "every kind of secret was held by some stack"
    assert '"level":"DEBUG"' in logs, "the functions logged at DEBUG"
    assert transcript.answers > 0
    assert found == dict.fromkeys(found, 0)
