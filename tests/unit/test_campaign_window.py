"""Sending windows, the next quota day and a recipient's message_id: pure functions of time and ids."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from wxsub.services.campaigns import Window, message_id_for, next_quota_day

BEIJING = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, zone: ZoneInfo = BEIJING) -> float:
    """Epoch seconds of a wall-clock time in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


DAYTIME = Window("09:00", "21:00", "Asia/Shanghai")
NIGHT = Window("22:00", "06:00", "Asia/Shanghai")


@pytest.mark.parametrize("now", ["2027-01-15 09:00:00", "2027-01-15 12:34:56", "2027-01-15 20:59:59"])
def test_inside_the_window_it_is_open(now: str) -> None:
    assert DAYTIME.opens_after(at(now)) is None


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        ("2027-01-15 00:00:00", "2027-01-15 09:00:00"),
        ("2027-01-15 08:59:59", "2027-01-15 09:00:00"),
        ("2027-01-15 21:00:00", "2027-01-16 09:00:00"),
        ("2027-01-15 23:30:00", "2027-01-16 09:00:00"),
        ("2027-12-31 22:00:00", "2028-01-01 09:00:00"),
    ],
)
def test_before_or_after_the_window_it_opens_at_the_next_start(now: str, opens: str) -> None:
    assert DAYTIME.opens_after(at(now)) == at(opens)


@pytest.mark.parametrize(
    "now", ["2027-01-15 22:00:00", "2027-01-15 23:59:59", "2027-01-16 00:00:00", "2027-01-16 05:59:59"]
)
def test_a_window_across_midnight_is_open_on_both_sides_of_it(now: str) -> None:
    assert NIGHT.opens_after(at(now)) is None


@pytest.mark.parametrize(
    ("now", "opens"),
    [("2027-01-16 06:00:00", "2027-01-16 22:00:00"), ("2027-01-16 12:00:00", "2027-01-16 22:00:00")],
)
def test_a_window_across_midnight_opens_the_same_evening(now: str, opens: str) -> None:
    assert NIGHT.opens_after(at(now)) == at(opens)


def test_seconds_in_the_window_count() -> None:
    window = Window("09:00:30", "09:01:15", "Asia/Shanghai")

    assert window.opens_after(at("2027-01-15 09:00:10")) == at("2027-01-15 09:00:30")
    assert window.opens_after(at("2027-01-15 09:00:30")) is None
    assert window.opens_after(at("2027-01-15 09:01:14")) is None
    assert window.opens_after(at("2027-01-15 09:01:15")) == at("2027-01-16 09:00:30")


def test_the_window_is_read_in_its_own_zone() -> None:
    window = Window("09:00", "17:00", "America/New_York")
    now = at("2027-01-15 16:00:00")  # Beijing afternoon: 03:00 in New York

    assert window.opens_after(now) == at("2027-01-15 09:00:00", NEW_YORK)


def test_a_window_opening_the_day_clocks_spring_forward_opens_at_local_time() -> None:
    window = Window("09:00", "17:00", "America/New_York")
    evening_before = at("2027-03-13 18:00:00", NEW_YORK)  # EST; DST starts 2027-03-14 at 02:00

    opens = window.opens_after(evening_before)

    assert opens == datetime(2027, 3, 14, 13, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # 09:00 EDT
    assert opens is not None and opens - evening_before == 14 * 3600


def test_a_window_opening_the_day_clocks_fall_back_opens_at_local_time() -> None:
    window = Window("09:00", "17:00", "America/New_York")
    evening_before = at("2027-11-06 18:00:00", NEW_YORK)  # EDT; DST ends 2027-11-07 at 02:00

    opens = window.opens_after(evening_before)

    assert opens == datetime(2027, 11, 7, 14, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # 09:00 EST
    assert opens is not None and opens - evening_before == 16 * 3600


def test_the_window_reads_back_as_json() -> None:
    assert NIGHT.to_json() == {"start": "22:00", "end": "06:00", "tz": "Asia/Shanghai"}


@pytest.mark.parametrize(
    ("now", "resets"),
    [
        ("2027-01-15 16:00:00", "2027-01-16 00:01:00"),
        ("2027-01-15 23:59:59", "2027-01-16 00:01:00"),
        ("2027-01-16 00:00:30", "2027-01-17 00:01:00"),
        ("2027-12-31 12:00:00", "2028-01-01 00:01:00"),
    ],
)
def test_the_quota_resets_after_the_next_midnight_in_beijing(now: str, resets: str) -> None:
    assert next_quota_day(at(now)) == at(resets)


def test_the_quota_day_follows_beijing_not_utc() -> None:
    utc_evening = datetime(
        2027, 1, 15, 20, 0, tzinfo=ZoneInfo("UTC")
    ).timestamp()  # 04:00 on the 16th in Beijing

    assert next_quota_day(utc_evening) == at("2027-01-17 00:01:00")


def test_a_recipient_has_one_message_id_per_campaign() -> None:
    one = message_id_for("c1", "o-1")

    assert one == message_id_for("c1", "o-1")
    assert len(one) == 28 and all(ch in "0123456789abcdef" for ch in one)
    assert len({one, message_id_for("c1", "o-2"), message_id_for("c2", "o-1")}) == 3
