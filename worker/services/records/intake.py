"""Patients and appointments arriving from the clinic's own systems (HL7 feed, FHIR, CSV).

The identity rules are the same for every source: a patient is found by one of its external
ids (an MRN with its assigning authority), an appointment by one of its ids (placer/filler,
a CSV or FHIR identifier). A new patient is created with **no consent**: nothing is sent to it
until consent is recorded. A known patient's details change only when the caller allows it
(CHECKIN_HL7_UPDATE_CONTACTS for the feed). Booking, moving and cancelling go through
worker/services/records/appointments.py, so reminders are re-planned exactly as for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.contact import ContactError, normalize_email, normalize_phone
from worker.domain.names import APPOINTMENT_KINDS, LANGUAGES
from worker.domain.schedule import ScheduleError, validate_zone
from worker.services.errors import InvalidInput
from worker.services.records import appointments as appts
from worker.services.records import audit, external_ids
from worker.store.models import Appointment, Patient
from worker.store.record_status import AppointmentStatus

Outcome = Literal["created", "updated", "unchanged", "rescheduled", "cancelled"]


@dataclass(frozen=True)
class PatientIn:
    name: str
    tz: str
    phone: str | None = None
    email: str | None = None
    language: str = "en"
    birth_date: date | None = None
    ids: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AppointmentIn:
    kind: str
    starts_at: datetime
    location: str | None = None
    ids: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def clean_patient(p: PatientIn) -> PatientIn:
    """The same record, validated and normalised (E.164, lower-case email); InvalidInput else."""
    name = " ".join(p.name.split())
    if not name:
        raise InvalidInput("the patient's name is empty")
    if len(name) > 200:
        raise InvalidInput("the patient's name is longer than 200 characters")
    try:
        tz = validate_zone(p.tz.strip())
        phone = normalize_phone(p.phone) if p.phone and p.phone.strip() else None
        email = normalize_email(p.email) if p.email and p.email.strip() else None
    except (ContactError, ScheduleError) as exc:
        raise InvalidInput(str(exc)) from None
    if p.language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}, got {p.language!r}")
    ids = tuple(dict.fromkeys(external_ids.check(s, v) for s, v in p.ids))
    return PatientIn(name, tz, phone, email, p.language, p.birth_date, ids)


def clean_appointment(a: AppointmentIn) -> AppointmentIn:
    if a.kind not in APPOINTMENT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(APPOINTMENT_KINDS)}, got {a.kind!r}")
    if a.starts_at.tzinfo is None:
        raise InvalidInput("the appointment time has no zone")
    location = " ".join((a.location or "").split()) or None
    if location is not None and len(location) > 200:
        raise InvalidInput("the location is longer than 200 characters")
    ids = tuple(dict.fromkeys(external_ids.check(s, v) for s, v in a.ids))
    return AppointmentIn(a.kind, a.starts_at, location, ids)


def find_patient(session: Session, p: PatientIn, *, match_contact: bool = False) -> Patient | None:
    """By external id; with `match_contact` (CSV files without ids) also by name + phone or
    name + email."""
    found = external_ids.find(session, "patient", p.ids)
    if found is not None:
        return session.get(Patient, found)
    if not match_contact:
        return None
    for column, value in ((Patient.phone, p.phone), (Patient.email, p.email)):
        if value is None:
            continue
        row = session.scalars(
            select(Patient)
            .where(column == value, Patient.name == p.name, Patient.archived_at.is_(None))
            .order_by(Patient.id)
            .limit(1)
        ).first()
        if row is not None:
            return row
    return None


def upsert_patient(
    session: Session,
    p: PatientIn,
    *,
    now: datetime,
    actor: str,
    update_contacts: bool,
    match_contact: bool = False,
) -> tuple[Patient, Outcome]:
    """Find or create the patient (no consent); update its details only if allowed."""
    p = clean_patient(p)
    patient = find_patient(session, p, match_contact=match_contact)
    if patient is None:
        patient = Patient(
            name=p.name,
            phone=p.phone,
            email=p.email,
            tz=p.tz,
            channel="email" if p.email and not p.phone else "sms",
            language=p.language,
            send_window=None,
            birth_date=p.birth_date,
            created_at=now,
        )
        session.add(patient)
        session.flush()
        # find_patient saw none of the ids: one taken now was taken by a concurrent creation of
        # the same patient (ConcurrentCreate, for the caller to retry), not by bad input.
        external_ids.link(session, "patient", patient.id, p.ids, now=now, created=True)
        audit.record(
            session,
            now=now,
            actor=actor,
            action="patient.add",
            entity="patient",
            entity_id=patient.id,
            patient_id=patient.id,
            detail={"consent": [], "channel": patient.channel, "source": actor},
        )
        return patient, "created"
    external_ids.link(session, "patient", patient.id, p.ids, now=now)
    if not update_contacts:
        return patient, "unchanged"
    changes: dict[str, bool] = {}
    wanted = {
        "name": p.name,
        "phone": p.phone,
        "email": p.email,
        "language": p.language,
        "birth_date": p.birth_date,
    }
    for attr, value in wanted.items():
        # A source that leaves a field out does not erase what we know.
        if value is None or getattr(patient, attr) == value:
            continue
        setattr(patient, attr, value)
        changes[attr] = True  # which fields, never their values (no contact details in audit)
    if not changes:
        return patient, "unchanged"
    audit.record(
        session,
        now=now,
        actor=actor,
        action="patient.update",
        entity="patient",
        entity_id=patient.id,
        patient_id=patient.id,
        detail={"fields": sorted(changes)},
    )
    return patient, "updated"


def find_appointment(session: Session, ids: tuple[tuple[str, str], ...]) -> Appointment | None:
    found = external_ids.find(session, "appointment", ids)
    return session.get(Appointment, found) if found is not None else None


def upsert_appointment(
    session: Session,
    patient: Patient,
    a: AppointmentIn,
    *,
    now: datetime,
    actor: str,
    existing: Appointment | None = None,
    match_time: bool = False,
    allow_past_new: bool = True,
    known_absent: bool = False,
) -> tuple[Appointment, Outcome]:
    """Book the appointment, or bring the known one (by id, or `existing`) up to date.

    A cancelled appointment is never revived: InvalidInput. With `match_time` (CSV files
    without ids) a booked appointment of the patient at the same instant is the same one."""
    a = clean_appointment(a)
    appt = existing if existing is not None or known_absent else find_appointment(session, a.ids)
    if appt is None and match_time:
        appt = session.scalars(
            select(Appointment).where(
                Appointment.patient_id == patient.id,
                Appointment.starts_at == a.starts_at,
                Appointment.status == AppointmentStatus.BOOKED,
            )
        ).first()
    if appt is None:
        if not allow_past_new and a.starts_at <= now:
            raise InvalidInput("the appointment time is in the past")
        appt = appts.add_appointment(
            session,
            patient.id,
            now=now,
            kind=a.kind,
            at="",
            location=a.location,
            actor=actor,
            starts_at=a.starts_at,
            allow_past=True,
        )
        # As for a new patient: none of the ids was known when looked up (by this call, or by
        # the caller that passed `known_absent`), so one taken now is a lost race.
        external_ids.link(session, "appointment", appt.id, a.ids, now=now, created=True)
        return appt, "created"
    if appt.patient_id != patient.id:
        raise InvalidInput(f"appointment {appt.id} belongs to another patient")
    if appt.status == AppointmentStatus.CANCELLED:
        raise InvalidInput(f"appointment {appt.id} is cancelled; a cancelled visit is not revived")
    external_ids.link(session, "appointment", appt.id, a.ids, now=now)
    outcome: Outcome = "unchanged"
    if appt.kind != a.kind or (a.location is not None and appt.location != a.location):
        appt.kind = a.kind
        appt.location = a.location if a.location is not None else appt.location
        appt.updated_at = now
        # Reminder wording depends on the kind: re-plan them as a reschedule would.
        appt.version += 1
        appt.planned_until = None
        from worker.services.records.schedules import cancel_pending

        cancel_pending(session, now=now, reason="appointment_modified", appointment_id=appt.id)
        audit.record(
            session,
            now=now,
            actor=actor,
            action="appointment.modify",
            entity="appointment",
            entity_id=appt.id,
            patient_id=appt.patient_id,
            detail={"kind": appt.kind},
        )
        outcome = "updated"
    if appt.starts_at != a.starts_at:
        appts.reschedule(
            session, appt.id, now=now, actor=actor, starts_at=a.starts_at, allow_past=True
        )
        outcome = "rescheduled"
    return appt, outcome
