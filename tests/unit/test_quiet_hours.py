"""Quiet hours: the send window, and moving messages later (check-ins) or earlier (reminders)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from worker.domain.quiet_hours import is_allowed, last_allowed_before, next_allowed

WINDOW = (time(8, 0), time(21, 0))
NY = "America/New_York"


def ny(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(NY))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hour", "minute", "allowed"),
    [
        (0, 0, False),
        (7, 59, False),
        (8, 0, True),
        (12, 0, True),
        (20, 59, True),
        (21, 0, False),
        (23, 30, False),
    ],
)
def test_it_allows_the_window_start_but_not_its_end(hour: int, minute: int, allowed: bool) -> None:
    assert is_allowed(ny(2026, 6, 10, hour, minute), NY, WINDOW) is allowed


def test_the_window_is_read_in_the_patients_zone_not_utc() -> None:
    at = utc(2026, 6, 10, 2)  # 22:00 the evening before in New York, noon in Sydney
    assert not is_allowed(at, NY, WINDOW)
    assert is_allowed(at, "Australia/Sydney", WINDOW)


def test_a_second_before_the_end_is_allowed() -> None:
    assert is_allowed(ny(2026, 6, 10, 20, 59, 59), NY, WINDOW)


# --- next_allowed (check-ins move later)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (ny(2026, 6, 10, 12, 0), ny(2026, 6, 10, 12, 0)),
        (ny(2026, 6, 10, 8, 0), ny(2026, 6, 10, 8, 0)),
        (ny(2026, 6, 10, 6, 0), ny(2026, 6, 10, 8, 0)),
        (ny(2026, 6, 10, 0, 0), ny(2026, 6, 10, 8, 0)),
        (ny(2026, 6, 10, 21, 0), ny(2026, 6, 11, 8, 0)),
        (ny(2026, 6, 10, 23, 30), ny(2026, 6, 11, 8, 0)),
        (ny(2026, 12, 31, 22, 0), ny(2027, 1, 1, 8, 0)),
    ],
)
def test_next_allowed_moves_a_check_in_to_the_next_window_start(
    at: datetime, expected: datetime
) -> None:
    moved = next_allowed(at, NY, WINDOW)
    assert moved == expected
    assert moved.tzinfo is UTC


def test_next_allowed_crosses_midnight_in_a_zone_ahead_of_utc() -> None:
    # 23:00 in Sydney on 10 June (AEST, +10) waits for 08:00 on 11 June, 22:00 UTC on 10 June.
    assert next_allowed(utc(2026, 6, 10, 13), "Australia/Sydney", WINDOW) == utc(2026, 6, 10, 22)


def test_next_allowed_uses_the_new_offset_after_a_dst_change_overnight() -> None:
    # 22:00 EST on 7 March; 08:00 the next morning is EDT.
    assert next_allowed(ny(2026, 3, 7, 22), NY, WINDOW) == utc(2026, 3, 8, 12)


def test_a_window_start_in_the_spring_gap_opens_at_the_first_valid_minute() -> None:
    window = (time(2, 30), time(21, 0))
    moved = next_allowed(ny(2026, 3, 8, 1, 0), NY, window)
    assert moved == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    assert is_allowed(moved, NY, window)


def test_a_window_start_in_the_fall_back_overlap_opens_at_the_first_pass() -> None:
    window = (time(1, 30), time(21, 0))
    assert next_allowed(ny(2026, 11, 1, 0, 15), NY, window) == utc(2026, 11, 1, 5, 30)


def test_next_allowed_keeps_an_allowed_instant_given_in_another_zone() -> None:
    at = datetime(2026, 6, 10, 18, tzinfo=ZoneInfo("Europe/Berlin"))  # 12:00 in New York
    assert next_allowed(at, NY, WINDOW) == at
    assert next_allowed(at, NY, WINDOW).tzinfo is UTC


# --- last_allowed_before (reminders move earlier)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (ny(2026, 6, 10, 12, 0), ny(2026, 6, 10, 12, 0)),
        (ny(2026, 6, 10, 20, 59), ny(2026, 6, 10, 20, 59)),
        (ny(2026, 6, 10, 21, 0), ny(2026, 6, 10, 20, 59)),
        (ny(2026, 6, 10, 23, 30), ny(2026, 6, 10, 20, 59)),
        (ny(2026, 6, 10, 7, 0), ny(2026, 6, 9, 20, 59)),
        (ny(2026, 6, 10, 0, 30), ny(2026, 6, 9, 20, 59)),
        (ny(2026, 1, 1, 7, 59), ny(2025, 12, 31, 20, 59)),
    ],
)
def test_last_allowed_before_moves_a_reminder_to_the_last_minute_of_the_window(
    at: datetime, expected: datetime
) -> None:
    moved = last_allowed_before(at, NY, WINDOW)
    assert moved == expected
    assert moved.tzinfo is UTC


def test_last_allowed_before_crosses_midnight_in_a_zone_ahead_of_utc() -> None:
    # 06:00 in Sydney on 11 June is 20:00 UTC on 10 June; 20:59 AEST on 10 June is 10:59 UTC.
    assert last_allowed_before(utc(2026, 6, 10, 20), "Australia/Sydney", WINDOW) == utc(
        2026, 6, 10, 10, 59
    )


def test_last_allowed_before_uses_the_old_offset_before_a_dst_change_overnight() -> None:
    # 07:00 EDT on 8 March moves to 20:59 EST on 7 March.
    assert last_allowed_before(ny(2026, 3, 8, 7), NY, WINDOW) == utc(2026, 3, 8, 1, 59)


def test_a_window_end_in_the_spring_gap_closes_at_the_last_minute_before_the_gap() -> None:
    window = (time(1, 0), time(2, 30))
    moved = last_allowed_before(ny(2026, 3, 8, 4, 0), NY, window)
    assert moved == utc(2026, 3, 8, 6, 59)  # 01:59 EST
    assert is_allowed(moved, NY, window)


def test_a_window_end_in_the_fall_back_overlap_closes_at_the_second_pass() -> None:
    window = (time(0, 0), time(2, 0))
    moved = last_allowed_before(ny(2026, 11, 1, 3, 0), NY, window)
    assert moved == utc(2026, 11, 1, 6, 59)  # 01:59 EST, the later of the two 01:59s
    assert moved < ny(2026, 11, 1, 3, 0)


# --- window validation


@pytest.mark.parametrize(
    "window", [(time(21, 0), time(8, 0)), (time(8, 0), time(8, 0))], ids=["reversed", "empty"]
)
def test_a_window_must_start_before_it_ends(window: tuple[time, time]) -> None:
    with pytest.raises(ValueError, match="must start before it ends"):
        is_allowed(ny(2026, 6, 10, 12), NY, window)


def test_quiet_hours_refuse_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed(datetime(2026, 6, 10, 12), NY, WINDOW)
