"""What the local stack reads from a template: one source of truth, no second list."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from local.events import next_run
from local.model import describe
from local.template import TemplateError

ROOT = Path(__file__).resolve().parents[2]


def _describe(path: Path, **overrides: str):
    return describe(
        path, overrides, region="us-east-1", aws_endpoint="http://127.0.0.1:1", api_url="http://127.0.0.1:2"
    )


def test_the_product_routes_and_their_auth_come_from_template_yaml() -> None:
    description = _describe(ROOT / "template.yaml", WeChatAppId="wx0000000000sandbox")
    routes = {route.key: route for route in description.routes}

    assert routes["POST /login"].iam is False
    assert routes["POST /messages"].iam is True
    assert routes["POST /messages"].function == "SendMessageFunction"
    assert {s.function for s in description.schedules} >= {"RefreshTokenFunction"}


def test_a_route_added_to_a_template_exists_locally(tmp_path: Path) -> None:
    template = (ROOT / "tests/integration/fixtures/template.yaml").read_text()
    template = template.replace(
        "        Item:\n",
        "        Added:\n          Type: HttpApi\n          Properties:\n"
        "            ApiId: !Ref HttpApi\n            Path: /added\n"
        "            Method: PATCH\n        Item:\n",
    )
    (tmp_path / "template.yaml").write_text(template)
    (tmp_path / "functions").symlink_to(ROOT / "tests/integration/fixtures/functions")
    (tmp_path / "layer").symlink_to(ROOT / "tests/integration/fixtures/layer")

    keys = {route.key for route in _describe(tmp_path / "template.yaml").routes}

    assert "PATCH /added" in keys


def test_a_parameter_without_default_must_be_given() -> None:
    with pytest.raises(TemplateError, match="WeChatAppId"):
        _describe(ROOT / "template.yaml")


def test_an_unknown_parameter_override_is_refused() -> None:
    with pytest.raises(TemplateError, match="Nope"):
        _describe(ROOT / "tests/integration/fixtures/template.yaml", Nope="x")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("rate(1 minute)", "2026-01-01T00:00:30", "2026-01-01T00:01:30"),
        ("rate(2 hours)", "2026-01-01T00:00:00", "2026-01-01T02:00:00"),
        ("cron(0 9 * * ? *)", "2026-01-01T10:00:00", "2026-01-02T09:00:00"),
        ("cron(15 10 ? * MON-FRI *)", "2026-01-02T11:00:00", "2026-01-05T10:15:00"),
        ("cron(0/30 * * * ? *)", "2026-01-01T00:10:00", "2026-01-01T00:30:00"),
        ("cron(0 0 1 JAN ? *)", "2026-03-01T00:00:00", "2027-01-01T00:00:00"),
    ],
)
def test_schedule_expressions(expression: str, after: str, expected: str) -> None:
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)

    assert next_run(expression, start) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_event_buses_and_iam_roles_resolve_to_local_names_and_arns() -> None:
    description = _describe(ROOT / "tests/integration/fixtures/template.yaml")
    environment = description.functions["EchoFunction"].environment

    assert [(bus.logical_id, bus.name) for bus in description.event_buses] == [
        ("EventBus", "wxsub-local-events")
    ]
    assert environment["EVENT_BUS_NAME"] == "wxsub-local-events"
    assert (
        environment["EVENT_BUS_ARN"] == "arn:aws:events:us-east-1:123456789012:event-bus/wxsub-local-events"
    )
    assert environment["SCHEDULER_ROLE_ARN"] == "arn:aws:iam::123456789012:role/wxsub-local-SchedulerRole"


def test_a_queue_source_carries_its_maximum_concurrency() -> None:
    sources = {
        s.function: s for s in _describe(ROOT / "tests/integration/fixtures/template.yaml").queue_sources
    }

    assert sources["BatchFunction"].max_concurrency == 3
    assert sources["WorkerFunction"].max_concurrency is None


def test_the_campaign_resources_of_template_yaml_resolve() -> None:
    description = _describe(ROOT / "template.yaml", WeChatAppId="wx0000000000sandbox")

    sources = {s.function: s for s in description.queue_sources}
    assert sources["SendWorkerFunction"].max_concurrency == 5
    assert sources["SendWorkerFunction"].batch_size == 10
    assert [bus.name for bus in description.event_buses] == ["wxsub-local-events"]
    campaigns = description.functions["CampaignsFunction"].environment
    assert (
        campaigns["SCHEDULER_ROLE_ARN"] == "arn:aws:iam::123456789012:role/wxsub-local-CampaignSchedulerRole"
    )
    assert campaigns["EVENT_BUS_NAME"] == "wxsub-local-events"
