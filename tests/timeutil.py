"""Dates for tests that must stay valid whatever day the suite runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def next_transitions(tz: str, after: date | None = None) -> tuple[date, date]:
    """(spring-forward day, fall-back day): the next local days on which `tz`'s UTC offset grows
    and shrinks, after `after` (default: a week from today)."""
    zone = ZoneInfo(tz)
    day = after or (datetime.now(UTC).date() + timedelta(days=7))
    spring = fall = None
    for _ in range(800):
        a = datetime(day.year, day.month, day.day, tzinfo=zone).utcoffset()
        nxt = day + timedelta(days=1)
        b = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).utcoffset()
        assert a is not None and b is not None
        if b > a and spring is None:
            spring = day
        if b < a and fall is None:
            fall = day
        if spring and fall:
            return spring, fall
        day = nxt
    raise AssertionError(f"no DST transitions found for {tz}")


def local_iso(day: date, hh: int, mm: int, tz: str) -> str:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=ZoneInfo(tz)).isoformat()
