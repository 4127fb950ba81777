"""After the visit: marking an appointment attended or a no-show (docs/after-visit.md).

Both are idempotent: marking again what is already so changes nothing and says so. A no-show
cancels what was still pending for the visit (reminders, its day-after check-in), opens a
`no_show` follow-up for the front desk (the reason the HL7 S26 feed uses too) and, with
CHECKIN_NOSHOW_TEXT=1, queues "we missed you, reply R to rebook" (an "R" reply then opens a
front-desk `reschedule_request`). Attended keeps the visit's day-after check-in, which the planner
writes if it has not already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.services.clinical.followups import raise_followup
from worker.services.errors import InvalidInput
from worker.services.records import audit
from worker.services.records.appointments import get_appointment
from worker.services.records.schedules import cancel_pending
from worker.store.models import Appointment, Message, Patient
from worker.store.outbox import WENT_OUT, MessageStatus
from worker.store.record_status import AppointmentStatus

NOSHOW_TEMPLATE = "noshow"
# How long after the "we missed you" text an "R" still means "rebook that visit".
NOSHOW_REPLY_DAYS = 4


@dataclass(frozen=True)
class Marked:
    appointment: Appointment
    changed: bool
    text_id: int | None = None


def mark_no_show(
    session: Session,
    appointment_id: int,
    *,
    now: datetime,
    actor: str,
    source: str,
    text: bool = False,
    before_start: bool = False,
) -> Marked:
    """Record a no-show. Raises NotFound; InvalidInput for a cancelled or attended visit, or one
    still ahead unless `before_start` (the EHR's feed: its word, its clock) (nothing is written
    then)."""
    appt = get_appointment(session, appointment_id)
    if appt.status == AppointmentStatus.NO_SHOW:
        return Marked(appt, False)
    if appt.status == AppointmentStatus.CANCELLED:
        raise InvalidInput(f"appointment {appt.id} is cancelled; no-show not recorded")
    if appt.status == AppointmentStatus.ATTENDED:
        raise InvalidInput(f"appointment {appt.id} is marked attended; no-show not recorded")
    if appt.starts_at > now and not before_start:
        raise InvalidInput(f"appointment {appt.id} has not started yet; no-show not recorded")
    appt.status = AppointmentStatus.NO_SHOW
    appt.updated_at = now
    cancel_pending(session, now=now, reason="appointment_no_show", appointment_id=appt.id)
    raise_followup(
        session,
        patient_id=appt.patient_id,
        reason="no_show",
        severity="routine",
        detail={
            "appointment_id": appt.id,
            "starts_at": appt.starts_at.isoformat(),
            "source": source,
        },
        now=now,
    )
    audit.record(
        session,
        now=now,
        actor=actor,
        action="appointment.no_show",
        entity="appointment",
        entity_id=appt.id,
        patient_id=appt.patient_id,
        detail={"source": source},
    )
    text_id = _queue_noshow_text(session, appt, now) if text else None
    return Marked(appt, True, text_id)


def mark_attended(session: Session, appointment_id: int, *, now: datetime, actor: str) -> Marked:
    """Record that the patient came. Raises NotFound; InvalidInput for a cancelled or no-show
    visit or one still ahead. The day-after check-in is planned by the next tick."""
    appt = get_appointment(session, appointment_id)
    if appt.status == AppointmentStatus.ATTENDED:
        return Marked(appt, False)
    if appt.status in (AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW):
        raise InvalidInput(f"appointment {appt.id} is {appt.status.replace('_', '-')}")
    if appt.starts_at > now:
        raise InvalidInput(f"appointment {appt.id} has not started yet")
    appt.status = AppointmentStatus.ATTENDED
    appt.updated_at = now
    audit.record(
        session,
        now=now,
        actor=actor,
        action="appointment.attended",
        entity="appointment",
        entity_id=appt.id,
        patient_id=appt.patient_id,
    )
    return Marked(appt, True)


def _queue_noshow_text(session: Session, appt: Appointment, now: datetime) -> int | None:
    patient = session.get(Patient, appt.patient_id)
    if patient is None or not patient.phone:
        return None
    key = f"noshow:{appt.id}"
    if session.scalar(select(Message.id).where(Message.dedupe_key == key)) is not None:
        return None
    # Not tied to the appointment row: that is no longer `booked`, and the send-time check
    # would cancel it. Consent and quiet hours are checked when it is sent.
    msg = Message(
        patient_id=patient.id,
        channel="sms",
        kind="noshow",
        template=NOSHOW_TEMPLATE,
        language=patient.language,
        priority="bulk",
        exempt_quiet_hours=False,
        due_at=now,
        dedupe_key=key,
        context={"appointment_id": appt.id},
        status=MessageStatus.SCHEDULED,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(msg)
    session.flush()
    return msg.id


def missed_visit_texted(session: Session, patient_id: int, now: datetime) -> int | None:
    """The appointment whose "we missed you" text went to this patient in the last few days."""
    row = session.scalar(
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.template == NOSHOW_TEMPLATE,
            Message.status.in_(WENT_OUT),
            Message.sent_at >= now - timedelta(days=NOSHOW_REPLY_DAYS),
        )
        .order_by(Message.sent_at.desc())
        .limit(1)
    )
    if row is None:
        return None
    value = (row.context or {}).get("appointment_id")
    return int(value) if value is not None else None
