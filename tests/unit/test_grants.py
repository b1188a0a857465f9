"""The grant ledger: one accept counted once, spending under concurrency, holders."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from wxsub.stores.grants import MAX_UNPAIRED, Grant, GrantLedger, Source, Taken

U, T = "o-user", "tmpl-1"
T0 = 1_700_000_000
MIN = 60


@pytest.fixture
def ledger(grants_table: Any) -> GrantLedger:
    return GrantLedger(grants_table)


def accept(ledger: GrantLedger, source: Source, at: int, openid: str = U, template_id: str = T) -> Grant:
    return ledger.record_accept(openid, template_id, source=source, at=at, long_term=False)


# Pairing: the cases the issue names, then the ones around them.


def test_a_push_and_a_report_within_ten_minutes_are_one_accept(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    assert accept(ledger, "push", T0 + 9 * MIN).one_time == 1


def test_a_push_then_a_report_are_one_accept(ledger: GrantLedger) -> None:
    accept(ledger, "push", T0)
    assert accept(ledger, "report", T0 + 30).one_time == 1


def test_two_reports_are_two_accepts(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    assert accept(ledger, "report", T0 + 5).one_time == 2


def test_two_pushes_are_two_accepts(ledger: GrantLedger) -> None:
    accept(ledger, "push", T0)
    assert accept(ledger, "push", T0 + 5).one_time == 2


def test_a_report_then_a_push_eleven_minutes_later_are_two_accepts(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    assert accept(ledger, "push", T0 + 11 * MIN).one_time == 2


def test_exactly_ten_minutes_apart_still_pair(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    assert accept(ledger, "push", T0 + 10 * MIN).one_time == 1


def test_a_push_that_arrives_after_a_later_report_still_pairs_by_its_own_time(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0 + 60)
    assert accept(ledger, "push", T0).one_time == 1


def test_pairing_is_first_in_first_out(ledger: GrantLedger) -> None:
    """Two reports, then two pushes: each push takes the oldest report it can reach.

    Had the first push paired with the newer report, the second push (more than ten minutes
    after the older one) would have found no partner and counted a third grant.
    """
    accept(ledger, "report", T0)
    accept(ledger, "report", T0 + 2 * MIN)
    assert accept(ledger, "push", T0 + 3 * MIN).one_time == 2
    assert accept(ledger, "push", T0 + 11 * MIN).one_time == 2


def test_three_events_pair_two_and_count_the_third(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    accept(ledger, "push", T0 + 10)
    assert accept(ledger, "push", T0 + 20).one_time == 2


def test_a_push_pairs_once_even_when_reports_pile_up(ledger: GrantLedger) -> None:
    for i in range(3):
        accept(ledger, "report", T0 + i)
    assert accept(ledger, "push", T0 + 5).one_time == 3


def test_pairing_is_per_template_and_per_user(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0, template_id="a")
    accept(ledger, "push", T0 + 1, template_id="b")
    accept(ledger, "push", T0 + 2, openid="someone-else", template_id="a")
    assert [ledger.get(U, "a").one_time, ledger.get(U, "b").one_time] == [1, 1]
    assert ledger.get("someone-else", "a").one_time == 1


def test_unpaired_times_are_bounded(ledger: GrantLedger, grants_table: Any) -> None:
    for i in range(MAX_UNPAIRED + 10):
        accept(ledger, "report", T0 + i)
    item = grants_table.get_item(Key={"openid": U, "template_id": T})["Item"]
    assert len(item["unpaired_report"]) == MAX_UNPAIRED
    assert ledger.get(U, T).one_time == MAX_UNPAIRED + 10


def test_old_unpaired_times_are_dropped(ledger: GrantLedger, grants_table: Any) -> None:
    accept(ledger, "report", T0)
    accept(ledger, "report", T0 + 20 * MIN)
    item = grants_table.get_item(Key={"openid": U, "template_id": T})["Item"]
    assert [int(t) for t in item["unpaired_report"]] == [T0 + 20 * MIN]


def test_an_accept_records_status_and_time(ledger: GrantLedger) -> None:
    grant = accept(ledger, "push", T0)
    assert grant == Grant(U, T, one_time=1, long_term=False, last_status="accept", updated_at=T0)


def test_the_newest_event_decides_the_last_status(ledger: GrantLedger) -> None:
    ledger.record_reject(U, T, source="push", at=T0 + 100)
    grant = accept(ledger, "report", T0)
    assert (grant.last_status, grant.updated_at, grant.one_time) == ("reject", T0 + 100, 1)


# Long-term, rejects, revokes.


def test_a_long_term_accept_turns_it_on_without_counting(ledger: GrantLedger) -> None:
    ledger.record_accept(U, T, source="push", at=T0, long_term=True)
    grant = ledger.record_accept(U, T, source="report", at=T0 + 1, long_term=True)
    assert (grant.long_term, grant.one_time, grant.last_status) == (True, 0, "accept")


def test_a_popup_reject_keeps_earned_grants(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    grant = ledger.record_reject(U, T, source="report", at=T0 + 5)
    assert (grant.one_time, grant.last_status, grant.updated_at) == (1, "reject", T0 + 5)


def test_a_popup_reject_ends_a_long_term_subscription(ledger: GrantLedger) -> None:
    ledger.record_accept(U, T, source="push", at=T0, long_term=True)
    assert ledger.record_reject(U, T, source="push", at=T0 + 5).long_term is False


def test_a_revoke_takes_everything_away(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    accept(ledger, "report", T0 + 1)
    ledger.record_accept(U, T, source="push", at=T0 + 2, long_term=True)
    grant = ledger.revoke(U, T, at=T0 + 60)
    assert (grant.one_time, grant.long_term, grant.last_status) == (0, False, "reject")
    assert ledger.take(U, T, long_term=False) is None


def test_an_accept_after_a_revoke_counts_even_without_its_other_half(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    ledger.revoke(U, T, at=T0 + 60)
    assert accept(ledger, "push", T0 + 120).one_time == 1


def test_a_reject_for_a_pair_never_seen_creates_a_zero_grant(ledger: GrantLedger) -> None:
    grant = ledger.record_reject(U, T, source="push", at=T0)
    assert (grant.one_time, grant.long_term, grant.last_status) == (0, False, "reject")


# Spending.


def test_take_spends_one_grant_at_a_time(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    accept(ledger, "report", T0 + 1)
    taken = [ledger.take(U, T, long_term=False) for i in range(3)]
    assert [t is not None and t.spent for t in taken] == [True, True, False]
    assert ledger.get(U, T).one_time == 0


def test_take_without_any_grant_is_none_and_writes_nothing(ledger: GrantLedger, grants_table: Any) -> None:
    assert ledger.take(U, T, long_term=False) is None
    assert "Item" not in grants_table.get_item(Key={"openid": U, "template_id": T})


def test_a_take_retried_by_the_sdk_after_its_answer_was_lost_spends_once(
    ledger: GrantLedger, grants_table: Any
) -> None:
    """DynamoDB applied the update but the answer never arrived; botocore sends the same request again."""
    accept(ledger, "report", T0)
    accept(ledger, "report", T0 + 1)
    client = grants_table.meta.client
    attempts_made: list[int] = []

    def lose_the_first_answer(attempts: int, **_: Any) -> int | None:
        attempts_made.append(attempts)
        return 0 if attempts == 1 else None

    client.meta.events.register("needs-retry.dynamodb.UpdateItem", lose_the_first_answer)
    try:
        taken = ledger.take(U, T, long_term=False)
    finally:
        client.meta.events.unregister("needs-retry.dynamodb.UpdateItem", lose_the_first_answer)

    assert attempts_made == [1, 2], "the fault was not injected"
    assert taken is not None and taken.spent
    assert ledger.get(U, T).one_time == 1


def test_each_take_is_its_own_even_for_the_same_user_and_template(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    accept(ledger, "report", T0 + 1)
    assert ledger.take(U, T, long_term=False) is not None
    assert ledger.take(U, T, long_term=False) is not None
    assert ledger.take(U, T, long_term=False) is None
    assert ledger.get(U, T).one_time == 0


def give_back(ledger: GrantLedger, grants_table: Any) -> None:
    """Applies the ledger's give-back element the way the deliveries store does: in a transaction."""
    grants_table.meta.client.transact_write_items(TransactItems=[{"Update": ledger.give_back(U, T)}])


def test_give_back_returns_a_spent_grant_when_applied(ledger: GrantLedger, grants_table: Any) -> None:
    accept(ledger, "push", T0)
    assert ledger.take(U, T, long_term=False) is not None
    give_back(ledger, grants_table)
    assert ledger.get(U, T).one_time == 1


def test_give_back_alone_changes_nothing(ledger: GrantLedger) -> None:
    accept(ledger, "push", T0)
    ledger.give_back(U, T)
    assert ledger.get(U, T).one_time == 1


def test_exhaust_zeroes_whatever_the_ledger_believed(ledger: GrantLedger) -> None:
    for i in range(3):
        accept(ledger, "report", T0 + i)
    ledger.record_accept(U, T, source="push", at=T0, long_term=True)
    seen = ledger.take(U, T, long_term=False)
    assert seen is not None
    assert ledger.exhaust(U, T, seen) is True
    grant = ledger.get(U, T)
    assert (grant.one_time, grant.long_term) == (0, False)
    assert ledger.take(U, T, long_term=False) is None


def test_exhaust_keeps_an_accept_counted_since_the_take(ledger: GrantLedger) -> None:
    """43101 answers for the moment WeChat saw; an accept counted after the take is a new grant."""
    accept(ledger, "report", T0)
    seen = ledger.take(U, T, long_term=False)
    assert seen is not None
    accept(ledger, "report", T0 + 30)
    assert ledger.exhaust(U, T, seen) is False
    assert ledger.get(U, T).one_time == 1


def test_exhaust_ends_a_long_term_subscription_seen_by_a_long_term_take(ledger: GrantLedger) -> None:
    ledger.record_accept(U, T, source="push", at=T0, long_term=True)
    seen = ledger.take(U, T, long_term=True)
    assert seen is not None and seen.spent is False
    assert ledger.exhaust(U, T, seen) is True
    assert ledger.get(U, T).long_term is False


def test_a_long_term_take_does_not_consume(ledger: GrantLedger) -> None:
    ledger.record_accept(U, T, source="push", at=T0, long_term=True)
    taken = [ledger.take(U, T, long_term=True) for _ in range(5)]
    assert all(t is not None and not t.spent for t in taken)
    assert ledger.get(U, T).long_term is True


def test_a_long_term_take_without_a_subscription_is_none(ledger: GrantLedger) -> None:
    assert ledger.take(U, T, long_term=True) is None


def test_a_long_term_take_honours_accepts_counted_as_one_time(ledger: GrantLedger) -> None:
    """Accepts recorded before the registry knew the template was long-term still mean consent."""
    accept(ledger, "report", T0)
    taken = ledger.take(U, T, long_term=True)
    assert taken is not None and taken.spent is False
    assert ledger.get(U, T).one_time == 1


def test_events_do_not_overwrite_spending(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0)
    accept(ledger, "report", T0 + 1)
    ledger.take(U, T, long_term=False)
    assert accept(ledger, "push", T0 + 2).one_time == 1


# Concurrency: each thread has its own ledger and Table object over one shared (thread-safe) client.


def in_parallel(table: Any, work: Callable[[GrantLedger, int], Any], workers: int = 20) -> list[Any]:
    """Runs ``work(ledger, i)`` in ``workers`` threads released together; returns the results by i."""
    dynamodb = boto3.resource("dynamodb", region_name=table.meta.client.meta.region_name)
    own = [GrantLedger(dynamodb.Table(table.name)) for _ in range(workers)]
    start = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(i: int) -> None:
        start.wait()
        results[i] = work(own[i], i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_twenty_parallel_takes_of_one_grant_spend_it_once(
    ledger: GrantLedger, grants_table: Any, atomic_dynamodb: None
) -> None:
    accept(ledger, "push", T0)
    results = in_parallel(grants_table, lambda own, i: own.take(U, T, long_term=False))
    assert sum(taken is not None for taken in results) == 1
    assert ledger.get(U, T).one_time == 0


def test_twenty_parallel_reports_are_twenty_grants_and_twenty_unpaired_times(
    ledger: GrantLedger, grants_table: Any, atomic_dynamodb: None
) -> None:
    in_parallel(grants_table, lambda own, i: accept(own, "report", T0 + i))
    assert ledger.get(U, T).one_time == 20
    item = grants_table.get_item(Key={"openid": U, "template_id": T})["Item"]
    assert sorted(int(t) for t in item["unpaired_report"]) == [T0 + i for i in range(20)]


def test_ten_pushes_and_ten_reports_in_parallel_are_ten_grants(
    ledger: GrantLedger, grants_table: Any, atomic_dynamodb: None
) -> None:
    """In any order, each push pairs with a report or the other way round: a lost update shows."""
    in_parallel(grants_table, lambda own, i: accept(own, "push" if i % 2 else "report", T0))
    assert ledger.get(U, T).one_time == 10


def test_parallel_accepts_and_takes_never_lose_a_grant(
    ledger: GrantLedger, grants_table: Any, atomic_dynamodb: None
) -> None:
    for i in range(10):
        accept(ledger, "report", T0 + i)

    def work(own: GrantLedger, i: int) -> Any:
        if i % 2:
            return accept(own, "report", T0 + 100 + i)
        return own.take(U, T, long_term=False)

    results = in_parallel(grants_table, work)
    takes = sum(isinstance(result, Taken) for result in results)
    assert takes == 10
    assert ledger.get(U, T).one_time == 10 + 10 - takes


# The view.


def test_for_user_lists_every_template_the_user_answered(ledger: GrantLedger) -> None:
    accept(ledger, "report", T0, template_id="a")
    ledger.record_reject(U, "b", source="push", at=T0)
    accept(ledger, "report", T0, openid="other", template_id="a")
    grants = ledger.for_user(U)
    seen = [(g.template_id, g.one_time, g.last_status) for g in grants]
    assert seen == [("a", 1, "accept"), ("b", 0, "reject")]


def test_to_json(ledger: GrantLedger) -> None:
    assert accept(ledger, "report", T0).to_json() == {
        "openid": U,
        "template_id": T,
        "one_time": 1,
        "long_term": False,
        "last_status": "accept",
        "updated_at": T0,
    }


def test_get_of_a_pair_never_seen(ledger: GrantLedger) -> None:
    assert ledger.get(U, T) == Grant(U, T, 0, False, None, None)


def test_holders_are_paginated_and_skip_spent_grants(ledger: GrantLedger) -> None:
    for i in range(25):
        accept(ledger, "report", T0, openid=f"u{i:02d}")
    for i in range(0, 25, 5):
        ledger.take(f"u{i:02d}", T, long_term=False)
    ledger.record_accept("long", T, source="push", at=T0, long_term=True)
    accept(ledger, "report", T0, openid="elsewhere", template_id="other")

    seen: list[str] = []
    start: str | None = None
    pages = 0
    while True:
        page, start = ledger.holders(T, limit=7, start=start)
        assert len(page) <= 7
        seen += [g.openid for g in page]
        pages += 1
        if start is None:
            break
    expected = sorted([f"u{i:02d}" for i in range(25) if i % 5] + ["long"])
    assert seen == expected
    assert pages == 3


def test_holders_of_a_template_nobody_holds(ledger: GrantLedger) -> None:
    assert ledger.holders(T) == ([], None)
