"""The crisis path (CLINICAL.md): it overrides everything and waits for nothing.

A crisis phrase or a positive PHQ-9 item 9 does all of: an immediate reply to the patient naming
988, 911 and the clinic's phone; an urgent follow-up; a page to the on-call clinician by SMS and
email carrying only a link (no identifiers, no content). Unacknowledged urgent follow-ups are
re-paged up the escalation ladder (services/clinical/ladder.py) until a human acknowledges.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from worker.services.clinical import ladder
from worker.services.clinical.followups import raise_followup
from worker.services.outbound.send_now import queue_now
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import FollowUp, Patient
from worker.store.record_status import FollowupStatus

log = logging.getLogger(__name__)

# The defaults of CHECKIN_REPAGE_MINUTES and CHECKIN_REPAGE_COUNT (the settings rule).
REPAGE_EVERY = timedelta(minutes=15)
MAX_REPAGES = 4


def followup_link(rt: Runtime, followup_id: int) -> str:
    return f"{rt.settings.public_url}/followups/{followup_id}"


def start_crisis_path(
    rt: Runtime,
    session: Session,
    *,
    patient: Patient | None,
    reason: str,
    reply_to: str | None,
    language: str,
    detail: dict[str, Any],
    dedupe: str,
    now: datetime,
) -> list[int]:
    """Queue the crisis reply and the page, open (or add to) the urgent follow-up.
    Returns message ids to send now."""
    send: list[int] = []
    if reply_to:
        mid = queue_now(
            session,
            now=now,
            dedupe_key=f"{dedupe}:crisis_reply",
            template="crisis_reply",
            kind="crisis",
            channel="sms",
            patient_id=patient.id if patient else None,
            language=language,
            to_address=reply_to,
        )
        if mid is not None:
            send.append(mid)
    item, created = raise_followup(
        session,
        patient_id=patient.id if patient else None,
        reason=reason,
        severity="urgent",
        detail=detail,
        now=now,
    )
    if created or item.status == FollowupStatus.OPEN:
        send += page(rt, session, item, now)
    log.warning("crisis path started: follow-up %d (%s)", item.id, reason)
    return send


def page(rt: Runtime, session: Session, item: FollowUp, now: datetime) -> list[int]:
    """The follow-up's next page, on the rung of the escalation ladder it has reached."""
    return ladder.page(rt.settings, session, item, followup_link(rt, item.id), now)


def escalate(rt: Runtime, now: datetime) -> list[int]:
    """Page again every urgent follow-up nobody has acknowledged whose last page is
    CHECKIN_REPAGE_MINUTES old (or that was never paged), one rung further up the ladder.
    Returns message ids to send now."""
    send: list[int] = []
    every = timedelta(minutes=rt.settings.repage_minutes)
    with session_scope(rt.sessions) as session:
        stmt = (
            select(FollowUp)
            .where(
                FollowUp.severity == "urgent",
                FollowUp.status == FollowupStatus.OPEN,
                or_(FollowUp.last_paged_at.is_(None), FollowUp.last_paged_at <= now - every),
            )
            .order_by(FollowUp.id)
        )
        if rt.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        due = session.scalars(stmt).all()
        for item in due:
            send += page(rt, session, item, now)
    return send
