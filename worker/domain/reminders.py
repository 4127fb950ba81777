"""Appointment reminders: which ones an appointment gets, and when each is due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from worker.domain.names import APPOINTMENT_KINDS
from worker.domain.quiet_hours import Window, last_allowed_before
from worker.domain.schedule import local_to_utc, zone

DEFAULT_OFFSETS: tuple[timedelta, ...] = (
    timedelta(hours=72),
    timedelta(hours=24),
    timedelta(hours=2),
)
# The evening before an infusion: late enough to be fresh, early enough to arrange a ride.
PREP_LOCAL_TIME = time(18, 0)
PREP_KEY = "prep"
PREP_TEMPLATE = "infusion_prep"


@dataclass(frozen=True)
class ReminderSpec:
    """One reminder: `key` is stable ("72h", "24h", "2h", "prep") and part of the dedupe key,
    `template` names the message template, `due_at` is the UTC instant after quiet hours."""

    key: str
    template: str
    due_at: datetime


def offset_key(offset: timedelta) -> str:
    """The stable key for an offset: "72h" for whole hours, "90m" for whole minutes, else "Ns"."""
    seconds = int(offset.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def reminder_schedule(
    kind: str,
    starts_at: datetime,
    tz: str,
    window: Window,
    offsets: tuple[timedelta, ...] = DEFAULT_OFFSETS,
) -> list[ReminderSpec]:
    """All reminders for an appointment of `kind` starting at the aware instant `starts_at`.

    One per offset, due `starts_at - offset` (elapsed time, so a 72 h reminder is 72 real hours
    ahead even across a DST change), with template "reminder_<kind>"; for an infusion also a
    "prep" message ("infusion_prep") at 18:00 patient-local on the local day before. Each is
    moved EARLIER into the send window with last_allowed_before (a 2 h reminder for a 09:00
    appointment goes at 20:59 the evening before). A reminder whose moved time is not strictly
    before `starts_at` is dropped; ones already in the past are kept (the planner knows `now`).
    Sorted by due_at, then key. ValueError for an unknown kind, a naive `starts_at`, or an
    offset that is not positive; ScheduleError for an unknown zone.
    """
    if kind not in APPOINTMENT_KINDS:
        raise ValueError(
            f"unknown appointment kind {kind!r} (known: {', '.join(APPOINTMENT_KINDS)})"
        )
    if starts_at.tzinfo is None:
        raise ValueError("reminder_schedule needs an aware starts_at")
    # Subtracting from a ZoneInfo-aware datetime is wall-clock arithmetic in Python (72 h before
    # 10:00 EDT would be 10:00 EST, 73 real hours); in UTC it is elapsed time.
    starts_utc = starts_at.astimezone(UTC)
    wanted: dict[str, tuple[str, datetime]] = {}
    for offset in offsets:
        if offset <= timedelta(0):
            raise ValueError(f"reminder offset {offset} must be positive")
        wanted[offset_key(offset)] = (f"reminder_{kind}", starts_utc - offset)
    if kind == "infusion":
        day_before = starts_utc.astimezone(zone(tz)).date() - timedelta(days=1)
        prep_at = local_to_utc(datetime.combine(day_before, PREP_LOCAL_TIME), tz)
        wanted[PREP_KEY] = (PREP_TEMPLATE, prep_at)

    specs: list[ReminderSpec] = []
    for key, (template, due) in wanted.items():
        moved = last_allowed_before(due, tz, window)
        if moved < starts_utc:
            specs.append(ReminderSpec(key=key, template=template, due_at=moved))
    return sorted(specs, key=lambda spec: (spec.due_at, spec.key))
