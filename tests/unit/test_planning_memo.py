"""The planner's shared expansions give exactly what expanding each schedule on its own gives.

The planner memoises one expansion per rule, zone and window, moving a schedule's start date
(`shared_start`) and the beginning of its window (`shared_after`) so that many schedules share
it. These tests compare that against the plain per-schedule computation, over DST changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from worker.domain.planning import checkin_slots, clear_memos, reminders
from worker.domain.quiet_hours import next_allowed
from worker.domain.reminders import reminder_schedule
from worker.domain.schedule import ScheduleError, occurrences, shared_start

RULES = (
    "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
    "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",  # in the spring gap of the US zones
    "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",  # in the fall overlap
    "FREQ=DAILY;INTERVAL=3;BYHOUR=8,20;BYMINUTE=0",
    "FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0",  # the start date's weekday
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;BYHOUR=7;BYMINUTE=45",
    "FREQ=MONTHLY;BYMONTHDAY=31;BYHOUR=12;BYMINUTE=0",
    "FREQ=DAILY;COUNT=4;BYHOUR=18;BYMINUTE=0",
    "FREQ=DAILY;UNTIL=20250315;BYHOUR=21;BYMINUTE=15",
)
ZONES = ("America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata")
STARTS = (date(2023, 1, 17), date(2024, 2, 29), date(2025, 3, 1), date(2025, 3, 8))
# Around the US spring change (9 March 2025) and the UK one (30 March 2025), at odd minutes.
AFTERS = (
    *(
        datetime(2025, 3, 7, 5, 13, tzinfo=UTC) + timedelta(hours=7 * i, minutes=11 * i)
        for i in range(6)
    ),
    datetime(2025, 3, 29, 23, 59, 59, tzinfo=UTC),
)
WINDOW = (time(8, 0), time(21, 0))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("tz", ZONES)
def test_the_shared_start_gives_the_same_occurrences(rule: str, tz: str) -> None:
    for start in STARTS:
        for after in AFTERS:
            before = after + timedelta(hours=48)
            for until in (None, date(2025, 3, 9)):
                moved = shared_start(rule, tz, start, after)
                assert moved >= start
                assert occurrences(rule, tz, moved, until, after, before) == occurrences(
                    rule, tz, start, until, after, before
                ), (start, after, until)


def test_schedules_started_on_different_days_share_their_start() -> None:
    after = datetime(2025, 3, 7, 12, tzinfo=UTC)
    daily = "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"
    starts = {
        shared_start(daily, "Europe/London", date(2024, 1, 1) + timedelta(days=d), after)
        for d in range(300)
    }
    assert len(starts) == 1
    weekly = "FREQ=WEEKLY;BYHOUR=9;BYMINUTE=0"
    starts = {
        shared_start(weekly, "Europe/London", date(2024, 1, 1) + timedelta(days=d), after)
        for d in range(300)
    }
    assert len(starts) == 7, "one per weekday: it keeps the rule's phase"


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("tz", ZONES)
def test_memoised_slots_are_the_schedules_own_occurrences_out_of_quiet_hours(
    rule: str, tz: str
) -> None:
    clear_memos()
    for start in STARTS:
        for after in AFTERS:
            before = after + timedelta(hours=30)
            expected = [
                (o.at, f"{o.local:%Y%m%dT%H%M}", next_allowed(o.at, tz, WINDOW))
                for o in occurrences(rule, tz, start, None, after, before)
            ]
            got = [
                (s.at, s.local_key, s.due_at)
                for s in checkin_slots(rule, tz, start, None, after, before, WINDOW)
            ]
            assert got == expected, (start, after)


def test_memoised_slots_keep_the_errors_of_occurrences() -> None:
    after = datetime(2025, 3, 7, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        checkin_slots(RULES[0], "UTC", STARTS[0], None, after.replace(tzinfo=None), after, WINDOW)
    with pytest.raises(ScheduleError, match="time zone"):
        checkin_slots(RULES[0], "Mars/Base", STARTS[0], None, after, after, WINDOW)
    with pytest.raises(ScheduleError):
        checkin_slots("FREQ=HOURLY;BYHOUR=1", "UTC", STARTS[0], None, after, after, WINDOW)


def test_memoised_reminders_are_the_reminder_schedule() -> None:
    clear_memos()
    starts_at = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    for kind in ("infusion", "therapy"):
        for tz in ZONES:
            assert list(reminders(kind, starts_at, tz, WINDOW)) == reminder_schedule(
                kind, starts_at, tz, WINDOW
            )
