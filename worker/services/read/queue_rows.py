"""The follow-up queue as the dashboard lists it: one row per follow-up, already filtered by the
signed-in account's role (worker/services/read/followup_queue.py), with its SLA state, a short
summary of the evidence and, for clinicians, the patient's latest words behind it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.services.read.followup_detail import contact_href, item9_summary, senders
from worker.services.read.followup_queue import followup_queue_stmt, visible_to
from worker.services.read.wording import REASON_LABELS, SLA, human_age, sla_text
from worker.services.records.accounts import can_see_clinical
from worker.store.models import FollowUp, InboundMessage, Patient, User
from worker.store.record_status import FollowupStatus


@dataclass(frozen=True)
class QueueRow:
    id: int
    patient_id: int | None
    patient_name: str
    reason: str
    reason_label: str
    severity: str
    status: str
    created_at: datetime
    age: str
    sla: str
    sla_state: str  # ok | due_soon | overdue | met
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    evidence: list[dict[str, Any]]
    summary: str
    reply: str | None  # the patient's latest words behind it (clinicians only)
    sender: str | None = None  # an unknown sender's number (clinicians only)
    sender_href: str | None = None  # tel: (or mailto:) for it
    item9: str | None = None  # PHQ-9 item 9: its text, the answer's label, the total so far


def _summary(item: FollowUp, clinical: bool) -> str:
    evidence = (item.detail or {}).get("evidence") or []
    last = evidence[-1] if evidence else {}
    parts: list[str] = []
    if clinical and last.get("matched"):
        parts.append(f"matched “{last['matched']}”")
    if clinical and item.reason in ("high_pain", "low_mood", "worsening", "positive_screen"):
        for key in ("instrument", "item", "value", "total", "baseline"):
            if key in last:
                parts.append(f"{key} {last[key]}")
    if last.get("starts_at"):
        parts.append(f"appointment {str(last['starts_at'])[:16].replace('T', ' ')} UTC")
    if last.get("note"):
        parts.append(str(last["note"]))
    if len(evidence) > 1:
        parts.append(f"{len(evidence)} signals")
    return "; ".join(parts)


def queue_row(
    item: FollowUp,
    patient_name: str,
    user: User,
    now: datetime,
    reply: str | None = None,
    *,
    sender: str | None = None,
    item9: str | None = None,
) -> QueueRow:
    sla = SLA.get(item.severity, SLA["routine"])
    if item.acknowledged_at is not None:
        state = "met" if item.acknowledged_at - item.created_at <= sla else "late"
    else:
        left = item.created_at + sla - now
        state = "overdue" if left < timedelta(0) else "due_soon" if left < sla / 3 else "ok"
    return QueueRow(
        id=item.id,
        patient_id=item.patient_id,
        patient_name=patient_name,
        reason=item.reason,
        reason_label=REASON_LABELS.get(item.reason, item.reason),
        severity=item.severity,
        status=item.status,
        created_at=item.created_at,
        age=human_age(now - item.created_at),
        sla=sla_text(sla),
        sla_state=state,
        acknowledged_by=item.acknowledged_by,
        acknowledged_at=item.acknowledged_at,
        resolved_by=item.resolved_by,
        resolution_note=item.resolution_note,
        evidence=list((item.detail or {}).get("evidence") or []),
        summary=_summary(item, can_see_clinical(user)),
        reply=reply if can_see_clinical(user) else None,
        sender=sender if can_see_clinical(user) else None,
        sender_href=contact_href(sender) if can_see_clinical(user) else None,
        item9=item9 if can_see_clinical(user) else None,
    )


def queue(
    session: Session,
    user: User,
    now: datetime,
    *,
    status: str = "active",
    patient_id: int | None = None,
    limit: int = 200,
) -> list[QueueRow]:
    """Urgent first, then high, then routine; oldest first within each. `status` is `active`
    (open and acknowledged), or one of open / acknowledged / resolved."""
    stmt = followup_queue_stmt(role=user.role, status=status, patient_id=patient_id)
    if status == FollowupStatus.RESOLVED:
        # The resolved list reads as a history: most recently resolved first.
        stmt = stmt.order_by(None).order_by(FollowUp.resolved_at.desc(), FollowUp.id.desc())
    items = list(session.scalars(stmt.limit(limit)))
    names = _names(session, {i.patient_id for i in items if i.patient_id is not None})
    clinical = can_see_clinical(user)
    replies = _replies(session, items) if clinical else {}
    numbers = senders(session, items) if clinical else {}
    return [
        queue_row(
            i,
            names.get(i.patient_id or 0, "unknown sender"),
            user,
            now,
            replies.get(i.id),
            sender=numbers.get(i.id),
            item9=_item9_text(session, i) if clinical else None,
        )
        for i in items
    ]


def _item9_text(session: Session, item: FollowUp) -> str | None:
    summary = item9_summary(session, item)
    return summary.text if summary is not None else None


def _last_inbound(item: FollowUp) -> int | None:
    for evidence in reversed((item.detail or {}).get("evidence") or []):
        value = evidence.get("inbound_id")
        if isinstance(value, int):
            return value
    return None


def _replies(session: Session, items: list[FollowUp]) -> dict[int, str]:
    """Follow-up id → the text of the latest reply behind it, cut to a readable length."""
    wanted = {i.id: n for i in items if (n := _last_inbound(i)) is not None}
    if not wanted:
        return {}
    bodies = {
        row_id: body
        for row_id, body in session.execute(
            select(InboundMessage.id, InboundMessage.body).where(
                InboundMessage.id.in_(sorted(set(wanted.values())))
            )
        )
    }
    out = {}
    for fid, inbound_id in wanted.items():
        body = bodies.get(inbound_id)
        if body is not None:
            out[fid] = body if len(body) <= 300 else body[:299] + "…"
    return out


def queue_counts(session: Session, user: User) -> dict[str, int]:
    stmt = (
        select(FollowUp.severity, func.count())
        .where(FollowUp.status == FollowupStatus.OPEN)
        .group_by(FollowUp.severity)
    )
    stmt = visible_to(stmt, user.role)
    return {str(sev): int(n) for sev, n in session.execute(stmt)}


def one_queue_row(session: Session, user: User, followup_id: int, now: datetime) -> QueueRow:
    from worker.services.clinical.followups import get_followup

    item = get_followup(session, followup_id)
    names = _names(session, {item.patient_id} if item.patient_id else set())
    clinical = can_see_clinical(user)
    reply = _replies(session, [item]).get(item.id) if clinical else None
    return queue_row(
        item,
        names.get(item.patient_id or 0, "unknown sender"),
        user,
        now,
        reply,
        sender=senders(session, [item]).get(item.id) if clinical else None,
        item9=_item9_text(session, item) if clinical else None,
    )


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        pid: name
        for pid, name in session.execute(
            select(Patient.id, Patient.name).where(Patient.id.in_(sorted(ids)))
        )
    }
