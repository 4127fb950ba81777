"""Appointment reminders: offsets, the infusion preparation message, quiet hours, DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.domain.reminders import (
    DEFAULT_OFFSETS,
    PREP_LOCAL_TIME,
    ReminderSpec,
    offset_key,
    reminder_schedule,
)

WINDOW = (time(8, 0), time(21, 0))
NY = "America/New_York"


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(NY))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_the_defaults_are_72_24_and_2_hours_and_prep_at_1800() -> None:
    assert (timedelta(hours=72), timedelta(hours=24), timedelta(hours=2)) == DEFAULT_OFFSETS
    assert time(18, 0) == PREP_LOCAL_TIME


def test_a_therapy_appointment_gets_reminders_72_24_and_2_hours_before() -> None:
    starts_at = ny(2026, 6, 16, 14, 0)

    specs = reminder_schedule("therapy", starts_at, NY, WINDOW)

    assert specs == [
        ReminderSpec("72h", "reminder_therapy", ny(2026, 6, 13, 14, 0)),
        ReminderSpec("24h", "reminder_therapy", ny(2026, 6, 15, 14, 0)),
        ReminderSpec("2h", "reminder_therapy", ny(2026, 6, 16, 12, 0)),
    ]
    assert all(spec.due_at.tzinfo is UTC for spec in specs)


def test_an_infusion_also_gets_a_prep_message_at_1800_the_evening_before() -> None:
    specs = reminder_schedule("infusion", ny(2026, 6, 16, 10, 0), NY, WINDOW)

    assert [(s.key, s.template, s.due_at) for s in specs] == [
        ("72h", "reminder_infusion", ny(2026, 6, 13, 10, 0)),
        ("24h", "reminder_infusion", ny(2026, 6, 15, 10, 0)),
        ("prep", "infusion_prep", ny(2026, 6, 15, 18, 0)),
        ("2h", "reminder_infusion", ny(2026, 6, 16, 8, 0)),
    ]


@pytest.mark.parametrize("kind", ["therapy", "physical_therapy", "consult"])
def test_only_infusions_get_a_prep_message(kind: str) -> None:
    specs = reminder_schedule(kind, ny(2026, 6, 16, 10, 0), NY, WINDOW)
    assert [s.key for s in specs] == ["72h", "24h", "2h"]
    assert {s.template for s in specs} == {f"reminder_{kind}"}


def test_a_2h_reminder_for_a_0900_appointment_moves_to_2059_the_evening_before() -> None:
    specs = reminder_schedule("infusion", ny(2026, 6, 16, 9, 0), NY, WINDOW)

    by_key = {s.key: s.due_at for s in specs}
    assert by_key["2h"] == ny(2026, 6, 15, 20, 59)
    assert [s.key for s in specs] == ["72h", "24h", "prep", "2h"]


def test_a_reminder_after_the_window_moves_to_2059_the_same_day() -> None:
    # 72 h before a 23:30 appointment is 23:30, outside the window.
    specs = reminder_schedule("consult", ny(2026, 6, 16, 23, 30), NY, WINDOW)
    assert {s.key: s.due_at for s in specs}["72h"] == ny(2026, 6, 13, 20, 59)
    assert {s.key: s.due_at for s in specs}["2h"] == ny(2026, 6, 16, 20, 59)


def test_the_72h_reminder_across_a_dst_change_is_72_real_hours_ahead() -> None:
    # 10:00 EDT on Tuesday 10 March; 72 hours before is 09:00 EST on Saturday 7 March.
    starts_at = ny(2026, 3, 10, 10, 0)

    specs = {s.key: s.due_at for s in reminder_schedule("therapy", starts_at, NY, WINDOW)}

    assert specs["72h"] == starts_at.astimezone(UTC) - timedelta(hours=72) == utc(2026, 3, 7, 14)
    assert specs["72h"].astimezone(ZoneInfo(NY)).hour == 9


def test_the_72h_reminder_moved_out_of_quiet_hours_across_a_dst_change() -> None:
    # 08:30 EDT on 10 March: 72 h before is 07:30 EST on 7 March -> 20:59 EST on 6 March.
    specs = {
        s.key: s.due_at for s in reminder_schedule("therapy", ny(2026, 3, 10, 8, 30), NY, WINDOW)
    }
    assert specs["72h"] == utc(2026, 3, 7, 1, 59)


def test_the_prep_message_uses_the_patients_local_day_not_utc() -> None:
    # 09:00 AEST on 16 June is 23:00 UTC on 15 June; the evening before is 15 June in Sydney.
    tz = "Australia/Sydney"
    specs = reminder_schedule("infusion", utc(2026, 6, 15, 23), tz, WINDOW)
    prep = next(s for s in specs if s.key == "prep")
    assert prep.due_at == utc(2026, 6, 15, 8)  # 18:00 AEST on 15 June


def test_the_prep_message_the_evening_before_a_dst_change_keeps_1800_local() -> None:
    # Infusion on 8 March (EDT); the evening before is still EST.
    specs = reminder_schedule("infusion", ny(2026, 3, 8, 10, 0), NY, WINDOW)
    prep = next(s for s in specs if s.key == "prep")
    assert prep.due_at == utc(2026, 3, 7, 23)


def test_the_prep_message_moves_earlier_in_a_narrow_window() -> None:
    specs = reminder_schedule("infusion", ny(2026, 6, 16, 10, 0), NY, (time(9, 0), time(17, 0)))
    prep = next(s for s in specs if s.key == "prep")
    assert prep.due_at == ny(2026, 6, 15, 16, 59)


def test_reminders_already_in_the_past_are_kept_for_the_planner_to_judge() -> None:
    # The schedule knows no `now`: a 72 h reminder for an appointment booked tomorrow is returned.
    specs = reminder_schedule("therapy", ny(2026, 6, 16, 14, 0), NY, WINDOW)
    assert specs[0].key == "72h"


def test_every_reminder_is_strictly_before_the_appointment() -> None:
    for hour in range(24):
        starts_at = ny(2026, 6, 16, hour, 0)
        for spec in reminder_schedule("infusion", starts_at, NY, WINDOW):
            assert spec.due_at < starts_at


def test_custom_offsets_have_stable_keys() -> None:
    offsets = (timedelta(days=7), timedelta(minutes=90))
    specs = reminder_schedule("consult", ny(2026, 6, 16, 14, 0), NY, WINDOW, offsets)
    assert [(s.key, s.due_at) for s in specs] == [
        ("168h", ny(2026, 6, 9, 14, 0)),
        ("90m", ny(2026, 6, 16, 12, 30)),
    ]


@pytest.mark.parametrize(
    ("offset", "key"),
    [
        (timedelta(hours=72), "72h"),
        (timedelta(hours=2), "2h"),
        (timedelta(minutes=30), "30m"),
        (timedelta(seconds=45), "45s"),
    ],
)
def test_offset_keys(offset: timedelta, key: str) -> None:
    assert offset_key(offset) == key


def test_it_refuses_an_unknown_appointment_kind() -> None:
    with pytest.raises(ValueError, match="unknown appointment kind 'massage'"):
        reminder_schedule("massage", ny(2026, 6, 16, 14), NY, WINDOW)


def test_it_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="aware"):
        reminder_schedule("therapy", datetime(2026, 6, 16, 14), NY, WINDOW)


def test_it_refuses_an_offset_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        reminder_schedule("therapy", ny(2026, 6, 16, 14), NY, WINDOW, (timedelta(0),))
