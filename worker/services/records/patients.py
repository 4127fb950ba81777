"""Patients and their per-channel consent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from worker.domain.forms import QUESTIONNAIRE_MODES
from worker.domain.names import CHANNELS
from worker.services.errors import InvalidInput, NotFound
from worker.services.input_limits import SHORT_MAX, check_text
from worker.services.records import audit, optin
from worker.services.records.patient_details import check_details
from worker.store import outbox
from worker.store.models import Consent, Message, Patient
from worker.store.outbox import MessageStatus


def add_patient(
    session: Session,
    *,
    now: datetime,
    name: str,
    tz: str,
    channel: str,
    phone: str | None = None,
    email: str | None = None,
    consent: list[str] | None = None,
    consent_source: str = "recorded at enrollment",
    send_window: str | None = None,
    language: str = "en",
    actor: str = "cli",
    confirm_optin: bool = True,
    questionnaire_mode: str = "link",
) -> Patient:
    """Validate and add a patient; raises InvalidInput and writes nothing on bad input.

    `confirm_optin` (CHECKIN_OPTIN_CONFIRMATION): an SMS consent given here is confirmed to
    the patient by text (services/records/optin.py)."""
    d = check_details(
        name=name,
        tz=tz,
        channel=channel,
        phone=phone,
        email=email,
        send_window=send_window,
        language=language,
    )
    check_text(consent_source, "consent source", SHORT_MAX)
    check_questionnaire_mode(questionnaire_mode)
    consents = consent or []
    for c in consents:
        if c not in CHANNELS:
            raise InvalidInput(f"consent channel must be sms or email, got {c!r}")
        if c == "sms" and not d.phone:
            raise InvalidInput("consent to sms needs a phone number", field="phone")
        if c == "email" and not d.email:
            raise InvalidInput("consent to email needs an email address", field="email")
    patient = Patient(
        name=d.name,
        phone=d.phone,
        email=d.email,
        tz=d.tz,
        channel=d.channel,
        language=d.language,
        send_window=d.send_window,
        questionnaire_mode=questionnaire_mode,
        created_at=now,
    )
    session.add(patient)
    session.flush()
    for c in dict.fromkeys(consents):
        grant = Consent(patient_id=patient.id, channel=c, granted_at=now, source=consent_source)
        session.add(grant)
        if confirm_optin and c == "sms":
            session.flush()
            optin.confirm_grant(session, grant, now=now)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="patient.add",
        entity="patient",
        entity_id=patient.id,
        patient_id=patient.id,
        detail={"consent": list(dict.fromkeys(consents)), "channel": channel},
    )
    return patient


def check_questionnaire_mode(mode: str) -> None:
    if mode not in QUESTIONNAIRE_MODES:
        raise InvalidInput(
            f"questionnaire mode must be one of {', '.join(QUESTIONNAIRE_MODES)}, got {mode!r}"
        )


def get_patient(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient with id {patient_id}")
    return patient


def has_consent(session: Session, patient_id: int, channel: str) -> bool:
    """True when the patient has an open (not withdrawn) consent on the channel."""
    row = session.execute(
        select(Consent.id).where(
            Consent.patient_id == patient_id,
            Consent.channel == channel,
            Consent.withdrawn_at.is_(None),
        )
    ).first()
    return row is not None


def grant_consent(
    session: Session,
    patient_id: int,
    channel: str,
    *,
    now: datetime,
    source: str,
    actor: str,
    confirm_optin: bool = True,
    reply_to: str | None = None,
) -> bool:
    """Record consent on a channel. Returns False when it was already in force (nothing written).

    A new SMS grant queues its opt-in confirmation when `confirm_optin`
    (CHECKIN_OPTIN_CONFIRMATION); `reply_to` when the patient texted START (services/records/optin.py).
    """
    check_text(source, "source", SHORT_MAX)
    patient = get_patient(session, patient_id)
    if channel not in CHANNELS:
        raise InvalidInput(f"channel must be sms or email, got {channel!r}")
    if channel == "sms" and not patient.phone:
        raise InvalidInput("the patient has no phone number for sms")
    if channel == "email" and not patient.email:
        raise InvalidInput("the patient has no email address")
    if has_consent(session, patient_id, channel):
        return False
    grant = Consent(patient_id=patient_id, channel=channel, granted_at=now, source=source)
    session.add(grant)
    if confirm_optin:
        session.flush()
        optin.confirm_grant(session, grant, now=now, reply_to=reply_to)
    # Messages suppressed by the withdrawal still hold their dedupe keys; reopen those ahead.
    outbox.move(
        session,
        and_(
            Message.patient_id == patient_id,
            Message.channel == channel,
            Message.status_reason == "consent_withdrawn",
            Message.due_at >= now,
        ),
        MessageStatus.SUPPRESSED,
        MessageStatus.SCHEDULED,
        status_reason=None,
        updated_at=now,
    )
    audit.record(
        session,
        now=now,
        actor=actor,
        action="consent.grant",
        entity="patient",
        entity_id=patient_id,
        patient_id=patient_id,
        detail={"channel": channel, "source": source},
    )
    return True


def withdraw_consent(
    session: Session, patient_id: int, channel: str, *, now: datetime, source: str, actor: str
) -> int:
    """Withdraw consent on a channel and suppress every pending message on it.

    Returns the number of pending messages suppressed. Messages already handed to a worker are
    caught by the send-time consent check.
    """
    check_text(source, "source", SHORT_MAX)
    get_patient(session, patient_id)
    if channel not in CHANNELS:
        raise InvalidInput(f"channel must be sms or email, got {channel!r}")
    session.execute(
        update(Consent)
        .where(
            Consent.patient_id == patient_id,
            Consent.channel == channel,
            Consent.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=now, withdrawn_source=source)
    )
    suppressed = outbox.move(
        session,
        and_(
            Message.patient_id == patient_id,
            Message.channel == channel,
            Message.exempt_quiet_hours.is_(False),
        ),
        MessageStatus.SCHEDULED,
        MessageStatus.SUPPRESSED,
        status_reason="consent_withdrawn",
        updated_at=now,
    )
    audit.record(
        session,
        now=now,
        actor=actor,
        action="consent.withdraw",
        entity="patient",
        entity_id=patient_id,
        patient_id=patient_id,
        detail={"channel": channel, "source": source},
    )
    return suppressed


def consent_state(session: Session, patient_id: int) -> dict[str, dict[str, object]]:
    """Per channel: whether consent is in force, and the latest grant/withdrawal with sources."""
    rows = session.scalars(
        select(Consent).where(Consent.patient_id == patient_id).order_by(Consent.id)
    ).all()
    state: dict[str, dict[str, object]] = {}
    for c in rows:
        state[c.channel] = {
            "granted": c.withdrawn_at is None,
            "granted_at": c.granted_at.isoformat(),
            "source": c.source,
            "withdrawn_at": c.withdrawn_at.isoformat() if c.withdrawn_at else None,
            "withdrawn_source": c.withdrawn_source,
        }
    return state
