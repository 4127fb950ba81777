"""What a patient's answer to an appointment reminder does, by whatever way it came: a text
("yes I'll be there", "can we move it": services/inbound/receive.py) or a button behind a
reminder email's link (services/inbound/appointment_links.py). One place, so that both ways
confirm an appointment, or ask the front desk for a new time, identically and with the same
audit trail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from worker.rendering import format_when
from worker.services.clinical.followups import raise_followup
from worker.services.records import audit
from worker.store.models import Appointment

RESCHEDULE_REASON = "reschedule_request"


def confirm(session: Session, appt: Appointment, *, now: datetime, via: dict[str, Any]) -> bool:
    """The patient says they will come. Returns False when it was already confirmed (nothing
    is written then: a second "yes" is not a second confirmation)."""
    if appt.confirmed_at is not None:
        return False
    appt.confirmed_at = now
    appt.updated_at = now
    audit.record(
        session,
        now=now,
        actor="patient",
        action="appointment.confirm",
        entity="appointment",
        entity_id=appt.id,
        patient_id=appt.patient_id,
        detail={"version": appt.version, **via},
    )
    return True


def ask_for_new_time(
    session: Session, appt: Appointment, *, now: datetime, via: dict[str, Any]
) -> int:
    """The patient asks to move it: the front desk's routine `reschedule_request` follow-up
    (one per patient while open; a second request adds its evidence). Returns its id."""
    item, _ = raise_followup(
        session,
        patient_id=appt.patient_id,
        reason=RESCHEDULE_REASON,
        severity="routine",
        detail={**via, "appointment_id": appt.id, "starts_at": appt.starts_at.isoformat()},
        now=now,
    )
    return item.id


def local_when(appt: Appointment, tz: str, language: str) -> str:
    """The appointment's day and time as the patient reads it ("Tue Mar 10, 2:00 PM")."""
    starts = appt.starts_at
    starts = starts if starts.tzinfo is not None else starts.replace(tzinfo=UTC)
    return format_when(starts.astimezone(ZoneInfo(tz)).replace(tzinfo=None), language)
