"""Twilio's delivery reports (status callbacks): move the message row forward, never backwards;
a carrier opt-out (error 21610) withdraws SMS consent, a final failure raises a follow-up.

Applied by the web app as the callback arrives, or, when the database could not be reached
then, by the `checkin.status_unapplied` task once it can (worker/tasks.py). Applying one twice,
or late and out of order, is harmless: every move is a conditional UPDATE from the states it
may come from.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update

from worker.services.clinical.followups import raise_followup
from worker.services.records.patients import withdraw_consent
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Message

log = logging.getLogger(__name__)

# Twilio's delivery states and the rows they may move from (never backwards).
STATUS_MOVES = {
    "delivered": ("sending", "sent", "unknown", "undelivered"),
    "undelivered": ("sending", "sent", "unknown"),
    "failed": ("sending", "sent", "unknown"),
}


def apply_status(rt: Runtime, sid: str, status: str, code: str | None, now: datetime) -> None:
    if status not in STATUS_MOVES or not sid:
        return
    with session_scope(rt.sessions) as session:
        msg = session.scalar(select(Message).where(Message.provider_id == sid))
        if msg is None:
            log.info("status callback for an unknown message (%s)", status)
            return
        values: dict[str, object] = {"status": status, "updated_at": now}
        if status == "delivered":
            values["delivered_at"] = now
        if code:
            values["error_code"] = code[:20]
        moved = session.execute(
            update(Message)
            .where(Message.id == msg.id, Message.status.in_(STATUS_MOVES[status]))
            .values(**values)
        )
        if getattr(moved, "rowcount", 0) != 1 or msg.patient_id is None:
            return
        if code == "21610":
            withdraw_consent(
                session,
                msg.patient_id,
                "sms",
                now=now,
                source="carrier opt-out (Twilio 21610)",
                actor="system",
            )
        elif status in ("undelivered", "failed"):
            raise_followup(
                session,
                patient_id=msg.patient_id,
                reason="delivery_failed",
                severity="routine",
                detail={"message_id": msg.id, "status": status, "error_code": code},
                now=now,
            )
