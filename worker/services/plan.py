"""The planner: materialise the next hours of check-ins and reminders as message rows.

Idempotent by construction: every row has a UNIQUE dedupe key and is inserted with
ON CONFLICT DO NOTHING, so running it twice, or on two machines at once, adds nothing.
`planned_until` on schedules and appointments only keeps ticks cheap; correctness never rests
on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.config import parse_window
from worker.services.planning import (
    AppointmentView,
    MessageSpec,
    PatientView,
    ScheduleView,
    checkin_specs,
    reminder_specs,
)
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Appointment, Message, Patient, Schedule

BATCH = 1000
# A schedule is topped up once its planned horizon is this much shorter than the full horizon.
REFILL_MARGIN = timedelta(hours=1)


def patient_view(patient: Patient, default_window: str) -> PatientView:
    return PatientView(
        id=patient.id,
        tz=patient.tz,
        channel=patient.channel,
        language=patient.language,
        window=parse_window(patient.send_window or default_window),
    )


def insert_specs(
    session: Session, patient_id: int | None, specs: Sequence[MessageSpec], now: datetime
) -> int:
    """Insert message rows for specs, skipping any whose dedupe key exists. Returns rows added."""
    if not specs:
        return 0
    rows: list[dict[str, Any]] = [
        {
            "patient_id": patient_id,
            "channel": s.channel,
            "kind": s.kind,
            "template": s.template,
            "language": s.language,
            "instrument": s.instrument,
            "schedule_id": s.schedule_id,
            "appointment_id": s.appointment_id,
            "appointment_version": s.appointment_version,
            "priority": "bulk",
            "exempt_quiet_hours": False,
            "due_at": s.due_at,
            "not_after": s.not_after,
            "local_time": s.local_time,
            "dedupe_key": s.dedupe_key,
            "context": s.context,
            "status": "scheduled",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for s in specs
    ]
    stmt = _insert_ignore(session)
    result = session.execute(stmt.returning(Message.id), rows)
    return len(result.all())


def _insert_ignore(session: Session) -> Insert:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(Message).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return sqlite.insert(Message).on_conflict_do_nothing(index_elements=["dedupe_key"])


def plan(rt: Runtime, now: datetime) -> int:
    """Plan every active schedule and booked appointment up to the horizon. Returns rows added."""
    horizon = now + timedelta(hours=rt.settings.plan_horizon_hours)
    return _plan_schedules(rt, now, horizon) + _plan_appointments(rt, now, horizon)


def _mark_planned(
    session: Session,
    model: type[Schedule] | type[Appointment],
    seen: list[tuple[int, datetime]],
    horizon: datetime,
) -> None:
    # Conditional on the version we read: a reschedule or edit that commits while we plan resets
    # planned_until, and must not be overwritten, or its new reminders would never be planned.
    table = cast(Table, model.__table__)
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.updated_at == bindparam("b_upd"))
        .values(planned_until=horizon)
    )
    session.connection().execute(stmt, [{"b_id": i, "b_upd": u} for i, u in seen])


def _plan_schedules(rt: Runtime, now: datetime, horizon: datetime) -> int:
    max_late = timedelta(minutes=rt.settings.checkin_max_late_minutes)
    added = 0
    last_id = 0
    while True:
        with session_scope(rt.sessions) as session:
            batch = session.execute(
                select(Schedule, Patient)
                .join(Patient, Patient.id == Schedule.patient_id)
                .where(
                    Schedule.id > last_id,
                    Schedule.status == "active",
                    Patient.archived_at.is_(None),
                    or_(
                        Schedule.planned_until.is_(None),
                        Schedule.planned_until < horizon - REFILL_MARGIN,
                    ),
                )
                .order_by(Schedule.id)
                .limit(BATCH)
            ).all()
            if not batch:
                return added
            for schedule, patient in batch:
                after = schedule.planned_until or schedule.created_at
                specs = checkin_specs(
                    patient_view(patient, rt.settings.send_window),
                    ScheduleView(
                        schedule.id,
                        schedule.instrument,
                        schedule.rrule,
                        schedule.start_date,
                        schedule.until_date,
                    ),
                    after=after,
                    before=horizon,
                    max_late=max_late,
                )
                added += insert_specs(session, patient.id, specs, now)
            _mark_planned(session, Schedule, [(s.id, s.updated_at) for s, _ in batch], horizon)
            last_id = batch[-1][0].id


def _plan_appointments(rt: Runtime, now: datetime, horizon: datetime) -> int:
    added = 0
    last_id = 0
    while True:
        with session_scope(rt.sessions) as session:
            batch = session.execute(
                select(Appointment, Patient)
                .join(Patient, Patient.id == Appointment.patient_id)
                .where(
                    Appointment.id > last_id,
                    Appointment.status == "booked",
                    Appointment.starts_at > now,
                    Patient.archived_at.is_(None),
                    or_(
                        Appointment.planned_until.is_(None),
                        Appointment.planned_until < horizon - REFILL_MARGIN,
                    ),
                )
                .order_by(Appointment.id)
                .limit(BATCH)
            ).all()
            if not batch:
                return added
            for appt, patient in batch:
                # Reminders that fell due before the booking (or the last reschedule) are not
                # sent late: the patient has just heard from the clinic.
                after = appt.planned_until or appt.updated_at
                specs = reminder_specs(
                    patient_view(patient, rt.settings.send_window),
                    AppointmentView(
                        appt.id, appt.kind, appt.starts_at, appt.version, appt.location
                    ),
                    after=after,
                    before=horizon,
                    max_late=timedelta(minutes=rt.settings.checkin_max_late_minutes),
                )
                added += insert_specs(session, patient.id, specs, now)
            _mark_planned(session, Appointment, [(a.id, a.updated_at) for a, _ in batch], horizon)
            last_id = batch[-1][0].id
