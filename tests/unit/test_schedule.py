"""Recurrence rules: validation, the two-week limit, and DST-correct expansion."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.domain.schedule import (
    Occurrence,
    ScheduleError,
    check_instrument_frequency,
    local_times,
    local_to_utc,
    occurrences,
    parse_rrule,
    validate_zone,
)

DAILY_9 = "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local_day(tz: str, day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, as UTC."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time.min, zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, zone).astimezone(UTC)
    return start, end


# --- validate_zone


@pytest.mark.parametrize(
    "name", ["America/New_York", "Europe/London", "Asia/Kolkata", "UTC", "Australia/Sydney"]
)
def test_it_accepts_iana_zone_names(name: str) -> None:
    assert validate_zone(name) == name


@pytest.mark.parametrize(
    "name", ["Mars/Olympus_Mons", "", "EST+5", "localtime", "../etc/passwd", "America", "/etc/UTC"]
)
def test_it_refuses_names_that_are_not_iana_zones(name: str) -> None:
    with pytest.raises(ScheduleError, match="unknown time zone"):
        validate_zone(name)


# --- parse_rrule


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"),
        ("RRULE:FREQ=DAILY;BYHOUR=9", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"),
        (
            "rrule:freq=weekly;byday=we,mo;byhour=19,9,9",
            "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9,19;BYMINUTE=0",
        ),
        ("FREQ=DAILY;INTERVAL=1;BYHOUR=9;BYSECOND=0;", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"),
        ("FREQ=WEEKLY;INTERVAL=2;BYHOUR=16", "FREQ=WEEKLY;INTERVAL=2;BYHOUR=16;BYMINUTE=0"),
        ("FREQ=DAILY;COUNT=1;BYHOUR=10", "FREQ=DAILY;COUNT=1;BYHOUR=10;BYMINUTE=0"),
        (
            "FREQ=DAILY;UNTIL=20260601;BYHOUR=9",
            "FREQ=DAILY;UNTIL=20260601T235959;BYHOUR=9;BYMINUTE=0",
        ),
        (
            "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=30",
            "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=30",
        ),
        ("FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=9", "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=9;BYMINUTE=0"),
    ],
)
def test_it_normalises_valid_rules(text: str, normal: str) -> None:
    assert parse_rrule(text) == normal


def test_a_normalised_rule_parses_to_itself() -> None:
    normal = parse_rrule("freq=weekly;byday=fr,mo;byhour=18,8;until=20261231")
    assert parse_rrule(normal) == normal


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage", "malformed RRULE part 'garbage'"),
        ("", "empty"),
        ("RRULE:", "empty"),
        ("FREQ=HOURLY;BYHOUR=9", "FREQ=HOURLY is too frequent"),
        ("FREQ=MINUTELY;BYHOUR=9", "too frequent"),
        ("FREQ=YEARLY;BYHOUR=9", "FREQ=YEARLY is not supported"),
        ("FREQ=FORTNIGHTLY;BYHOUR=9", "not supported"),
        ("BYHOUR=9", "needs FREQ"),
        ("FREQ=DAILY", "needs BYHOUR"),
        ("FREQ=DAILY;BYMINUTE=30", "needs BYHOUR"),
        ("DTSTART:20260101T090000\nRRULE:FREQ=DAILY;BYHOUR=9", "DTSTART is not allowed"),
        ("FREQ=DAILY;DTSTART=20260101T090000;BYHOUR=9", "DTSTART is not allowed"),
        ("FREQ=DAILY;BYHOUR=25", "BYHOUR=25 is out of range"),
        ("FREQ=DAILY;BYHOUR=-1", "BYHOUR=-1 is out of range"),
        ("FREQ=DAILY;BYHOUR=nine", "BYHOUR=NINE must be a number"),
        ("FREQ=DAILY;BYHOUR=9;BYMINUTE=60", "BYMINUTE=60 is out of range"),
        ("FREQ=DAILY;BYHOUR=9;BYSECOND=30", "BYSECOND is not supported"),
        ("FREQ=DAILY;BYHOUR=9;FREQ=WEEKLY", "FREQ is given twice"),
        ("FREQ=DAILY;BYHOUR=9;COLOR=RED", "unsupported RRULE part 'COLOR'"),
        ("FREQ=DAILY;BYHOUR=9;BYYEARDAY=1", "unsupported RRULE part 'BYYEARDAY'"),
        ("FREQ=DAILY;BYHOUR=9;COUNT=0", "COUNT=0 must be a whole number"),
        ("FREQ=DAILY;BYHOUR=9;INTERVAL=x", "INTERVAL=X must be a whole number"),
        ("FREQ=DAILY;BYHOUR=9;COUNT=3;UNTIL=20260101", "COUNT or UNTIL, not both"),
        ("FREQ=DAILY;BYHOUR=9;UNTIL=20260101T000000Z", "not UTC"),
        ("FREQ=DAILY;BYHOUR=9;UNTIL=2026-01-01", "must be YYYYMMDD"),
        ("FREQ=DAILY;BYHOUR=9;UNTIL=20260231", "not a real date"),
        ("FREQ=WEEKLY;BYDAY=XX;BYHOUR=9", "must list weekdays"),
        ("FREQ=WEEKLY;BYDAY=1MO;BYHOUR=9", "numbered weekday needs FREQ=MONTHLY"),
        ("FREQ=WEEKLY;BYMONTHDAY=1;BYHOUR=9", "BYMONTHDAY cannot be used with FREQ=WEEKLY"),
        ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30;BYHOUR=9", "never fires"),
        ("FREQ=DAILY;BYHOUR=9;WKST=XY", "not a weekday"),
    ],
)
def test_it_refuses_malformed_rules_with_a_message(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(")) as caught:
        parse_rrule(text)
    assert "\n" not in str(caught.value)


# --- check_instrument_frequency


@pytest.mark.parametrize(
    ("instrument", "rule"),
    [
        ("phq9", "FREQ=WEEKLY;BYHOUR=10"),
        ("phq9", "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10"),
        ("gad7", "FREQ=WEEKLY;INTERVAL=2;BYHOUR=10"),
        ("phq9", "FREQ=DAILY;COUNT=1;BYHOUR=10"),
        ("phq9", "FREQ=DAILY;INTERVAL=7;BYHOUR=10"),
        ("phq9", "FREQ=DAILY;COUNT=1;BYHOUR=10,14"),
        ("gad2", "FREQ=MONTHLY;BYMONTHDAY=1,15;BYHOUR=9"),
        ("phq2", "FREQ=MONTHLY;BYHOUR=9"),
        ("mood", "FREQ=DAILY;BYHOUR=9,19"),
        ("pain", "FREQ=DAILY;BYHOUR=9"),
        ("mood_pain", "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=19"),
        ("peg", "FREQ=DAILY;BYHOUR=9"),
    ],
)
def test_it_accepts_rules_within_the_instruments_limit(instrument: str, rule: str) -> None:
    check_instrument_frequency(instrument, rule)


@pytest.mark.parametrize(
    ("instrument", "rule", "message"),
    [
        ("phq9", "FREQ=DAILY;BYHOUR=10", "at most weekly; this rule can send it 1 day"),
        ("gad7", "FREQ=DAILY;INTERVAL=6;BYHOUR=10", "6 day"),
        ("phq9", "FREQ=WEEKLY;BYHOUR=10,18", "twice on one day"),
        ("phq9", "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=10", "3 day"),
        ("gad7", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;BYHOUR=10", "6 day"),
        ("phq2", "FREQ=MONTHLY;BYMONTHDAY=1,-1;BYHOUR=10", "1 day"),
        ("phq9", "FREQ=DAILY;COUNT=2;BYHOUR=10", "1 day"),
    ],
)
def test_it_refuses_two_week_questionnaires_more_often_than_weekly(
    instrument: str, rule: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=message):
        check_instrument_frequency(instrument, rule)


def test_it_refuses_an_unknown_instrument() -> None:
    with pytest.raises(ScheduleError, match="unknown instrument 'phq10'"):
        check_instrument_frequency("phq10", "FREQ=WEEKLY;BYHOUR=10")


def test_frequency_check_validates_the_rule_too() -> None:
    with pytest.raises(ScheduleError, match="needs BYHOUR"):
        check_instrument_frequency("mood", "FREQ=DAILY")


# --- occurrences: DST

# (zone, a day with the change, expected UTC instants of 09:00 local on the day before and the day)
DST_CHANGES = [
    ("America/New_York", date(2026, 3, 8), utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)),
    ("America/New_York", date(2026, 11, 1), utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)),
    ("Europe/London", date(2026, 3, 29), utc(2026, 3, 28, 9), utc(2026, 3, 29, 8)),
    ("Europe/London", date(2026, 10, 25), utc(2026, 10, 24, 8), utc(2026, 10, 25, 9)),
    ("Australia/Sydney", date(2026, 4, 5), utc(2026, 4, 3, 22), utc(2026, 4, 4, 23)),
    ("Australia/Sydney", date(2026, 10, 4), utc(2026, 10, 2, 23), utc(2026, 10, 3, 22)),
]


@pytest.mark.parametrize(("tz", "change_day", "before_utc", "on_utc"), DST_CHANGES)
def test_a_0900_check_in_stays_at_0900_local_across_dst_changes(
    tz: str, change_day: date, before_utc: datetime, on_utc: datetime
) -> None:
    first, _ = local_day(tz, change_day - timedelta(days=3))
    _, last = local_day(tz, change_day + timedelta(days=3))

    found = occurrences(DAILY_9, tz, date(2026, 1, 1), None, first, last)

    assert len(found) == 7
    for occurrence in found:
        assert occurrence.local.time() == time(9, 0)
        assert occurrence.at.tzinfo is UTC
        assert occurrence.at.astimezone(ZoneInfo(tz)).replace(tzinfo=None) == occurrence.local
    by_day = {occurrence.local.date(): occurrence.at for occurrence in found}
    assert by_day[change_day - timedelta(days=1)] == before_utc
    assert by_day[change_day] == on_utc


def test_a_time_in_the_spring_gap_moves_to_the_first_valid_minute_once() -> None:
    tz = "America/New_York"
    day = date(2026, 3, 8)

    found = occurrences(
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", tz, date(2026, 3, 1), None, *local_day(tz, day)
    )

    assert found == [Occurrence(local=datetime(2026, 3, 8, 2, 30), at=utc(2026, 3, 8, 7, 0))]
    assert found[0].at.astimezone(ZoneInfo(tz)).strftime("%H:%M %Z") == "03:00 EDT"


def test_the_days_around_the_spring_gap_keep_0230() -> None:
    tz = "America/New_York"
    found = occurrences(
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        tz,
        date(2026, 3, 1),
        None,
        local_day(tz, date(2026, 3, 7))[0],
        local_day(tz, date(2026, 3, 9))[1],
    )
    assert [o.at for o in found] == [
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 9, 6, 30),
    ]


def test_a_time_in_the_fall_back_overlap_is_sent_once_at_the_first_instant() -> None:
    tz = "America/New_York"

    found = occurrences(
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        tz,
        date(2026, 10, 1),
        None,
        *local_day(tz, date(2026, 11, 1)),
    )

    assert found == [Occurrence(local=datetime(2026, 11, 1, 1, 30), at=utc(2026, 11, 1, 5, 30))]
    assert found[0].at.astimezone(ZoneInfo(tz)).strftime("%H:%M %Z") == "01:30 EDT"


def test_the_overlap_occurrence_is_not_repeated_in_a_window_holding_only_the_second_pass() -> None:
    # 06:00-07:00 UTC is 01:00-02:00 EST, the second pass through 01:xx.
    found = occurrences(
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        "America/New_York",
        date(2026, 10, 1),
        None,
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 7),
    )
    assert found == []


@pytest.mark.parametrize(
    "rule", ["FREQ=DAILY;BYHOUR=2;BYMINUTE=0,30", "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=0"]
)
def test_rule_times_that_land_on_one_instant_after_the_gap_come_once(rule: str) -> None:
    tz = "America/New_York"

    found = occurrences(rule, tz, date(2026, 3, 1), None, *local_day(tz, date(2026, 3, 8)))

    assert [o.at for o in found].count(utc(2026, 3, 8, 7)) == 1
    assert found[0] == Occurrence(local=datetime(2026, 3, 8, 2, 0), at=utc(2026, 3, 8, 7))


def test_a_local_time_on_a_skipped_day_moves_to_the_next_valid_minute() -> None:
    # Samoa skipped 30 December 2011 entirely.
    found = occurrences(
        "FREQ=DAILY;BYHOUR=9",
        "Pacific/Apia",
        date(2011, 12, 30),
        date(2011, 12, 30),
        utc(2011, 12, 1),
        utc(2012, 1, 2),
    )
    assert len(found) == 1
    assert found[0].local == datetime(2011, 12, 30, 9)
    assert found[0].at.astimezone(ZoneInfo("Pacific/Apia")) == datetime(
        2011, 12, 31, 0, 0, tzinfo=ZoneInfo("Pacific/Apia")
    )


# --- occurrences: zones, bounds, anchoring


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Asia/Kolkata", utc(2026, 6, 10, 3, 30)),
        ("Asia/Kathmandu", utc(2026, 6, 10, 3, 15)),
        ("Australia/Adelaide", utc(2026, 6, 9, 23, 30)),
        ("America/St_Johns", utc(2026, 6, 10, 11, 30)),
        ("UTC", utc(2026, 6, 10, 9)),
    ],
)
def test_fractional_hour_zones_place_0900_correctly(tz: str, expected: datetime) -> None:
    found = occurrences(DAILY_9, tz, date(2026, 6, 1), None, *local_day(tz, date(2026, 6, 10)))
    assert [o.at for o in found] == [expected]


def test_adelaide_half_hour_zone_keeps_0900_across_its_dst_end() -> None:
    tz = "Australia/Adelaide"
    found = occurrences(
        DAILY_9,
        tz,
        date(2026, 4, 1),
        None,
        local_day(tz, date(2026, 4, 4))[0],
        local_day(tz, date(2026, 4, 5))[1],
    )
    assert [o.at for o in found] == [utc(2026, 4, 3, 22, 30), utc(2026, 4, 4, 23, 30)]


def test_after_is_inclusive_and_before_is_exclusive() -> None:
    nine_utc = [utc(2026, 6, d, 9) for d in (10, 11, 12)]

    found = occurrences(DAILY_9, "UTC", date(2026, 6, 1), None, nine_utc[0], nine_utc[2])

    assert [o.at for o in found] == nine_utc[:2]


def test_an_empty_or_reversed_range_gives_nothing() -> None:
    at = utc(2026, 6, 10, 9)
    assert occurrences(DAILY_9, "UTC", date(2026, 6, 1), None, at, at) == []
    assert occurrences(DAILY_9, "UTC", date(2026, 6, 1), None, at, at - timedelta(days=1)) == []


def test_until_includes_its_whole_local_day() -> None:
    tz = "America/Los_Angeles"
    found = occurrences(
        "FREQ=DAILY;BYHOUR=9,20",
        tz,
        date(2026, 6, 1),
        date(2026, 6, 3),
        utc(2026, 5, 1),
        utc(2026, 7, 1),
    )
    assert [o.local for o in found] == [datetime(2026, 6, d, h) for d in (1, 2, 3) for h in (9, 20)]
    # 20:00 PDT on the until day is 03:00 UTC the next day, still included.
    assert found[-1].at == utc(2026, 6, 4, 3)


def test_an_until_before_the_start_gives_nothing() -> None:
    assert (
        occurrences(
            DAILY_9, "UTC", date(2026, 6, 5), date(2026, 6, 4), utc(2026, 1, 1), utc(2027, 1, 1)
        )
        == []
    )


def test_the_rules_own_until_date_includes_that_day() -> None:
    found = occurrences(
        "FREQ=DAILY;UNTIL=20260603;BYHOUR=20",
        "UTC",
        date(2026, 6, 1),
        None,
        utc(2026, 1, 1),
        utc(2027, 1, 1),
    )
    assert [o.local.day for o in found] == [1, 2, 3]


def test_nothing_fires_before_the_local_start_date() -> None:
    tz = "Asia/Tokyo"
    found = occurrences(DAILY_9, tz, date(2026, 6, 10), None, utc(2026, 6, 1), utc(2026, 6, 12))
    assert [o.local for o in found] == [datetime(2026, 6, 10, 9), datetime(2026, 6, 11, 9)]
    assert found[0].at == utc(2026, 6, 10, 0)


def test_a_weekly_rule_without_byday_fires_on_the_start_dates_weekday() -> None:
    start = date(2026, 6, 10)  # a Wednesday
    found = occurrences(
        "FREQ=WEEKLY;BYHOUR=10", "Europe/Paris", start, None, utc(2026, 6, 1), utc(2026, 7, 2)
    )
    assert [o.local.date() for o in found] == [date(2026, 6, d) for d in (10, 17, 24)] + [
        date(2026, 7, 1)
    ]
    assert {o.local.weekday() for o in found} == {2}


def test_a_count_rule_fires_that_many_times_from_the_start_whatever_the_window() -> None:
    rule = "FREQ=DAILY;COUNT=1;BYHOUR=10"
    start = date(2026, 6, 10)
    assert len(occurrences(rule, "UTC", start, None, utc(2026, 1, 1), utc(2027, 1, 1))) == 1
    assert occurrences(rule, "UTC", start, None, utc(2026, 6, 11), utc(2027, 1, 1)) == []


def test_a_window_long_after_the_start_only_holds_its_own_occurrences() -> None:
    found = occurrences(
        "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=19",
        "America/Chicago",
        date(2024, 1, 1),
        None,
        *local_day("America/Chicago", date(2026, 6, 10)),
    )
    assert found == [Occurrence(local=datetime(2026, 6, 10, 19), at=utc(2026, 6, 11, 0))]


def test_occurrences_are_sorted_by_instant() -> None:
    found = occurrences(
        "FREQ=DAILY;BYHOUR=20,8",
        "America/New_York",
        date(2026, 6, 1),
        None,
        utc(2026, 6, 1),
        utc(2026, 6, 8),
    )
    assert [o.at for o in found] == sorted(o.at for o in found)
    # 20:00 EDT on 7 June is midnight UTC on 8 June: outside [after, before).
    assert len(found) == 13
    assert found[-1].local == datetime(2026, 6, 7, 8)


def test_occurrences_refuse_naive_bounds() -> None:
    with pytest.raises(ValueError, match="aware"):
        occurrences(DAILY_9, "UTC", date(2026, 6, 1), None, datetime(2026, 6, 1), utc(2026, 6, 2))


def test_occurrences_refuse_an_unknown_zone() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Nowhere/City'"):
        occurrences(
            DAILY_9, "Nowhere/City", date(2026, 6, 1), None, utc(2026, 6, 1), utc(2026, 6, 2)
        )


# --- local_to_utc


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (datetime(2026, 3, 8, 1, 59), utc(2026, 3, 8, 6, 59)),
        (datetime(2026, 3, 8, 2, 0), utc(2026, 3, 8, 7, 0)),
        (datetime(2026, 3, 8, 2, 59), utc(2026, 3, 8, 7, 0)),
        (datetime(2026, 3, 8, 3, 0), utc(2026, 3, 8, 7, 0)),
        (datetime(2026, 11, 1, 1, 0), utc(2026, 11, 1, 5, 0)),
        (datetime(2026, 11, 1, 2, 0), utc(2026, 11, 1, 7, 0)),
    ],
)
def test_local_to_utc_follows_the_dst_rules(local: datetime, expected: datetime) -> None:
    assert local_to_utc(local, "America/New_York") == expected


def test_local_to_utc_handles_a_half_hour_dst_shift() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30 on 2026-10-04.
    assert local_to_utc(datetime(2026, 10, 4, 2, 10), "Australia/Lord_Howe") == local_to_utc(
        datetime(2026, 10, 4, 2, 30), "Australia/Lord_Howe"
    )


# --- expansion far from the start


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=3;BYHOUR=9",
        "FREQ=DAILY;BYDAY=TU,SA;BYHOUR=9,18",
        "FREQ=WEEKLY;BYHOUR=10",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU;BYHOUR=10",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,WE,FR;BYSETPOS=-1;BYHOUR=10",
        "FREQ=MONTHLY;BYHOUR=10",
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;BYHOUR=10",
        "FREQ=DAILY;UNTIL=20270301;BYHOUR=10",
        "FREQ=DAILY;COUNT=500;BYHOUR=10",
    ],
)
@pytest.mark.parametrize("start", [date(2025, 1, 31), date(2025, 3, 5)])
def test_a_window_years_after_the_start_matches_the_full_expansion(rule: str, start: date) -> None:
    every = local_times(rule, start, None, date(2027, 12, 31))
    for first in (date(2025, 3, 6), date(2026, 2, 27), date(2027, 2, 10), date(2027, 7, 1)):
        after = datetime.combine(first, time.min, UTC)
        before = after + timedelta(days=23)
        expected = [t for t in every if after <= t.replace(tzinfo=UTC) < before]
        found = occurrences(rule, "UTC", start, None, after, before)
        assert [o.local for o in found] == expected, (rule, start, first)


def test_bounds_given_in_the_patients_zone_compare_as_instants() -> None:
    # Across fall-back, a ZoneInfo-aware bound must not be compared by wall clock.
    zone = ZoneInfo("America/New_York")
    after = datetime(2026, 11, 1, 1, 0, tzinfo=zone, fold=1)  # 01:00 EST, 06:00 UTC
    found = occurrences(
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        "America/New_York",
        date(2026, 10, 1),
        None,
        after,
        after + timedelta(hours=1),
    )
    assert found == []
