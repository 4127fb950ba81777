"""Check-ins whose reply window closed: expired (nothing came back) or partial (a questionnaire
abandoned part-way, kept as partial); then the missed-check-ins rule for their patients."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from worker.domain.rules import missed_checkins
from worker.services.followups import raise_followup
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import CheckIn, Response

RECENT = 10


def expire_checkins(rt: Runtime, now: datetime) -> int:
    """Close every check-in whose window has passed. Returns how many were closed."""
    with session_scope(rt.sessions) as session:
        stmt = select(CheckIn).where(CheckIn.status == "open", CheckIn.window_closes_at <= now)
        if rt.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        closing = list(session.scalars(stmt.limit(1000)))
        patients: set[int] = set()
        for checkin in closing:
            answered = session.scalar(select(func.count()).where(Response.checkin_id == checkin.id))
            if answered:
                checkin.status = "partial"
                session.execute(
                    update(Response).where(Response.checkin_id == checkin.id).values(partial=True)
                )
            else:
                checkin.status = "expired"
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
