"""The planner: materialise the next hours of check-ins and reminders as message rows.

Idempotent by construction: every row has a UNIQUE dedupe key and is inserted with
ON CONFLICT DO NOTHING, so running it twice, or on two machines at once, adds nothing.
`planned_until` on schedules and appointments only keeps ticks cheap; correctness never rests
on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    session: Session, specs: Sequence[tuple[int | None, MessageSpec]], now: datetime
) -> int:
    """Insert a message row per (patient id, spec), skipping any whose dedupe key exists.
    Returns the rows added."""
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
        for patient_id, s in specs
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


def _plan_batches(
    rt: Runtime,
    now: datetime,
    horizon: datetime,
    model: type[Schedule] | type[Appointment],
    conditions: list[Any],
    specs_for: Callable[[Any, PatientView], list[MessageSpec]],
) -> int:
    """Walk the rows of `model` that need topping up, BATCH at a time, and insert every spec of
    a batch in one statement."""
    added = 0
    last_id = 0
    while True:
        with session_scope(rt.sessions) as session:
            batch: Sequence[Any] = session.execute(
                select(model, Patient)
                .join(Patient, Patient.id == model.patient_id)
                .where(
                    model.id > last_id,
                    Patient.archived_at.is_(None),
                    or_(
                        model.planned_until.is_(None), model.planned_until < horizon - REFILL_MARGIN
                    ),
                    *conditions,
                )
                .order_by(model.id)
                .limit(BATCH)
            ).all()
            if not batch:
                return added
            rows = [
                (patient.id, spec)
                for row, patient in batch
                for spec in specs_for(row, patient_view(patient, rt.settings.send_window))
            ]
            added += insert_specs(session, rows, now)
            _mark_planned(session, model, [(r.id, r.updated_at) for r, _ in batch], horizon)
            last_id = batch[-1][0].id


def _plan_schedules(rt: Runtime, now: datetime, horizon: datetime) -> int:
    max_late = timedelta(minutes=rt.settings.checkin_max_late_minutes)

    def specs_for(schedule: Schedule, patient: PatientView) -> list[MessageSpec]:
        return checkin_specs(
            patient,
            ScheduleView(
                schedule.id,
                schedule.instrument,
                schedule.rrule,
                schedule.start_date,
                schedule.until_date,
            ),
            after=schedule.planned_until or schedule.created_at,
            before=horizon,
            max_late=max_late,
        )

    return _plan_batches(rt, now, horizon, Schedule, [Schedule.status == "active"], specs_for)


def _plan_appointments(rt: Runtime, now: datetime, horizon: datetime) -> int:
    max_late = timedelta(minutes=rt.settings.checkin_max_late_minutes)

    def specs_for(appt: Appointment, patient: PatientView) -> list[MessageSpec]:
        # Reminders that fell due before the booking (or the last reschedule) are not sent
        # late: the patient has just heard from the clinic.
        return reminder_specs(
            patient,
            AppointmentView(appt.id, appt.kind, appt.starts_at, appt.version, appt.location),
            after=appt.planned_until or appt.updated_at,
            before=horizon,
            max_late=max_late,
        )

    conditions = [Appointment.status == "booked", Appointment.starts_at > now]
    return _plan_batches(rt, now, horizon, Appointment, conditions, specs_for)
