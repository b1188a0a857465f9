"""The functions that can meet a stale access token outside a send heal it themselves.

DESIGN's token rules let any caller that meets a token WeChat refuses refresh it. Besides the send
path, a template sync does: the push function and the subscriptions function sync the registry
when WeChat or a client names a template it does not know yet. These tests take those paths
with every issued token invalidated, on the local AWS that allows each function only what its
template policy grants, so the function must be allowed to write the new token to SSM.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from wx_flows import accept, login, report, sandbox, settle_pushes, stored_token

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _console_template(stack: LocalStack) -> str:
    """A one-time template added in the mini program console after the registry's last sync."""
    body = {"title": "到货提醒", "content": "商品:{{thing1.DATA}}\n", "example": "商品:键盘\n", "type": 2}
    with sandbox(stack) as sb:
        template_id = str(sb.post("/sandbox/templates", json=body).json()["priTmplId"])
        assert sb.post("/sandbox/tokens/invalidate").status_code == 200
    return template_id


def _registry(signed: Any) -> set[str]:
    answer = signed().get("/templates")
    assert answer.status_code == 200, answer.text
    return {t["template_id"] for t in answer.json()["templates"]}


def test_an_accept_for_a_new_template_with_a_stale_token_heals_the_token_and_learns_the_template(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    openid, _ = login(reset_stack, api)
    template_id = _console_template(reset_stack)
    before = stored_token(reset_stack)

    accept(reset_stack, openid, template_id)  # WeChat pushes the popup event to WeChatPushFunction

    (push,) = [p for p in settle_pushes(reset_stack) if p["openid"] == openid]
    assert (push["state"], push["attempts"][-1]["response"]) == ("delivered", "success")
    after = stored_token(reset_stack)
    assert after["version"] > before["version"]
    assert after["access_token"] != before["access_token"]
    assert template_id in _registry(signed)


def test_a_report_naming_a_new_template_with_a_stale_token_heals_the_token_and_keeps_the_grant(
    reset_stack: LocalStack, signed, api: httpx.Client
) -> None:
    _, token = login(reset_stack, api)
    template_id = _console_template(reset_stack)
    before = stored_token(reset_stack)

    answer = report(api, token, {template_id: "accept"})  # SubscriptionsFunction

    assert answer.status_code == 200, answer.text
    after = stored_token(reset_stack)
    assert after["version"] > before["version"]
    assert template_id in _registry(signed)
