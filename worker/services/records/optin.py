"""The opt-in confirmation CTIA expects when SMS consent is recorded (docs/consent.md).

One message row per grant, written in the transaction that records the grant: the dedupe key
names the consent row, so the confirmation is never lost (it is a row before anything is sent)
and never sent twice (a second call for the same grant inserts nothing). A later withdrawal
and new grant is a new consent row, hence a new confirmation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.store.models import Consent, Message, Patient
from worker.store.outbox import MessageStatus

TEMPLATE = "optin_confirmation"


def confirmation_key(consent_id: int) -> str:
    return f"optin:{consent_id}"


def confirm_grant(
    session: Session,
    consent: Consent,
    *,
    now: datetime,
    reply_to: str | None = None,
) -> int | None:
    """Queue the opt-in confirmation of this SMS grant; returns the message id, or None when
    the grant is not SMS or was confirmed already.

    `reply_to`: the grant came from the patient's own START, so the confirmation is the answer
    to what they just sent (urgent and exempt from quiet hours, like the STOP confirmation).
    Otherwise it is ordinary traffic recorded by staff: it waits for the patient's send window
    and goes only if consent is still in force when it is sent.
    """
    if consent.channel != "sms":
        return None
    patient = session.get(Patient, consent.patient_id)
    assert patient is not None
    key = confirmation_key(consent.id)
    if session.scalar(select(Message.id).where(Message.dedupe_key == key)) is not None:
        return None
    # Written here rather than through services/immediate, which imports the send path (and
    # through it this module's caller, services/patients).
    msg = Message(
        patient_id=patient.id,
        channel="sms",
        kind="consent",
        template=TEMPLATE,
        language=patient.language,
        priority="urgent" if reply_to is not None else "bulk",
        exempt_quiet_hours=reply_to is not None,
        due_at=now,
        dedupe_key=key,
        context={},
        to_address=reply_to,
        status=MessageStatus.SCHEDULED,
        attempts=0,
        # It names STOP itself: it counts as this month's STOP notice (services/stop_notice.py).
        stop_notice=True,
        created_at=now,
        updated_at=now,
    )
    session.add(msg)
    session.flush()
    mid = msg.id
    return mid


def confirm_start(session: Session, patient_id: int, *, now: datetime, to: str) -> int | None:
    """The confirmation of the SMS grant a patient's START just made, as the reply to it."""
    grant = session.scalar(
        select(Consent)
        .where(
            Consent.patient_id == patient_id,
            Consent.channel == "sms",
            Consent.withdrawn_at.is_(None),
        )
        .order_by(Consent.id.desc())
        .limit(1)
    )
    if grant is None:
        return None
    return confirm_grant(session, grant, now=now, reply_to=to)
