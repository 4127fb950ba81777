"""Appointments: booking, rescheduling and cancelling, each re-planning its reminders."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.names import APPOINTMENT_KINDS
from worker.domain.schedule import local_to_utc
from worker.services.errors import InvalidInput, NotFound
from worker.services.input_limits import SHORT_MAX, check_text
from worker.services.records import audit
from worker.services.records.patients import get_patient
from worker.services.records.schedules import cancel_pending
from worker.store.models import Appointment
from worker.store.record_status import AppointmentStatus


def parse_local(text: str, tz: str) -> datetime:
    """Parse 'YYYY-MM-DDTHH:MM' as patient-local wall-clock time; returns the UTC instant.

    A time in a spring-forward gap moves to the first valid minute (as for check-ins).
    """
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise InvalidInput(
            f"the appointment time must be YYYY-MM-DDTHH:MM (patient-local), got {text!r}",
            field="at",
        ) from None
    return local_to_utc(naive, tz)


def add_appointment(
    session: Session,
    patient_id: int,
    *,
    now: datetime,
    kind: str,
    at: str,
    location: str | None = None,
    actor: str = "cli",
    starts_at: datetime | None = None,
    allow_past: bool = False,
) -> Appointment:
    """Book an appointment at `at` (patient-local text) or at the instant `starts_at`.

    `allow_past` is for feeds and imports, which also carry visits already held (a no-show
    arrives afterwards); the planner plans no reminder that fell due before the booking."""
    patient = get_patient(session, patient_id)
    if kind not in APPOINTMENT_KINDS:
        raise InvalidInput(
            f"the appointment kind must be one of {', '.join(APPOINTMENT_KINDS)}, got {kind!r}",
            field="kind",
        )
    if starts_at is None:
        starts_at = parse_local(at, patient.tz)
    if starts_at <= now and not allow_past:
        raise InvalidInput("the appointment time is in the past")
    appt = Appointment(
        patient_id=patient_id,
        kind=kind,
        starts_at=starts_at,
        location=check_text(location or "", "location", SHORT_MAX).strip() or None,
        status=AppointmentStatus.BOOKED,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(appt)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="appointment.add",
        entity="appointment",
        entity_id=appt.id,
        patient_id=patient_id,
        detail={"kind": kind, "starts_at": starts_at.isoformat()},
    )
    return appt


def get_appointment(session: Session, appointment_id: int) -> Appointment:
    appt = session.get(Appointment, appointment_id)
    if appt is None:
        raise NotFound(f"no appointment with id {appointment_id}")
    return appt


def reschedule(
    session: Session,
    appointment_id: int,
    *,
    now: datetime,
    at: str = "",
    actor: str = "cli",
    starts_at: datetime | None = None,
    allow_past: bool = False,
) -> Appointment:
    """Move an appointment: its pending reminders are cancelled and new ones planned.

    `at` is patient-local text; feeds pass the instant `starts_at` instead."""
    appt = get_appointment(session, appointment_id)
    if appt.status == AppointmentStatus.CANCELLED:
        raise InvalidInput("the appointment is cancelled")
    if starts_at is None:
        patient = get_patient(session, appt.patient_id)
        starts_at = parse_local(at, patient.tz)
    if starts_at <= now and not allow_past:
        raise InvalidInput("the new appointment time is in the past")
    old = appt.starts_at
    appt.starts_at = starts_at
    appt.version += 1
    appt.confirmed_at = None
    appt.updated_at = now
    appt.planned_until = None
    cancel_pending(session, now=now, reason="appointment_rescheduled", appointment_id=appt.id)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="appointment.reschedule",
        entity="appointment",
        entity_id=appt.id,
        patient_id=appt.patient_id,
        detail={"from": old.isoformat(), "to": starts_at.isoformat(), "version": appt.version},
    )
    return appt


def cancel(
    session: Session, appointment_id: int, *, now: datetime, actor: str = "cli"
) -> Appointment:
    appt = get_appointment(session, appointment_id)
    if appt.status == AppointmentStatus.CANCELLED:
        return appt
    appt.status = AppointmentStatus.CANCELLED
    appt.updated_at = now
    cancel_pending(session, now=now, reason="appointment_cancelled", appointment_id=appt.id)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="appointment.cancel",
        entity="appointment",
        entity_id=appt.id,
        patient_id=appt.patient_id,
    )
    return appt


def list_appointments(session: Session, patient_id: int | None = None) -> list[Appointment]:
    stmt = select(Appointment).order_by(Appointment.starts_at)
    if patient_id is not None:
        get_patient(session, patient_id)
        stmt = stmt.where(Appointment.patient_id == patient_id)
    return list(session.scalars(stmt))
