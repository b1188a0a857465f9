"""``sam local invoke`` of every function with its event from ``events/``, checked by its outcome.

Each event is filled with this run's values (a fresh ``wx.login`` code, a granted openid, a signed
push...) and the outcome is looked for where a user would look: the session token in the answer,
the message in the sandbox inbox and ``GET /messages/{id}``, the token in SSM, the registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import sam_events
from local.policies import function_credentials
from local.sam_local import SamLocal

EVENTS = sorted(p.name for p in sam_events.EVENTS.glob("*.json"))


def test_every_function_has_an_event_and_every_event_a_function(sam: SamLocal) -> None:
    functions = set(sam.stack.description.functions)
    named = {sam_events.function_of(name) for name in EVENTS}

    assert named == functions
    assert set(sam_events.EVENT_FILES) == functions


@pytest.mark.parametrize("event_file", EVENTS)
def test_sam_local_invoke_gives_the_outcome_a_user_expects(
    fresh: SamLocal, figures: list[tuple[str, str, float]], event_file: str
) -> None:
    function = sam_events.function_of(event_file)
    event = json.loads((sam_events.EVENTS / event_file).read_text())

    outcome = sam_events.run(fresh, function, event)

    figures.append((function, f"sam local invoke -e {event_file}", outcome.invocation.seconds))
    assert outcome.ok, outcome.report()
    assert "REPORT RequestId" in outcome.invocation.stderr  # it ran in SAM's emulator


def test_a_function_signs_with_the_key_sam_hands_it_never_the_hosts(
    fresh: SamLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's own AWS settings are ignored; the local AWS checks the key SAM passed in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTCREDENTIAL01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-hosts-own-secret")
    event = json.loads(sam_events.default_event("RefreshTokenFunction").read_text())

    own = sam_events.run(fresh, "RefreshTokenFunction", event)
    monkeypatch.setattr(fresh, "credentials", lambda function: function_credentials("LoginFunction"))
    borrowed = fresh.invoke("RefreshTokenFunction", event)

    assert own.ok, own.report()
    # Login's key may read the AppSecret but not write the access token: refused by the local AWS
    assert borrowed.result["errorType"] in ("ClientError", "Misconfigured", "AccessDeniedException"), borrowed
    assert "AccessDenied" in borrowed.stdout + borrowed.stderr
    assert "the-hosts-own-secret" not in borrowed.stdout + borrowed.stderr


def test_no_local_secret_reaches_a_function_answer_or_log(
    fresh: SamLocal, local_secrets: dict[str, str]
) -> None:
    event = json.loads(sam_events.default_event("LoginFunction").read_text())

    outcome = sam_events.run(fresh, "LoginFunction", event)

    text = outcome.invocation.stdout + outcome.invocation.stderr
    assert outcome.ok, outcome.report()
    for name in ("WECHAT_APP_SECRET", "WECHAT_PUSH_TOKEN", "WECHAT_PUSH_AES_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert local_secrets[name] not in text, name
    for value in fresh.stack.secure_strings.values():
        assert value not in text


def test_the_env_vars_file_points_every_function_at_the_local_parts(sam: SamLocal) -> None:
    variables = json.loads(Path(sam.env_vars()).read_text())

    for function in sam.stack.description.functions:
        assert variables[function]["AWS_ENDPOINT_URL"] == sam.stack.aws_endpoint
        assert variables[function]["WECHAT_API_BASE"] == sam.stack.sandbox_url
    assert not sam.stack.aws_endpoint.startswith("http://127.")  # containers cannot reach loopback
