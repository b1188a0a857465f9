"""Templates from WeChat's public library, through the API, against the sandbox's library.

Search by keyword → a title's keywords → add it with chosen keywords → the registry lists it with
its rules → a message with it is delivered → delete it → a send with it is refused. WeChat's
refusals come back as 4xx JSON naming what was wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from wx_flows import ONE_TIME, VALID_DATA, accept, inbox, login, sandbox, settle_pushes

from local.stack import LocalStack
from sandbox import SEEDED_ONE_TIME_2 as ONE_TIME_2

pytestmark = pytest.mark.integration

PAID = "付款成功通知"  # a title of the sandbox's library, not among the seeded private templates


def _title(backend: httpx.Client, name: str) -> dict[str, Any]:
    found = backend.get("/templates/library", params={"keyword": name[:2]})
    assert found.status_code == 200, found.text
    return next(t for t in found.json()["titles"] if t["title"] == name)


def test_a_library_title_is_added_sent_with_and_deleted(
    reset_stack: LocalStack, signed: Callable[..., httpx.Client], api: httpx.Client
) -> None:
    backend = signed()
    categories = backend.get("/templates/library/categories").json()["categories"]
    title = _title(backend, PAID)
    detail = backend.get(f"/templates/library/{title['tid']}").json()
    chosen = detail["keywords"][1:4]

    added = backend.post(
        "/templates",
        json={
            "tid": title["tid"],
            "kids": [k["kid"] for k in chosen],
            "scene": "订单付款",
            "alias": "order_paid",
        },
    )
    template_id = added.json()["template_id"]
    listed = {t["template_id"]: t for t in backend.get("/templates").json()["templates"]}
    keys = [k["name"] for k in added.json()["keywords"]]
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid, template_id)
    time.sleep(1.1)  # a push is known by its content, CreateTime in seconds: the same second is a retry
    accept(reset_stack, openid, template_id)  # two one-time grants: one is left when it is deleted
    settle_pushes(reset_stack)
    data = {key: keyword["example"] for key, keyword in zip(keys, chosen, strict=True)}
    sent = backend.post("/messages", json={"openid": openid, "template": "order_paid", "data": data})
    deleted = backend.delete("/templates/order_paid")
    after = backend.post("/messages", json={"openid": openid, "template": "order_paid", "data": data})
    by_id = backend.post("/messages", json={"openid": openid, "template_id": template_id, "data": data})

    assert len(categories) >= 3 and all({"id", "name"} <= set(c) for c in categories)
    assert (title["type"], detail["title"]) == ("one_time", PAID)
    assert all({"kid", "name", "example", "rule"} <= set(k) for k in detail["keywords"])
    assert added.status_code == 201, added.text
    assert (added.json()["title"], added.json()["alias"], len(keys)) == (PAID, "order_paid", 3)
    assert listed[template_id]["alias"] == "order_paid"
    assert [k["rule"] for k in listed[template_id]["keywords"]] == [k["rule"] for k in chosen]
    assert sent.status_code == 200 and sent.json()["status"] == "sent", sent.text
    assert [m["template_id"] for m in inbox(reset_stack, openid)] == [template_id]
    assert deleted.json() == {"deleted": template_id}
    assert template_id not in {t["template_id"] for t in backend.get("/templates").json()["templates"]}
    assert (after.status_code, after.json()["error"]) == (422, "unknown_template"), after.text
    assert "order_paid" in after.json()["message"]
    assert (by_id.status_code, by_id.json()["error"]) == (422, "unknown_template"), by_id.text
    assert len(inbox(reset_stack, openid)) == 1


def test_a_search_pages_through_every_title_of_the_chosen_categories(
    reset_stack: LocalStack, signed: Callable[..., httpx.Client]
) -> None:
    backend = signed()
    categories = [c["id"] for c in backend.get("/templates/library/categories").json()["categories"]]
    everything = backend.get("/templates/library", params={"limit": 100}).json()
    first = backend.get("/templates/library", params={"category": str(categories[0]), "limit": 2}).json()
    rest = backend.get(
        "/templates/library", params={"category": str(categories[0]), "start": 2, "limit": 100}
    ).json()

    assert everything["count"] == len(everything["titles"]) >= 10
    assert first["count"] == len(first["titles"]) + len(rest["titles"])
    assert {t["category_id"] for t in first["titles"] + rest["titles"]} == {str(categories[0])}
    assert not {t["tid"] for t in first["titles"]} & {t["tid"] for t in rest["titles"]}


@pytest.mark.parametrize(
    ("body", "status", "error", "named"),
    [
        ({"tid": 999999, "kids": [1, 2], "scene": "测试"}, 422, "invalid_template", "tid"),
        ({"tid": 1212, "kids": [1, 99], "scene": "测试"}, 422, "invalid_template", "kids"),
        ({"tid": 1212, "kids": [1, 1], "scene": "测试"}, 422, "invalid_template", "kids"),
        ({"tid": 855, "kids": [1, 2, 3, 4, 5], "scene": "发货"}, 409, "template_exists", "same title"),
        ({"tid": 1212, "kids": [1], "scene": "测试"}, 422, "invalid_request", "kids"),
        (
            {"tid": 1212, "kids": [1, 2], "scene": "一二三四五六七八九十一二三四五六"},
            422,
            "invalid_request",
            "scene",
        ),
    ],
    ids=["unknown-tid", "unknown-kid", "repeated-kid", "already-added", "one-kid", "long-scene"],
)
def test_a_template_wechat_would_refuse_is_a_4xx_naming_what_was_wrong(
    reset_stack: LocalStack,
    signed: Callable[..., httpx.Client],
    body: dict[str, Any],
    status: int,
    error: str,
    named: str,
) -> None:
    answer = signed().post("/templates", json=body)

    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error
    assert named in str(answer.json()), answer.text


def test_a_full_private_library_is_a_409_and_a_deleted_one_frees_a_place(
    reset_stack: LocalStack, signed: Callable[..., httpx.Client]
) -> None:
    backend = signed()
    with sandbox(reset_stack) as sb:
        held = len(sb.get("/sandbox/templates").json()["data"])
        limit = sb.get("/sandbox/config").json()["template_limit"]
        sb.post("/sandbox/config", json={"template_limit": held + 1}).raise_for_status()
    try:
        first = backend.post("/templates", json={"tid": 1212, "kids": [1, 2], "scene": "付款"})
        full = backend.post("/templates", json={"tid": 1451, "kids": [1, 2], "scene": "退款"})
        backend.delete(f"/templates/{first.json()['template_id']}")
        freed = backend.post("/templates", json={"tid": 1451, "kids": [1, 2], "scene": "退款"})
    finally:
        with sandbox(reset_stack) as sb:
            sb.post("/sandbox/config", json={"template_limit": limit}).raise_for_status()

    assert first.status_code == 201, first.text
    assert (full.status_code, full.json()["error"]) == (409, "template_limit_reached"), full.text
    assert "delete a template" in full.json()["message"]
    assert freed.status_code == 201, freed.text


def test_deleting_a_template_the_account_lacks_is_a_422(
    reset_stack: LocalStack, signed: Callable[..., httpx.Client]
) -> None:
    answer = signed().delete("/templates/NoSuchTemplate0000000000000000000000000000")

    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_template"), answer.text


def test_any_registry_template_takes_an_alias_which_sends_and_campaigns_accept(
    reset_stack: LocalStack, signed: Callable[..., httpx.Client], api: httpx.Client
) -> None:
    """A template added in the console (the sandbox's seeded one) is named, renamed, and used by name;
    an alias is one template's at a time."""
    backend = signed()
    named = backend.put(f"/templates/{ONE_TIME}/alias", json={"alias": "shipped"})
    renamed = backend.put(f"/templates/{ONE_TIME}/alias", json={"alias": "order_shipped"})
    taken = backend.put(f"/templates/{ONE_TIME_2}/alias", json={"alias": "order_shipped"})
    unknown = backend.put(
        "/templates/NoSuchTemplate00000000000000000000000000000/alias", json={"alias": "x1"}
    )
    malformed = backend.put(f"/templates/{ONE_TIME}/alias", json={"alias": "Order-Shipped"})
    openid, token = login(reset_stack, api)
    for_the_mini_program = api.get("/subscriptions/templates", headers={"authorization": f"Bearer {token}"})
    without_session = api.get("/subscriptions/templates")
    accept(reset_stack, openid, ONE_TIME)
    settle_pushes(reset_stack)
    message = {"openid": openid, "template": "order_shipped", "data": VALID_DATA}
    sent = backend.post("/messages", json=message)
    old_name = backend.post("/messages", json=message | {"template": "shipped"})
    both = backend.post("/messages", json=message | {"template_id": ONE_TIME})
    campaign = backend.post(
        "/campaigns",
        json={"template": "order_shipped", "data": VALID_DATA, "audience": {"openids": [openid]}},
    )

    assert named.status_code == 200 and named.json()["alias"] == "shipped", named.text
    assert renamed.json()["alias"] == "order_shipped"
    assert (taken.status_code, taken.json()["error"]) == (409, "alias_taken"), taken.text
    assert (unknown.status_code, unknown.json()["error"]) == (422, "unknown_template"), unknown.text
    assert malformed.status_code == 422, malformed.text
    assert for_the_mini_program.json() == {"templates": {"order_shipped": ONE_TIME}}
    assert without_session.status_code == 401
    assert sent.status_code == 200 and sent.json()["status"] == "sent", sent.text
    assert [m["template_id"] for m in inbox(reset_stack, openid)] == [ONE_TIME]
    assert (old_name.status_code, old_name.json()["error"]) == (422, "unknown_template")
    assert both.status_code == 422 and "either template_id or template" in both.text, both.text
    assert campaign.status_code == 202 and campaign.json()["template_id"] == ONE_TIME, campaign.text


def test_records_keep_the_alias_a_send_named_and_a_retry_by_id_is_the_same_request(
    reset_stack: LocalStack, signed: Callable[..., httpx.Client], api: httpx.Client
) -> None:
    """The delivery record and the campaign show the alias the caller used beside the resolved id;
    the Idempotency-Key's request is the resolved one, so a retry naming the id replays the send."""
    backend = signed()
    backend.put(f"/templates/{ONE_TIME}/alias", json={"alias": "order_shipped"})
    openid, _ = login(reset_stack, api)
    accept(reset_stack, openid, ONE_TIME)
    settle_pushes(reset_stack)
    message = {"openid": openid, "template": "order_shipped", "data": VALID_DATA}
    key = {"idempotency-key": f"alias-{time.time_ns()}"}
    sent = backend.post("/messages", json=message, headers=key)
    by_id = {"openid": openid, "template_id": ONE_TIME, "data": VALID_DATA}
    retried = backend.post("/messages", json=by_id, headers=key)
    record = backend.get(f"/messages/{sent.json()['message_id']}").json()
    campaign = backend.post(
        "/campaigns",
        json={"template": "order_shipped", "data": VALID_DATA, "audience": {"openids": [openid]}},
    ).json()
    shown = backend.get(f"/campaigns/{campaign['campaign_id']}").json()

    assert sent.status_code == 200, sent.text
    assert retried.status_code == 200 and retried.json() == sent.json(), retried.text
    assert len(inbox(reset_stack, openid)) == 1
    assert (record["template_id"], record["template_alias"]) == (ONE_TIME, "order_shipped"), record
    assert (shown["template_id"], shown["template_alias"]) == (ONE_TIME, "order_shipped"), shown
