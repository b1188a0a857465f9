"""The template registry: a miss syncs at most once a minute, hits are cached, data is checked."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from wxsub import errors
from wxsub.services.templates import SyncResult, TemplateRegistry, TemplateSync
from wxsub.stores.templates import Template
from wxsub.wechat.api.subscribe import TemplateInfo
from wxsub.wechat.client import WeChatApiError, WeChatError

T0 = 1_800_000_000
SHIPPED, MEMBERSHIP, UNKNOWN = "tmpl-shipped", "tmpl-membership", "tmpl-nobody-knows"


def shipped() -> TemplateInfo:
    content = "订单号:{{character_string1.DATA}}\n商品:{{thing2.DATA}}\n发货时间:{{time3.DATA}}"
    return TemplateInfo(SHIPPED, "订单发货通知", content, "", type=2)


def membership() -> TemplateInfo:
    return TemplateInfo(MEMBERSHIP, "会员到期提醒", "会员:{{thing1.DATA}}", "", type=3)


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


class WeChat:
    """gettemplate: the account's private templates as the mini program admin lists them."""

    def __init__(self, *listed: TemplateInfo) -> None:
        self.listed = list(listed)
        self.calls = 0
        self.error: WeChatError | None = None

    def templates(self, access_token: str) -> list[TemplateInfo]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return list(self.listed)


class Tokens:
    def call(self, fn: Callable[[str], Any]) -> Any:
        return fn("access-token")


class TemplateStore:
    """The registry table: templates by id, counting reads."""

    def __init__(self) -> None:
        self.templates: dict[str, Template] = {}
        self.reads = 0

    def get(self, template_id: str) -> Template | None:
        self.reads += 1
        return self.templates.get(template_id)

    def replace_all(self, templates: Iterable[Template]) -> tuple[int, int]:
        fresh = {t.template_id: t for t in templates}
        removed = len(set(self.templates) - set(fresh))
        self.templates = fresh
        return len(fresh), removed


class State:
    """The state table's markers, expiring by the clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def put_new(self, pk: str, ttl_seconds: int, **attributes: Any) -> bool:
        if self._expiry.get(pk, 0) > self._clock():
            return False
        self._expiry[pk] = self._clock() + ttl_seconds
        return True


class Registry:
    """The registry wired to its fakes, which the tests look at."""

    def __init__(self, *listed: TemplateInfo, synced: bool = False) -> None:
        self.clock = Clock()
        self.wechat = WeChat(*listed)
        self.store = TemplateStore()
        self.sync = TemplateSync(self.wechat, Tokens(), self.store, clock=self.clock)  # type: ignore[arg-type]
        self.registry = TemplateRegistry(
            self.store,  # type: ignore[arg-type]
            self.sync,
            State(self.clock),  # type: ignore[arg-type]
            cache_seconds=60,
            clock=self.clock,
        )
        if synced:
            self.sync.sync()
            self.wechat.calls = 0


# Misses.


def test_a_miss_syncs_once_and_a_second_miss_within_a_minute_does_not() -> None:
    given = Registry(shipped())

    first = given.registry.lookup(UNKNOWN)
    given.clock.now += 59
    second = given.registry.lookup(UNKNOWN)

    assert (first, second) == (None, None)
    assert given.wechat.calls == 1


def test_a_miss_a_minute_later_syncs_again() -> None:
    given = Registry()
    given.registry.lookup(UNKNOWN)
    given.clock.now += 61

    given.registry.lookup(UNKNOWN)

    assert given.wechat.calls == 2


def test_misses_of_different_templates_each_sync() -> None:
    given = Registry()

    given.registry.lookup("tmpl-a")
    given.registry.lookup("tmpl-b")

    assert given.wechat.calls == 2


def test_a_template_added_in_the_admin_is_found_by_the_sync_its_first_send_triggers() -> None:
    given = Registry(shipped())

    found = given.registry.lookup(SHIPPED)
    again = given.registry.lookup(SHIPPED)

    assert found is not None and again == found
    assert (found.title, found.synced_at) == ("订单发货通知", T0)
    assert [(k.name, k.rule) for k in found.keywords] == [
        ("character_string1", "character_string"),
        ("thing2", "thing"),
        ("time3", "time"),
    ]
    assert given.wechat.calls == 1


def test_a_sync_that_fails_on_a_miss_answers_unknown_and_is_not_retried_within_the_minute() -> None:
    given = Registry(shipped())
    given.wechat.error = WeChatApiError(-1, "system busy")

    first = given.registry.lookup(SHIPPED)
    given.wechat.error = None
    second = given.registry.lookup(SHIPPED)

    assert (first, second) == (None, None)
    assert given.wechat.calls == 1


# Hits.


def test_a_found_template_is_read_from_the_store_once_for_two_lookups() -> None:
    given = Registry(shipped(), synced=True)
    reads = given.store.reads

    given.registry.lookup(SHIPPED)
    given.registry.lookup(SHIPPED)

    assert given.store.reads - reads == 1
    assert given.wechat.calls == 0


def test_a_cached_template_is_read_again_after_the_cache_age() -> None:
    given = Registry(shipped(), synced=True)
    given.registry.lookup(SHIPPED)
    reads = given.store.reads
    given.clock.now += 61

    given.registry.lookup(SHIPPED)

    assert given.store.reads - reads == 1


def test_a_template_removed_in_the_admin_is_dropped_by_the_next_sync() -> None:
    given = Registry(shipped(), membership(), synced=True)
    given.wechat.listed = [shipped()]

    result = given.sync.sync()

    assert result == SyncResult(templates=1, removed=1)
    assert set(given.store.templates) == {SHIPPED}


# Template types.


def test_the_type_comes_from_the_registry_and_an_unknown_template_counts_as_one_time() -> None:
    given = Registry(shipped(), membership())

    kinds = [given.registry.is_long_term(t) for t in (MEMBERSHIP, SHIPPED, UNKNOWN)]

    assert kinds == [True, False, False]


def test_known_long_term_never_syncs() -> None:
    given = Registry(membership())

    answer = given.registry.known_long_term(MEMBERSHIP)

    assert answer is False
    assert given.wechat.calls == 0


def test_known_long_term_answers_from_the_store() -> None:
    given = Registry(shipped(), membership(), synced=True)

    kinds = [given.registry.known_long_term(t) for t in (MEMBERSHIP, SHIPPED, UNKNOWN)]

    assert kinds == [True, False, False]
    assert given.wechat.calls == 0


# Checking data.

GOOD = {"character_string1": "SO-20240501-0042", "thing2": "Wireless earbuds", "time3": "2024-05-01 09:30"}


def test_data_that_keeps_every_rule_is_returned_to_send() -> None:
    given = Registry(shipped(), synced=True)

    values = given.registry.check(SHIPPED, GOOD, fit=False)

    assert values == GOOD


def test_checking_a_template_nobody_knows_is_unknown_template() -> None:
    given = Registry(shipped(), synced=True)

    with pytest.raises(errors.UnknownTemplate) as raised:
        given.registry.check(UNKNOWN, GOOD, fit=False)

    assert (raised.value.status, raised.value.code) == (422, "unknown_template")


def test_data_breaking_rules_is_invalid_data_naming_each_keyword_rule_length_and_limit() -> None:
    given = Registry(shipped(), synced=True)
    data = {**GOOD, "thing2": "Wireless noise-cancelling earbuds", "time3": "9:30"}

    with pytest.raises(errors.InvalidData) as raised:
        given.registry.check(SHIPPED, data, fit=False)

    body = raised.value.body()
    assert (raised.value.status, body["error"]) == (422, "invalid_data")
    found = {v["keyword"]: (v["rule"], v["problem"], v["length"], v["limit"]) for v in body["violations"]}
    assert found == {"thing2": ("thing", "too_long", 33, 20), "time3": ("time", "bad_format", 4, None)}
    assert all(v["message"].startswith(v["keyword"]) for v in body["violations"])


def test_missing_and_unknown_keywords_are_named() -> None:
    given = Registry(shipped(), synced=True)
    data = {"character_string1": "SO-1", "thing2": "Earbuds", "thing9": "stray"}

    with pytest.raises(errors.InvalidData) as raised:
        given.registry.check(SHIPPED, data, fit=False)

    problems = {(v["keyword"], v["problem"]) for v in raised.value.body()["violations"]}
    assert problems == {("time3", "missing"), ("thing9", "unknown_keyword")}


def test_fit_shortens_an_over_long_thing_instead_of_refusing_it() -> None:
    given = Registry(shipped(), synced=True)
    data = {**GOOD, "thing2": "Wireless noise-cancelling earbuds"}

    values = given.registry.check(SHIPPED, data, fit=True)

    assert values["thing2"] == "Wireless noise-canc…"
    assert len(values["thing2"]) == 20
