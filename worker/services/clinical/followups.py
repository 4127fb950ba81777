"""The clinicians' follow-up queue: at most one open item per patient and reason.

Later evidence for the same reason is appended to the open item instead of opening another, and
raises its severity if the new evidence is more severe. Acknowledging stops the escalation
ladder (and pages not yet sent); an urgent item cannot be resolved without a note of the action
taken (CLINICAL.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.names import FOLLOWUP_REASONS, SEVERITIES
from worker.services.errors import InvalidInput, NotFound
from worker.services.input_limits import NAME_MAX, NOTE_MAX, check_text
from worker.services.records import audit
from worker.store import outbox
from worker.store.models import FollowUp, Message
from worker.store.outbox import MessageStatus
from worker.store.record_status import FollowupStatus

RANK = {"urgent": 0, "high": 1, "routine": 2}
MAX_EVIDENCE = 50


def raise_followup(
    session: Session,
    *,
    patient_id: int | None,
    reason: str,
    severity: str,
    detail: dict[str, Any],
    now: datetime,
) -> tuple[FollowUp, bool]:
    """Open a follow-up, or add the evidence to the open one. Returns (item, created)."""
    if reason not in FOLLOWUP_REASONS:
        raise ValueError(f"unknown follow-up reason {reason!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    existing = None
    if patient_id is not None:
        existing = session.scalars(
            select(FollowUp)
            .where(
                FollowUp.patient_id == patient_id,
                FollowUp.reason == reason,
                FollowUp.status != FollowupStatus.RESOLVED,
            )
            .order_by(FollowUp.id)
            .limit(1)
        ).first()
    evidence = {"at": now.isoformat(), **detail}
    if existing is not None:
        merged = dict(existing.detail or {})
        merged["evidence"] = [*merged.get("evidence", []), evidence][-MAX_EVIDENCE:]
        existing.detail = merged
        if RANK[severity] < RANK[existing.severity]:
            existing.severity = severity
            # A more severe signal re-opens the paging clock for an item not yet acknowledged.
            existing.page_count = (
                0 if existing.status == FollowupStatus.OPEN else existing.page_count
            )
        existing.updated_at = now
        return existing, False
    item = FollowUp(
        patient_id=patient_id,
        reason=reason,
        severity=severity,
        status=FollowupStatus.OPEN,
        detail={"evidence": [evidence]},
        created_at=now,
        updated_at=now,
        page_count=0,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        now=now,
        actor="system",
        action="followup.open",
        entity="followup",
        entity_id=item.id,
        patient_id=patient_id,
        detail={"reason": reason, "severity": severity},
    )
    return item, True


def get_followup(session: Session, followup_id: int) -> FollowUp:
    item = session.get(FollowUp, followup_id)
    if item is None:
        raise NotFound(f"no follow-up with id {followup_id}")
    return item


def acknowledge(session: Session, followup_id: int, *, by: str, now: datetime) -> FollowUp:
    by = by.strip()
    if not by:
        raise InvalidInput("who acknowledges it is missing", field="by")
    item = get_followup(session, followup_id)
    if item.status == FollowupStatus.RESOLVED:
        raise InvalidInput(f"follow-up {followup_id} is already resolved")
    if item.status == FollowupStatus.OPEN:
        item.status = FollowupStatus.ACKNOWLEDGED
        item.acknowledged_by = by
        item.acknowledged_at = now
        item.updated_at = now
        _stop_pages(session, item.id, now)
        audit.record(
            session,
            now=now,
            actor=by,
            action="followup.acknowledge",
            entity="followup",
            entity_id=item.id,
            patient_id=item.patient_id,
        )
    return item


def resolve(
    session: Session, followup_id: int, *, by: str, note: str | None, now: datetime
) -> FollowUp:
    by = by.strip()
    note = check_text(note or "", "note", NOTE_MAX, multiline=True).strip() or None
    check_text(by, "by", NAME_MAX)
    if not by:
        raise InvalidInput("who resolved it is missing", field="by")
    item = get_followup(session, followup_id)
    if item.status == FollowupStatus.RESOLVED:
        raise InvalidInput(f"follow-up {followup_id} is already resolved")
    if item.severity == "urgent" and note is None:
        raise InvalidInput(
            "an urgent follow-up cannot be resolved without a note of the action taken",
            field="note",
        )
    if item.acknowledged_at is None:
        item.acknowledged_by, item.acknowledged_at = by, now
        _stop_pages(session, item.id, now)
    item.status = FollowupStatus.RESOLVED
    item.resolved_by = by
    item.resolved_at = now
    item.resolution_note = note
    item.updated_at = now
    audit.record(
        session,
        now=now,
        actor=by,
        action="followup.resolve",
        entity="followup",
        entity_id=item.id,
        patient_id=item.patient_id,
        detail={"note": note} if note else {},
    )
    return item


def _stop_pages(session: Session, followup_id: int, now: datetime) -> None:
    """A human has it: pages not yet handed to the provider are not sent (the escalation tick
    stops paging too, as it only pages `open` items)."""
    outbox.move(
        session,
        (Message.followup_id == followup_id) & (Message.kind == "page"),
        outbox.WAITING,
        MessageStatus.SUPPRESSED,
        status_reason="acknowledged",
        updated_at=now,
    )
