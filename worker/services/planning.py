"""What should be sent, computed from schedules and appointments; shared by plan and preview.

Pure given its inputs: no database access and no clock, so the planner and `checkin preview`
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from worker.domain.instruments import get_instrument
from worker.domain.quiet_hours import next_allowed
from worker.domain.reminders import reminder_schedule
from worker.domain.schedule import occurrences

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


def checkin_template(instrument: str) -> str:
    if instrument in SIMPLE_TEMPLATES:
        return SIMPLE_TEMPLATES[instrument]
    return "checkin_item"


def checkin_specs(
    patient: PatientView,
    schedule: ScheduleView,
    *,
    after: datetime,
    before: datetime,
    max_late: timedelta,
) -> list[MessageSpec]:
    """Check-ins whose occurrence falls in [after, before), moved out of quiet hours (later)."""
    zone = ZoneInfo(patient.tz)
    specs = []
    for occ in occurrences(
        schedule.rrule, patient.tz, schedule.start, schedule.until, after, before
    ):
        due = next_allowed(occ.at, patient.tz, patient.window)
        context: dict[str, Any] = {"instrument": schedule.instrument}
        if checkin_template(schedule.instrument) == "checkin_item":
            context["item_index"] = 0
            context["item_count"] = len(get_instrument(schedule.instrument).items)
        specs.append(
            MessageSpec(
                dedupe_key=f"c:{schedule.id}:{occ.local:%Y%m%dT%H%M}",
                kind="checkin",
                channel=patient.channel,
                template=checkin_template(schedule.instrument),
                language=patient.language,
                due_at=due,
                not_after=due + max_late,
                local_time=due.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
                instrument=schedule.instrument,
                schedule_id=schedule.id,
                context=context,
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
    zone = ZoneInfo(patient.tz)
    specs = []
    for r in reminder_schedule(appt.kind, appt.starts_at, patient.tz, patient.window):
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
                local_time=r.due_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
                appointment_id=appt.id,
                appointment_version=appt.version,
                context={"reminder": r.key},
            )
        )
    return specs
