"""What the dashboard shows of patients: the searchable list (with open follow-ups the role may
see and the next appointment), one patient's conversation, and the changes to their record."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from worker.services.read.wording import KIND_LABELS, local
from worker.services.records.accounts import can_see_followup
from worker.store.models import (
    Appointment,
    AuditEvent,
    FollowUp,
    InboundMessage,
    Message,
    Patient,
    User,
)
from worker.store.outbox import NOT_TRIED, PROBLEMS
from worker.store.record_status import AppointmentStatus, FollowupStatus


def patient_rows(
    session: Session, user: User, q: str | None, now: datetime
) -> list[dict[str, Any]]:
    stmt = select(Patient).where(Patient.archived_at.is_(None)).order_by(Patient.name, Patient.id)
    if q:
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(Patient.name).like(like),
                Patient.phone.like(f"%{q.strip()}%"),
                func.lower(Patient.email).like(like),
            )
        )
    patients = list(session.scalars(stmt.limit(500)))
    ids = [p.id for p in patients]
    open_by: dict[int, list[str]] = defaultdict(list)
    next_appt: dict[int, Appointment] = {}
    if ids:
        fstmt = select(FollowUp.patient_id, FollowUp.severity, FollowUp.reason).where(
            FollowUp.patient_id.in_(ids), FollowUp.status != FollowupStatus.RESOLVED
        )
        for pid, severity, reason in session.execute(fstmt):
            if pid is not None and can_see_followup(user, reason):
                open_by[pid].append(severity)
        for a in session.scalars(
            select(Appointment)
            .where(
                Appointment.patient_id.in_(ids),
                Appointment.status == AppointmentStatus.BOOKED,
                Appointment.starts_at > now,
            )
            .order_by(Appointment.starts_at)
        ):
            next_appt.setdefault(a.patient_id, a)
    rank = {"urgent": 0, "high": 1, "routine": 2}
    rows = []
    for p in patients:
        sev = sorted(open_by.get(p.id, []), key=lambda s: rank.get(s, 3))
        appt = next_appt.get(p.id)
        rows.append(
            {
                "id": p.id,
                "name": p.name,
                "channel": p.channel,
                "tz": p.tz,
                "open": len(sev),
                "worst": sev[0] if sev else None,
                "next_appointment": (
                    f"{KIND_LABELS.get(appt.kind, appt.kind)}, {local(appt.starts_at, p.tz)}"
                    if appt
                    else ""
                ),
            }
        )
    return rows


def conversation(session: Session, patient_id: int, limit: int) -> list[dict[str, Any]]:
    """Messages out (with delivery state) and replies in, newest first."""
    out = session.scalars(
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.status.notin_(NOT_TRIED),
        )
        .order_by(Message.due_at.desc(), Message.id.desc())
        .limit(limit)
    )
    inn = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.patient_id == patient_id)
        .order_by(InboundMessage.received_at.desc())
        .limit(limit)
    )
    rows: list[dict[str, Any]] = []
    for m in out:
        rows.append(
            {
                "direction": "out",
                "at": m.sent_at or m.sending_at or m.due_at,
                "channel": m.channel,
                "kind": m.kind,
                "template": m.template,
                "body": m.body if m.body is not None else f"({m.template}, not rendered)",
                "subject": m.subject,
                "status": m.status,
                "status_reason": m.status_reason,
                "error_code": m.error_code,
                "bad": m.status in PROBLEMS,
            }
        )
    for i in inn:
        rows.append(
            {
                "direction": "in",
                "at": i.received_at,
                "channel": i.channel,
                "kind": "reply",
                "template": None,
                "body": i.body,
                "subject": None,
                "status": "received",
                "status_reason": i.outcome,
                "error_code": None,
                "bad": False,
            }
        )
    rows.sort(key=lambda r: r["at"], reverse=True)
    return rows[:limit]


# Reads are audited too (worker/services/records/audit.py); the patient page lists only changes.
READ_ACTIONS = ("view", "search", "export")


def audit_trail(session: Session, patient_id: int, limit: int = 30) -> list[dict[str, Any]]:
    """Changes to this patient's record, newest first; `actor` is the user's name when a user
    made the change, else the system's label (cli:<OS user>, system, patient, ...)."""
    rows = session.execute(
        select(AuditEvent, User.name)
        .outerjoin(User, User.id == AuditEvent.user_id)
        .where(AuditEvent.patient_id == patient_id, AuditEvent.action.not_in(READ_ACTIONS))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "at": e.at,
            "actor": name or e.actor,
            "action": e.action,
            "entity": e.entity,
            "entity_id": e.entity_id,
        }
        for e, name in rows
    ]
