"""Check-ins whose reply window closed: expired (nothing came back) or partial (a questionnaire
abandoned part-way, kept as partial); then the missed-check-ins rule for their patients.

A PHQ-9 that reached item 9 (thoughts of being better off dead or of self-harm: by SMS the
conversation got there; by email or on the form other items were answered) and closes with item 9 unanswered
raises a high `phq9_item9_unanswered` follow-up (CLINICAL.md: item 9 left
unanswered is a high follow-up), once, as the check-in closes: silence there must reach a human."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from worker.domain.instruments import get_instrument
from worker.domain.rules import ITEM9_KEY, missed_checkins
from worker.services.clinical.followups import raise_followup
from worker.services.outbound.form_links import is_form_checkin
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import CheckIn, Message, Response
from worker.store.record_status import CheckinStatus

RECENT = 10
ITEM9_INDEX = get_instrument("phq9").keys.index(ITEM9_KEY)


def awaits_item9(session: Session, checkin: CheckIn) -> bool:
    """PHQ-9 item 9 reached the patient and has no answer: by SMS, the conversation's current
    item is item 9; on one page (an email, or the form a link opens), other items were
    answered and item 9 was left out."""
    if checkin.instrument != "phq9":
        return False
    one_page = checkin.channel == "email" or is_form_checkin(session, checkin.id)
    if not one_page and checkin.item_index < ITEM9_INDEX:
        return False
    items = set(session.scalars(select(Response.item).where(Response.checkin_id == checkin.id)))
    if ITEM9_KEY in items:
        return False
    return not one_page or bool(items)


def item9_unanswered(session: Session, checkin: CheckIn, now: datetime) -> None:
    # The message that carried item 9: the conversation's latest item, or the one email.
    prompt = session.execute(
        select(Message.id, Message.status, Message.sent_at)
        .where(Message.checkin_id == checkin.id, Message.kind == "checkin")
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    raise_followup(
        session,
        patient_id=checkin.patient_id,
        reason="phq9_item9_unanswered",
        severity="high",
        detail={
            "checkin_id": checkin.id,
            "instrument": "phq9",
            "item": ITEM9_KEY,
            "channel": checkin.channel,
            "window_closed_at": checkin.window_closes_at.isoformat(),
            # Whether the item reached the patient: "failed" or "suppressed" mean it did not.
            "prompt_message_id": prompt.id if prompt else None,
            "prompt_status": prompt.status if prompt else None,
            "prompt_sent_at": prompt.sent_at.isoformat() if prompt and prompt.sent_at else None,
        },
        now=now,
    )


def expire_checkins(rt: Runtime, now: datetime) -> int:
    """Close every check-in whose window has passed. Returns how many were closed."""
    with session_scope(rt.sessions) as session:
        stmt = select(CheckIn).where(
            CheckIn.status == CheckinStatus.OPEN, CheckIn.window_closes_at <= now
        )
        if rt.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        closing = list(session.scalars(stmt.limit(1000)))
        patients: set[int] = set()
        for checkin in closing:
            answered = session.scalar(select(func.count()).where(Response.checkin_id == checkin.id))
            if awaits_item9(session, checkin):
                item9_unanswered(session, checkin, now)
            if answered:
                checkin.status = CheckinStatus.PARTIAL
                session.execute(
                    update(Response).where(Response.checkin_id == checkin.id).values(partial=True)
                )
            else:
                checkin.status = CheckinStatus.EXPIRED
                patients.add(checkin.patient_id)
        for patient_id in patients:
            recent = list(
                session.scalars(
                    select(CheckIn.status)
                    .where(CheckIn.patient_id == patient_id)
                    .order_by(CheckIn.sent_at.desc(), CheckIn.id.desc())
                    .limit(RECENT)
                )
            )
            flag = missed_checkins(recent)
            if flag is not None:
                raise_followup(
                    session,
                    patient_id=patient_id,
                    reason=flag.reason,
                    severity=flag.severity,
                    detail=dict(flag.detail),
                    now=now,
                )
        return len(closing)
