"""Quiet hours: the patient-local send window outside which non-urgent messages wait.

A window is `(start, end)` in patient-local wall-clock time, start inclusive, end exclusive, on
the same day: `(time(8), time(21))` allows 08:00 up to 20:59:59 and not 21:00. Check-ins that
fall outside move later, to the next window start; reminders move earlier, to the last allowed
minute before, so they still arrive ahead of the appointment. Exempt messages (the crisis
reply, pages, STOP/HELP confirmations) never come here: that is the caller's decision.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from worker.domain.schedule import place_local, zone

Window = tuple[time, time]

# A window start or end can fall in a DST gap on one night of the year; the search moves one
# day at a time and a whole week without an allowed minute means a window that cannot be met.
_MAX_DAYS_SEARCHED = 7


def is_allowed(at: datetime, tz: str, window: Window) -> bool:
    """True if the aware instant `at` is inside the window in zone `tz` (end exclusive)."""
    start, end = _checked(window)
    wall = _wall_time(at, zone(tz))
    return start <= wall < end


def next_allowed(at: datetime, tz: str, window: Window) -> datetime:
    """`at` (as UTC) if allowed, else the next window start in zone `tz`, as UTC.

    Used for check-ins, which move later. A window start that falls in a spring-forward gap
    moves to the first valid minute after the gap; one in a fall-back overlap is the earlier
    instant. The result is always strictly after `at` when `at` is not allowed.
    """
    start, end = _checked(window)
    tzinfo = zone(tz)
    if start <= _wall_time(at, tzinfo) < end:
        return at.astimezone(UTC)
    local = at.astimezone(tzinfo)
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    for _ in range(_MAX_DAYS_SEARCHED):
        candidate = place_local(datetime.combine(day, start), tzinfo)
        if candidate > at and start <= _wall_time(candidate, tzinfo) < end:
            return candidate
        day += timedelta(days=1)
    raise ValueError(f"no allowed minute in the send window {_show(window)} in {tz}")


def last_allowed_before(at: datetime, tz: str, window: Window) -> datetime:
    """`at` (as UTC) if allowed, else the last allowed minute before it in zone `tz`, as UTC.

    Used for reminders, which move earlier: the last allowed minute is the window end minus one
    minute (20:59 for a window ending 21:00), on the same local day if `at` is after the window
    and on the previous day if it is before. If that minute falls in a spring-forward gap the
    last valid minute before the gap is used; in a fall-back overlap, the later instant.
    The result is always strictly before `at` when `at` is not allowed.
    """
    start, end = _checked(window)
    tzinfo = zone(tz)
    if start <= _wall_time(at, tzinfo) < end:
        return at.astimezone(UTC)
    local = at.astimezone(tzinfo)
    day = local.date() if local.time() >= end else local.date() - timedelta(days=1)
    for _ in range(_MAX_DAYS_SEARCHED):
        candidate = place_local(_last_minute(day, end), tzinfo, moving_earlier=True)
        if candidate < at and start <= _wall_time(candidate, tzinfo) < end:
            return candidate
        day -= timedelta(days=1)
    raise ValueError(f"no allowed minute in the send window {_show(window)} in {tz}")


def _last_minute(day: date, end: time) -> datetime:
    return datetime.combine(day, end) - timedelta(minutes=1)


def _wall_time(at: datetime, tzinfo: ZoneInfo) -> time:
    if at.tzinfo is None:
        raise ValueError("quiet hours need an aware datetime")
    return at.astimezone(tzinfo).time()


def _checked(window: Window) -> Window:
    start, end = window
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("a send window is patient-local wall-clock time: no tzinfo")
    if not start < end:
        raise ValueError(f"send window {_show(window)} must start before it ends, on one day")
    return start, end


def _show(window: Window) -> str:
    return f"{window[0]:%H:%M}-{window[1]:%H:%M}"
