"""What should be sent, computed from schedules and appointments; shared by plan and preview.

Pure given its inputs: no database access and no clock, so the planner and `checkin preview`
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from worker.domain.instruments import get_instrument
from worker.domain.quiet_hours import next_allowed
from worker.domain.reminders import ReminderSpec, reminder_schedule
from worker.domain.schedule import occurrences, shared_start, zone

# Entries in each memo below. A clinic has a few hundred distinct rules and a handful of zones
# and windows, and the schedules topped up in one tick share the horizon and (see shared_after
# and shared_start) mostly their window's start and their start date, so a tick touches a few
# thousand keys; the bound keeps memory flat in a long-lived worker, where every tick has a new
# horizon.
MEMO_SIZE = 8192

SIMPLE_TEMPLATES = {
    "mood": "checkin_mood",
    "pain": "checkin_pain",
    "mood_pain": "checkin_mood_pain",
    "sleep": "checkin_sleep",
}


@dataclass(frozen=True)
class PatientView:
    id: int
    tz: str
    channel: str
    language: str
    window: tuple[time, time]


@dataclass(frozen=True)
class ScheduleView:
    id: int
    instrument: str
    rrule: str
    start: Any  # date
    until: Any  # date | None


@dataclass(frozen=True)
class AppointmentView:
    id: int
    kind: str
    starts_at: datetime
    version: int
    location: str | None


@dataclass(frozen=True)
class MessageSpec:
    dedupe_key: str
    kind: str  # checkin | reminder
    channel: str
    template: str
    language: str
    due_at: datetime
    not_after: datetime | None
    local_time: str
    instrument: str | None = None
    schedule_id: int | None = None
    appointment_id: int | None = None
    appointment_version: int | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckinSlot:
    """One firing of a rule for a zone and send window, the same for every schedule that
    shares them: `at`, the occurrence's instant; `local_key`, its intended local time (part of
    the dedupe key); `due_at`, `at` moved out of quiet hours; `local_time`, the wall-clock time
    it goes at."""

    at: datetime
    local_key: str
    due_at: datetime
    local_time: str


def checkin_template(instrument: str) -> str:
    if instrument in SIMPLE_TEMPLATES:
        return SIMPLE_TEMPLATES[instrument]
    return "checkin_item"


def checkin_key(schedule_id: int, local_key: str) -> str:
    """The dedupe key of a schedule's check-in for the intended local time `local_key`."""
    return f"c:{schedule_id}:{local_key}"


def checkin_context(instrument: str) -> dict[str, Any]:
    context: dict[str, Any] = {"instrument": instrument}
    if checkin_template(instrument) == "checkin_item":
        context["item_index"] = 0
        context["item_count"] = len(get_instrument(instrument).items)
    return context


def checkin_slots(
    rrule: str,
    tz: str,
    start: date,
    until: date | None,
    after: datetime,
    before: datetime,
    window: tuple[time, time],
) -> tuple[CheckinSlot, ...]:
    """The check-ins a schedule with this rule, start and end sends in [after, before) to a
    patient in zone `tz` with send window `window`: occurrences() moved out of quiet hours
    (later). Errors are as occurrences() raises them."""
    if after.tzinfo is None:
        raise ValueError("checkin_slots needs an aware `after`")
    since = shared_after(after)
    shared = shared_slots(rrule, tz, start, until, since, before, window)
    return tuple(slot for slot in shared if slot.at >= after)


def shared_after(after: datetime) -> datetime:
    """The start of `after`'s UTC day. The slots from it (`shared_slots`) that fire at or after
    `after` are exactly the slots from `after`: a window's occurrences are those of any larger
    window that fall in it. Schedules created or planned at different moments of a day then
    share one expansion."""
    return after.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def shared_slots(
    rrule: str,
    tz: str,
    start: date,
    until: date | None,
    after: datetime,
    before: datetime,
    window: tuple[time, time],
) -> tuple[CheckinSlot, ...]:
    """checkin_slots without the filter, memoised: expanding rules was most of the planner's
    work, and a tick's schedules share few keys when `after` is a `shared_after` and `start`
    is replaced by its `shared_start`, as here."""
    return _slots(rrule, tz, shared_start(rrule, tz, start, after), until, after, before, window)


@lru_cache(maxsize=MEMO_SIZE)
def _slots(
    rrule: str,
    tz: str,
    start: date,
    until: date | None,
    after: datetime,
    before: datetime,
    window: tuple[time, time],
) -> tuple[CheckinSlot, ...]:
    tzinfo = zone(tz)
    slots = []
    for occ in occurrences(rrule, tz, start, until, after, before):
        due = next_allowed(occ.at, tz, window)
        slots.append(
            CheckinSlot(
                at=occ.at,
                local_key=f"{occ.local:%Y%m%dT%H%M}",
                due_at=due,
                local_time=due.astimezone(tzinfo).strftime("%Y-%m-%dT%H:%M"),
            )
        )
    return tuple(slots)


@lru_cache(maxsize=MEMO_SIZE)
def reminders(
    kind: str, starts_at: datetime, tz: str, window: tuple[time, time]
) -> tuple[ReminderSpec, ...]:
    """reminder_schedule(), memoised: appointments are booked in a few slots a day, so many
    share their start, zone and window."""
    return tuple(reminder_schedule(kind, starts_at, tz, window))


def clear_memos() -> None:
    """Forget the memoised expansions (a benchmark run then starts as a fresh process does)."""
    _slots.cache_clear()
    reminders.cache_clear()


def checkin_specs(
    patient: PatientView,
    schedule: ScheduleView,
    *,
    after: datetime,
    before: datetime,
    max_late: timedelta,
) -> list[MessageSpec]:
    """Check-ins whose occurrence falls in [after, before), moved out of quiet hours (later)."""
    specs = []
    template = checkin_template(schedule.instrument)
    for slot in checkin_slots(
        schedule.rrule, patient.tz, schedule.start, schedule.until, after, before, patient.window
    ):
        specs.append(
            MessageSpec(
                dedupe_key=checkin_key(schedule.id, slot.local_key),
                kind="checkin",
                channel=patient.channel,
                template=template,
                language=patient.language,
                due_at=slot.due_at,
                not_after=slot.due_at + max_late,
                local_time=slot.local_time,
                instrument=schedule.instrument,
                schedule_id=schedule.id,
                context=checkin_context(schedule.instrument),
            )
        )
    return specs


def reminder_specs(
    patient: PatientView,
    appt: AppointmentView,
    *,
    after: datetime,
    before: datetime,
    max_late: timedelta,
) -> list[MessageSpec]:
    """Reminders due in [after, before) for one booked appointment version.

    A reminder's cut-off is the appointment itself (a reminder after its appointment never goes),
    or `max_late` after it fell due, whichever is first: after an outage, the 72-hour reminder
    does not arrive in the same minute as the 2-hour one.
    """
    tzinfo = zone(patient.tz)
    specs = []
    for r in reminders(appt.kind, appt.starts_at, patient.tz, patient.window):
        if not (after <= r.due_at < before):
            continue
        specs.append(
            MessageSpec(
                dedupe_key=f"r:{appt.id}:v{appt.version}:{r.key}",
                kind="reminder",
                channel=patient.channel,
                template=r.template,
                language=patient.language,
                due_at=r.due_at,
                not_after=min(appt.starts_at, r.due_at + max_late),
                local_time=r.due_at.astimezone(tzinfo).strftime("%Y-%m-%dT%H:%M"),
                appointment_id=appt.id,
                appointment_version=appt.version,
                context={"reminder": r.key},
            )
        )
    return specs
