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
from wx_flows import ONE_TIME, VALID_DATA, accept, inbox, login, settle_pushes, stored_token

from local.stack import LocalStack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WXSUB = ROOT / ".venv" / "bin" / "wxsub"


def wxsub(
    stack: LocalStack | None, *args: str, credentials: tuple[str, str] | None = None
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
        [str(WXSUB), *args], env=env, capture_output=True, text=True, timeout=120, check=False
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

    assert (no_stack.returncode, "no local stack is running" in no_stack.stderr) == (1, True), no_stack.stderr
    assert "make local" in no_stack.stderr
    assert refused.returncode == 1 and "422 invalid_template" in refused.stderr, refused.stderr
    assert unknown.returncode == 1 and "422 unknown_template" in unknown.stderr, unknown.stderr
    assert wrong_key.returncode == 1 and "403" in wrong_key.stderr, wrong_key.stderr
    assert bad_data.returncode == 2 and "keyword=value" in bad_data.stderr, bad_data.stderr
    for done in (no_stack, refused, unknown, wrong_key, bad_data):
        assert "Traceback" not in done.stderr
