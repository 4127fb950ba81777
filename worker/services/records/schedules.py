"""Check-in schedules and protocol enrollments."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.domain.protocols import Protocol, expand
from worker.domain.schedule import ScheduleError, check_instrument_frequency, parse_rrule
from worker.services.errors import InvalidInput, NotFound
from worker.services.records import audit
from worker.services.records.patients import get_patient
from worker.store.models import Enrollment, Message, Schedule


def add_schedule(
    session: Session,
    patient_id: int,
    *,
    now: datetime,
    instrument: str,
    rrule: str,
    start: date | None = None,
    until: date | None = None,
    enrollment_id: int | None = None,
    actor: str = "cli",
) -> Schedule:
    """Validate and add a schedule; raises InvalidInput (nothing written) or NotFound.

    Without a start the schedule begins today in the patient's zone.
    """
    patient = get_patient(session, patient_id)
    if start is None:
        start = now.astimezone(ZoneInfo(patient.tz)).date()
    try:
        rule = parse_rrule(rrule)
        check_instrument_frequency(instrument, rule)
    except ScheduleError as exc:
        raise InvalidInput(str(exc), field="rrule") from None
    if until is not None and until < start:
        raise InvalidInput(f"the end date {until} is before the start date {start}", field="until")
    schedule = Schedule(
        patient_id=patient_id,
        enrollment_id=enrollment_id,
        instrument=instrument,
        rrule=rule,
        start_date=start,
        until_date=until,
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(schedule)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="schedule.add",
        entity="schedule",
        entity_id=schedule.id,
        patient_id=patient_id,
        detail={"instrument": instrument, "rrule": rule, "start": start.isoformat()},
    )
    return schedule


def get_schedule(session: Session, schedule_id: int) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.status == "removed":
        raise NotFound(f"no schedule with id {schedule_id}")
    return schedule


def set_schedule_status(
    session: Session, schedule_id: int, status: str, *, now: datetime, actor: str = "cli"
) -> Schedule:
    """Pause, resume or remove a schedule. Pausing or removing cancels its pending messages;
    resuming plans afresh from now (missed occurrences are not sent late)."""
    if status not in ("active", "paused", "removed"):
        raise InvalidInput(f"unknown schedule status {status!r}")
    schedule = get_schedule(session, schedule_id)
    if schedule.status == status:
        return schedule
    schedule.status = status
    schedule.updated_at = now
    if status == "active":
        schedule.planned_until = now
        # Rows the pause cancelled still hold their dedupe keys; reopen the ones still ahead.
        session.execute(
            update(Message)
            .where(
                Message.schedule_id == schedule_id,
                Message.status == "cancelled",
                Message.status_reason == "schedule_paused",
                Message.due_at >= now,
            )
            .values(status="scheduled", status_reason=None, updated_at=now)
        )
    else:
        cancel_pending(session, now=now, reason=f"schedule_{status}", schedule_id=schedule_id)
    audit.record(
        session,
        now=now,
        actor=actor,
        action=f"schedule.{ {'active': 'resume', 'paused': 'pause', 'removed': 'remove'}[status] }",
        entity="schedule",
        entity_id=schedule_id,
        patient_id=schedule.patient_id,
    )
    return schedule


def cancel_pending(
    session: Session,
    *,
    now: datetime,
    reason: str,
    schedule_id: int | None = None,
    appointment_id: int | None = None,
) -> int:
    """Cancel messages not yet handed to a worker for a schedule or an appointment.

    Rows already queued are caught by the send-time re-check.
    """
    stmt = update(Message).where(Message.status == "scheduled")
    if schedule_id is not None:
        stmt = stmt.where(Message.schedule_id == schedule_id)
    elif appointment_id is not None:
        stmt = stmt.where(Message.appointment_id == appointment_id)
    else:
        raise ValueError("cancel_pending needs a schedule or an appointment")
    result = session.execute(stmt.values(status="cancelled", status_reason=reason, updated_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def list_schedules(session: Session, patient_id: int) -> list[Schedule]:
    get_patient(session, patient_id)
    return list(
        session.scalars(
            select(Schedule)
            .where(Schedule.patient_id == patient_id, Schedule.status != "removed")
            .order_by(Schedule.id)
        )
    )


def protocol_named(protocols: Mapping[str, Protocol], name: str) -> Protocol:
    """The protocol called `name`; InvalidInput naming the known ones otherwise."""
    if name not in protocols:
        raise InvalidInput(f"unknown protocol {name!r}; known: {', '.join(sorted(protocols))}")
    return protocols[name]


def enroll(
    session: Session,
    patient_id: int,
    protocol: Protocol,
    *,
    start: date,
    now: datetime,
    actor: str = "cli",
) -> tuple[Enrollment, list[Schedule]]:
    """Enroll a patient in a protocol: one schedule per protocol step, linked to the enrollment."""
    get_patient(session, patient_id)
    enrollment = Enrollment(
        patient_id=patient_id, protocol=protocol.name, start_date=start, created_at=now
    )
    session.add(enrollment)
    session.flush()
    schedules = [
        add_schedule(
            session,
            patient_id,
            now=now,
            instrument=planned.instrument,
            rrule=planned.rrule,
            start=planned.start,
            until=planned.until,
            enrollment_id=enrollment.id,
            actor=actor,
        )
        for planned in expand(protocol, start)
    ]
    audit.record(
        session,
        now=now,
        actor=actor,
        action="enrollment.add",
        entity="enrollment",
        entity_id=enrollment.id,
        patient_id=patient_id,
        detail={"protocol": protocol.name, "start": start.isoformat()},
    )
    return enrollment, schedules
