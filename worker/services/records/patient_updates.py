"""Editing a patient's details, validated exactly as `add_patient` validates them.

A changed phone number or email address withdraws consent on that channel: consent was given for
the old number or address (TCPA consent belongs to a number), so staff record it again for the
new one. A changed time zone, preferred channel, language or send window re-plans the messages
not yet handed to a worker: their rows are removed and the planner writes them again from now
under the new details (rows already queued or sent are left alone).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlalchemy.orm import Session

from worker.services.records import audit
from worker.services.records.patient_details import check_details
from worker.services.records.patients import (
    check_questionnaire_mode,
    get_patient,
    has_consent,
    withdraw_consent,
)
from worker.store.models import Appointment, Message, Patient, Schedule
from worker.store.outbox import MessageStatus
from worker.store.record_status import AppointmentStatus


def update_patient(
    session: Session,
    patient_id: int,
    *,
    now: datetime,
    actor: str,
    name: str,
    tz: str,
    channel: str,
    phone: str | None,
    email: str | None,
    send_window: str | None,
    language: str,
    questionnaire_mode: str | None = None,
) -> tuple[Patient, list[str]]:
    """Apply the new details; returns (patient, names of the fields that changed). Raises
    InvalidInput (nothing written) with the same messages as `add_patient`, or NotFound."""
    patient = get_patient(session, patient_id)
    d = check_details(
        name=name,
        tz=tz,
        channel=channel,
        phone=phone,
        email=email,
        send_window=send_window,
        language=language,
    )
    if questionnaire_mode is not None:
        check_questionnaire_mode(questionnaire_mode)
    new: dict[str, Any] = {
        "name": d.name,
        "tz": d.tz,
        "channel": d.channel,
        "phone": d.phone,
        "email": d.email,
        "send_window": d.send_window,
        "language": d.language,
        # Read when each message is rendered: a change needs no re-planning.
        "questionnaire_mode": questionnaire_mode or patient.questionnaire_mode,
    }
    changed = [k for k, v in new.items() if getattr(patient, k) != v]
    if not changed:
        return patient, []
    for channel_name, field in (("sms", "phone"), ("email", "email")):
        if field in changed and has_consent(session, patient_id, channel_name):
            withdraw_consent(
                session,
                patient_id,
                channel_name,
                now=now,
                source=f"{field} changed by {actor}",
                actor=actor,
            )
    for k, v in new.items():
        setattr(patient, k, v)
    if {"tz", "channel", "language", "send_window"} & set(changed):
        _replan(session, patient_id, now)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="patient.update",
        entity="patient",
        entity_id=patient_id,
        patient_id=patient_id,
        # Which fields, not their values: the audit trail should not copy contact details.
        detail={"changed": changed},
    )
    session.flush()
    return patient, changed


def _replan(session: Session, patient_id: int, now: datetime) -> None:
    session.execute(
        delete(Message).where(
            Message.patient_id == patient_id,
            Message.status == MessageStatus.SCHEDULED,
            or_(Message.schedule_id.is_not(None), Message.appointment_id.is_not(None)),
        )
    )
    # updated_at changes too, so that a planner running right now does not mark these planned.
    session.execute(
        update(Schedule)
        .where(Schedule.patient_id == patient_id, Schedule.status == "active")
        .values(planned_until=now, updated_at=now)
    )
    session.execute(
        update(Appointment)
        .where(Appointment.patient_id == patient_id, Appointment.status == AppointmentStatus.BOOKED)
        .values(planned_until=now, updated_at=now)
    )
