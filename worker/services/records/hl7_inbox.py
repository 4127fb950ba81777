"""The HL7 v2 SIU feed: store each message verbatim, apply it once, answer with an ACK.

1. The message is parsed enough to read MSH; text that is not HL7 is answered AR (and kept).
2. It is stored in `hl7_messages`, UNIQUE (sending application^facility, MSH-10), in its own
   transaction: what the sender handed us is on disk before we act on it.
3. It is applied in one transaction that also marks the row processed (a conditional UPDATE, so
   two deliveries of one message, on two connections at once, apply it once). A refusal (AE)
   rolls the change back and records only the reason on the row.
4. A resend of a processed message is answered with the stored code and changes nothing.

Two connections creating the same new patient or appointment at once: the loser's transaction
is rolled back and applied again, a few times at most; it then finds the winner's row.

A database error answers AR ("resend later"): the row, if stored, stays unprocessed and the
sender's resend applies it. Nothing here raises to the listener.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from worker.domain import siu
from worker.domain.hl7_mapping import Hl7Mapping
from worker.services.errors import ConcurrentCreate, InvalidInput, NotFound
from worker.services.records import appointments as appts
from worker.services.records.intake import (
    AppointmentIn,
    PatientIn,
    find_appointment,
    upsert_appointment,
    upsert_patient,
)
from worker.services.records.visits import mark_no_show
from worker.store.db import session_scope
from worker.store.models import Hl7Message
from worker.store.record_status import AppointmentStatus

log = logging.getLogger(__name__)
ACTOR = "hl7"


@dataclass(frozen=True)
class FeedContext:
    sessions: sessionmaker[Session]
    mapping: Hl7Mapping
    clinic_tz: str
    update_contacts: bool
    now: Callable[[], datetime]
    # CHECKIN_NOSHOW_TEXT: an S26 queues the "we missed you" text as marking it by hand does.
    noshow_text: bool = False


@dataclass(frozen=True)
class Result:
    code: str  # AA | AE | AR
    outcome: str  # applied | duplicate | a refusal reason
    ack: str


def handle(ctx: FeedContext, text: str) -> Result:
    """Answer one message; never raises."""
    now = ctx.now()
    ack_id = uuid.uuid4().hex[:20]
    try:
        message, header = siu.parse(text)
    except siu.Refusal as refusal:
        _keep_unparsed(ctx, text, refusal, now)
        return Result(
            refusal.code,
            refusal.reason,
            siu.ack(
                refusal.code, None, now=now, ack_id=ack_id, reason=refusal.reason, text=refusal.text
            ),
        )
    try:
        row_id, done = _store(ctx, text, header, now)
        for attempt in range(3):
            if done is not None:
                break
            try:
                done = _apply(ctx, row_id, message, header, now)
            except (IntegrityError, ConcurrentCreate):
                # Two connections created the same new patient (one MRN) or appointment at
                # once: the loser's transaction rolled back whole; applying again finds the
                # winner's row. The loser meets the winner's id at its INSERT (IntegrityError:
                # the winner committed while it waited) or, committed a moment earlier, when
                # it looks before inserting (ConcurrentCreate). Not a refusal: an AE is final.
                if attempt == 2:
                    raise
    except (SQLAlchemyError, ConcurrentCreate) as exc:
        # ConcurrentCreate still, after three attempts: as a database error, the row stays
        # unprocessed for the sender's resend; an AE would drop a booking that is fine.
        log.warning(
            "hl7 message not applied (database: %s); the sender will resend", type(exc).__name__
        )
        text_ = "temporarily unable to store the message; resend it"
        return Result(
            "AR",
            "unavailable",
            siu.ack("AR", header, now=now, ack_id=ack_id, reason="unavailable", text=text_),
        )
    assert done is not None
    code, outcome, error = done
    return Result(
        code,
        outcome,
        siu.ack(
            code,
            header,
            now=now,
            ack_id=ack_id,
            reason=outcome if code != "AA" else None,
            text=error,
        ),
    )


def _keep_unparsed(ctx: FeedContext, text: str, refusal: siu.Refusal, now: datetime) -> None:
    """Keep what was not HL7 too (counted by reason in metrics); repeats are one row."""
    digest = sha256(text.encode("utf-8", "replace")).hexdigest()
    try:
        with session_scope(ctx.sessions) as session:
            exists = session.scalar(
                select(Hl7Message.id).where(
                    Hl7Message.sender == "", Hl7Message.control_id == f"sha256:{digest}"
                )
            )
            if exists is None:
                session.add(
                    Hl7Message(
                        sender="",
                        control_id=f"sha256:{digest}",
                        event=None,
                        raw=text[:65536],
                        received_at=now,
                        processed_at=now,
                        ack_code=refusal.code,
                        outcome=refusal.reason,
                        error=refusal.text[:500],
                    )
                )
    except SQLAlchemyError:  # a concurrent identical one, or the database is down: answer anyway
        pass
    log.info("hl7 message refused: %s", refusal.reason)


def _store(
    ctx: FeedContext, text: str, header: siu.Header, now: datetime
) -> tuple[int, tuple[str, str, str | None] | None]:
    """The inbox row's id, and its stored answer when it was processed already."""

    def existing(session: Session) -> Hl7Message | None:
        return session.scalars(
            select(Hl7Message).where(
                Hl7Message.sender == header.sender, Hl7Message.control_id == header.control_id
            )
        ).first()

    with session_scope(ctx.sessions) as session:
        row = existing(session)
        if row is None:
            row = Hl7Message(
                sender=header.sender,
                control_id=header.control_id,
                event=header.event,
                raw=text,
                received_at=now,
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # the same message on another connection, just now
                session.rollback()
                row = existing(session)
                assert row is not None
        if row.processed_at is not None and row.ack_code is not None:
            return row.id, (row.ack_code, row.outcome or "applied", row.error)
        return row.id, None


def _apply(
    ctx: FeedContext, row_id: int, message: object, header: siu.Header, now: datetime
) -> tuple[str, str, str | None]:
    try:
        with session_scope(ctx.sessions) as session:
            claimed = session.execute(
                update(Hl7Message)
                .where(Hl7Message.id == row_id, Hl7Message.processed_at.is_(None))
                .values(processed_at=now, ack_code="AA", outcome="applied")
            )
            if not getattr(claimed, "rowcount", 0):
                session.rollback()
                row = session.get(Hl7Message, row_id)
                assert row is not None
                return row.ack_code or "AA", row.outcome or "applied", row.error
            event = siu.read_siu(message, header, ctx.mapping, ctx.clinic_tz)
            patient_id, appointment_id = _apply_event(ctx, session, event, now)
            session.execute(
                update(Hl7Message)
                .where(Hl7Message.id == row_id)
                .values(patient_id=patient_id, appointment_id=appointment_id)
            )
        log.debug("hl7 %s applied (inbox %d)", header.event, row_id)
        return "AA", "applied", None
    except siu.Refusal as refusal:
        reason, text = refusal.reason, refusal.text
    except ConcurrentCreate:
        raise  # rolled back, not refused: handle() applies the message again
    except (InvalidInput, NotFound) as exc:
        reason, text = _reason_of(str(exc)), str(exc).strip("'\"")
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(Hl7Message)
            .where(Hl7Message.id == row_id, Hl7Message.processed_at.is_(None))
            .values(processed_at=now, ack_code="AE", outcome=reason, error=text[:500])
        )
    log.info("hl7 %s refused (inbox %d): %s", header.event, row_id, reason)
    return "AE", reason, text


def _reason_of(text: str) -> str:
    if "cancelled" in text:
        return "cancelled"
    if "already belongs" in text or "another patient" in text:
        return "conflict"
    if "phone" in text or "email" in text or "address" in text:
        return "bad_contact"
    return "unknown_appointment" if "no appointment" in text else "invalid"


def _apply_event(
    ctx: FeedContext, session: Session, event: siu.SiuEvent, now: datetime
) -> tuple[int, int | None]:
    patient_in = PatientIn(
        name=event.name or f"MRN {event.mrn}",
        tz=ctx.clinic_tz,
        phone=event.phone,
        email=event.email,
        language=event.language,
        birth_date=event.birth_date,
        ids=((event.mrn_system, event.mrn),),
    )
    known = find_appointment(session, event.appointment_ids)
    if event.trigger in ("S12", "S13", "S14"):
        patient, _ = upsert_patient(
            session, patient_in, now=now, actor=ACTOR, update_contacts=ctx.update_contacts
        )
        if (
            event.trigger == "S12"
            and known is not None
            and known.status == AppointmentStatus.CANCELLED
        ):
            raise InvalidInput(
                f"appointment {known.id} is cancelled; a cancelled visit is not revived"
            )
        assert event.starts_at is not None and event.kind is not None
        appt, _ = upsert_appointment(
            session,
            patient,
            AppointmentIn(event.kind, event.starts_at, event.location, event.appointment_ids),
            now=now,
            actor=ACTOR,
            existing=known,
            known_absent=known is None,  # just looked up: no second query
        )
        return patient.id, appt.id
    # S15 cancel, S17 delete, S26 no-show: about an appointment we must already know.
    if known is None:
        raise NotFound("no appointment with these SCH-1/SCH-2 ids (S12 first)")
    if event.trigger in ("S15", "S17"):
        appts.cancel(session, known.id, now=now, actor=ACTOR)
        return known.patient_id, known.id
    # S26: exactly as when staff mark it (services/records/visits.py): idempotent (a repeated S26
    # opens no second follow-up), audited, the pending messages cancelled, the text when the
    # clinic sends it. The EHR's word is taken even if its clock is a little ahead of ours.
    mark_no_show(
        session,
        known.id,
        now=now,
        actor=ACTOR,
        source="hl7 S26",
        text=ctx.noshow_text,
        before_start=True,
    )
    return known.patient_id, known.id
