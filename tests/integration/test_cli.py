"""The operator command line, `wxsub`, run as its console script against the running local stack.

Each command is run in a subprocess with the environment `make local`'s banner exports, and its
`--json` output is checked for content; the error paths (no stack, a 4xx, wrong credentials) exit
1 with the API's code and message and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from wx_flows import (
    ONE_TIME,
    VALID_DATA,
    accept,
    aws_client,
    fault,
    inbox,
    login,
    sandbox,
    settle_pushes,
    stored_token,
)

from local.stack import LocalStack
from wxsub.services.tokens import FORCE_PER_DAY, force_counter

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WXSUB = ROOT / ".venv" / "bin" / "wxsub"


def wxsub(
    stack: LocalStack | None,
    *args: str,
    credentials: tuple[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WXSUB_"))}
    env["PORT"] = "1"  # no `make local` record to find
    if stack is not None:
        key, secret = credentials or stack.credentials
        env |= {
            "WXSUB_API_URL": stack.api_url,
            "WXSUB_AWS_URL": stack.aws_endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": stack.region,
        }
    return subprocess.run(
        [str(WXSUB), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=input_text,
    )


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_templates_search_keywords_add_alias_list_and_delete(reset_stack: LocalStack) -> None:
    found = answer(wxsub(reset_stack, "--json", "templates", "search", "付款"))
    table = wxsub(reset_stack, "templates", "search", "付款")
    keywords = answer(wxsub(reset_stack, "--json", "templates", "keywords", "1212"))
    added = answer(
        wxsub(
            reset_stack, "--json", "templates", "add", "1212", "1", "2", "--scene", "付款", "--alias", "paid"
        )
    )
    listed = answer(wxsub(reset_stack, "--json", "templates", "list"))
    renamed = answer(wxsub(reset_stack, "--json", "templates", "alias", added["template_id"], "order_paid"))
    deleted = answer(wxsub(reset_stack, "--json", "templates", "delete", "order_paid", "--yes"))
    synced = answer(wxsub(reset_stack, "--json", "templates", "sync"))

    assert [t["title"] for t in found["titles"]] == ["付款成功通知"]
    assert table.stdout.splitlines()[0].split() == ["TID", "TYPE", "CATEGORY", "TITLE"]
    assert "付款成功通知" in table.stdout
    assert [k["kid"] for k in keywords["keywords"]][:2] == [1, 2]
    assert (added["title"], added["alias"]) == ("付款成功通知", "paid")
    assert {t["template_id"]: t["alias"] for t in listed["templates"]}[added["template_id"]] == "paid"
    assert renamed["alias"] == "order_paid"
    assert deleted == {"deleted": added["template_id"]}
    assert synced["templates"] == len(listed["templates"]) - 1


def test_send_by_alias_then_the_message_its_campaign_and_the_token(reset_stack: LocalStack, api: Any) -> None:
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid)
    time.sleep(1.1)  # a push is known by its content, CreateTime in seconds: the same second is a retry
    accept(reset_stack, openid)
    settle_pushes(reset_stack)
    answer(wxsub(reset_stack, "--json", "templates", "alias", ONE_TIME, "order_shipped"))
    pairs = [f"{k}={v}" for k, v in VALID_DATA.items()]

    sent = answer(wxsub(reset_stack, "--json", "send", openid, "order_shipped", *pairs, "--key", "cli-1"))
    again = answer(wxsub(reset_stack, "--json", "send", openid, "order_shipped", *pairs, "--key", "cli-1"))
    shown = answer(wxsub(reset_stack, "--json", "messages", "show", sent["message_id"]))
    campaign = answer(
        wxsub(reset_stack, "--json", "campaigns", "create", "order_shipped", *pairs, "--openid", openid)
    )
    seen = answer(wxsub(reset_stack, "--json", "campaigns", "show", campaign["campaign_id"]))
    status = wxsub(reset_stack, "--json", "token", "status")

    assert sent["status"] == "sent" and again == sent
    assert len([m for m in inbox(reset_stack, openid) if m["template_id"] == ONE_TIME]) >= 1
    assert (shown["message_id"], shown["template_id"]) == (sent["message_id"], ONE_TIME)
    assert campaign["template_id"] == ONE_TIME and seen["campaign_id"] == campaign["campaign_id"]
    token = answer(status)
    assert token["version"] >= 1 and 0 < token["expires_in_seconds"] <= 7200
    assert stored_token(reset_stack)["access_token"] not in status.stdout + status.stderr


def test_errors_exit_1_with_what_went_wrong(reset_stack: LocalStack) -> None:
    no_stack = wxsub(None, "templates", "list")
    refused = wxsub(reset_stack, "templates", "add", "999999", "1", "2", "--scene", "x")
    unknown = wxsub(reset_stack, "send", "o-nobody", "no_such_alias", "thing1=x")
    wrong_key = wxsub(reset_stack, "templates", "list", credentials=("AKIAWRONGWRONGWRONG1", "nope"))
    bad_data = wxsub(reset_stack, "send", "o-nobody", "order_shipped", "thing1")
    # a template id may start with "-": it reaches the API (no such template), not click's option parser
    dashed = wxsub(reset_stack, "templates", "delete", "-zNoSuchTemplate000000000000000000000000000", "--yes")

    assert (no_stack.returncode, "no local stack is running" in no_stack.stderr) == (1, True), no_stack.stderr
    assert "make local" in no_stack.stderr
    assert refused.returncode == 1 and "422 invalid_template" in refused.stderr, refused.stderr
    assert unknown.returncode == 1 and "422 unknown_template" in unknown.stderr, unknown.stderr
    assert wrong_key.returncode == 1 and "403" in wrong_key.stderr, wrong_key.stderr
    assert bad_data.returncode == 2 and "keyword=value" in bad_data.stderr, bad_data.stderr
    assert dashed.returncode == 1 and "422 invalid_template" in dashed.stderr, dashed.stderr
    for done in (no_stack, refused, unknown, wrong_key, bad_data, dashed):
        assert "Traceback" not in done.stderr


def test_grants_of_one_user_with_the_alias_beside_each_template(reset_stack: LocalStack, api: Any) -> None:
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid)
    settle_pushes(reset_stack)
    answer(wxsub(reset_stack, "--json", "templates", "alias", ONE_TIME, "order_shipped"))

    held = answer(wxsub(reset_stack, "--json", "grants", openid))
    table = wxsub(reset_stack, "grants", openid)
    nobody = answer(wxsub(reset_stack, "--json", "grants", "o-nobody-at-all"))

    grant = next(g for g in held["grants"] if g["template_id"] == ONE_TIME)
    assert held["openid"] == openid
    assert (grant["alias"], grant["one_time"], grant["long_term"]) == ("order_shipped", 1, False), grant
    assert table.stdout.splitlines()[0].split()[:2] == ["TEMPLATE", "ID"]
    assert "order_shipped" in table.stdout and ONE_TIME in table.stdout
    assert nobody == {"openid": "o-nobody-at-all", "grants": []}


def _wechat_accepts(stack: LocalStack, token: str) -> int:
    """The errcode WeChat (the sandbox) answers a call made with ``token``: 0 while it is valid."""
    with sandbox(stack) as sb:
        return int(
            sb.get("/wxaapi/newtmpl/gettemplate", params={"access_token": token}).json().get("errcode", 0)
        )


def test_token_force_refresh_twice_kills_a_leaked_token_and_keeps_wechats_spacing(
    reset_stack: LocalStack,
) -> None:
    """The leaked-token recipe: two force refreshes 30 s apart, through the refresher function. Both
    tokens issued before the second are dead afterwards; a third at once is refused, not sent."""
    leaked = stored_token(reset_stack)
    declined = wxsub(reset_stack, "token", "force-refresh", input_text="n\n")
    after_declining = stored_token(reset_stack)

    twice = answer(wxsub(reset_stack, "--json", "token", "force-refresh", "--twice", "--yes"))
    stored = stored_token(reset_stack)
    too_soon = wxsub(reset_stack, "token", "force-refresh", "--yes")

    assert declined.returncode == 1 and "Aborted" in declined.stderr
    assert after_declining["version"] == leaked["version"]
    assert [r["changed"] for r in twice] == [True, True] and [r["forced_today"] for r in twice] == [1, 2]
    assert twice[1]["left_today"] == 18
    assert stored["access_token"] != leaked["access_token"] and stored["version"] == leaked["version"] + 2
    assert _wechat_accepts(reset_stack, leaked["access_token"]) == 40001
    assert _wechat_accepts(reset_stack, stored["access_token"]) == 0
    assert too_soon.returncode == 1 and "429 rate_limited" in too_soon.stderr, too_soon.stderr
    assert stored_token(reset_stack)["version"] == stored["version"]
    for done in (declined, too_soon):
        assert leaked["access_token"] not in done.stdout + done.stderr
        assert stored["access_token"] not in done.stdout + done.stderr


def test_token_force_refresh_refuses_the_21st_of_a_china_day_without_calling_wechat(
    reset_stack: LocalStack,
) -> None:
    """WeChat allows 20 force refreshes a day (UTC+8); the day's counter in the state table is at 20."""
    state = aws_client(reset_stack, "dynamodb")
    table = next(t.name for t in reset_stack.description.tables if t.logical_id == "StateTable")
    state.put_item(
        TableName=table,
        Item={
            "pk": {"S": force_counter(time.time())},
            "hits": {"N": str(FORCE_PER_DAY)},
            "expires_at": {"N": str(int(time.time()) + 86400)},
        },
    )
    before = stored_token(reset_stack)

    refused = wxsub(reset_stack, "token", "force-refresh", "--yes")

    assert refused.returncode == 1 and "429 quota_exhausted" in refused.stderr, refused.stderr
    assert "20 force refreshes" in refused.stderr and "Traceback" not in refused.stderr
    assert stored_token(reset_stack) == before
    assert _wechat_accepts(reset_stack, before["access_token"]) == 0


def _campaign_state(stack: LocalStack, campaign_id: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        seen = answer(wxsub(stack, "--json", "campaigns", "show", campaign_id))
        if seen["state"] == wanted or time.monotonic() > deadline:
            return dict(seen)
        time.sleep(0.5)


def test_campaigns_cancel_a_scheduled_one_and_resume_one_paused_by_the_daily_quota(
    reset_stack: LocalStack, api: Any
) -> None:
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid)
    settle_pushes(reset_stack)
    pairs = [f"{k}={v}" for k, v in VALID_DATA.items()]
    later = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
    scheduled = answer(
        wxsub(
            reset_stack,
            "--json",
            "campaigns",
            "create",
            ONE_TIME,
            *pairs,
            "--openid",
            openid,
            "--send-at",
            later,
        )
    )
    not_paused = wxsub(reset_stack, "campaigns", "resume", scheduled["campaign_id"])
    cancelled = answer(wxsub(reset_stack, "--json", "campaigns", "cancel", scheduled["campaign_id"]))

    fault(reset_stack, errcode=45009, count=1)  # WeChat's daily quota is spent: campaigns pause
    quota_hit = answer(
        wxsub(reset_stack, "--json", "campaigns", "create", ONE_TIME, *pairs, "--openid", openid)
    )
    paused = _campaign_state(reset_stack, quota_hit["campaign_id"], "paused")
    resumed = answer(wxsub(reset_stack, "--json", "campaigns", "resume", quota_hit["campaign_id"]))
    finished = _campaign_state(reset_stack, quota_hit["campaign_id"], "done")

    assert scheduled["state"] == "scheduled"
    assert not_paused.returncode == 1 and "409 campaign_not_paused" in not_paused.stderr, not_paused.stderr
    assert cancelled["state"] == "cancelled"
    assert paused["state"] == "paused" and paused["pause_reason"], paused
    assert resumed["campaign_id"] == quota_hit["campaign_id"]  # 202: the resume is queued
    assert finished["state"] == "done" and finished["counts"]["sent"] == 1, finished
    assert len(inbox(reset_stack, openid)) == 1
