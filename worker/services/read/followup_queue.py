"""The follow-up queue as one account may see it: the one query the CLI, the API and the
dashboard read, with the front-desk filter inside so that no caller can forget it.

Urgent first, then high, then routine; oldest first within a severity (id breaks ties, so that
paging is stable).
"""

from __future__ import annotations

from typing import TypeVarTuple

from sqlalchemy import Select, case, select
from sqlalchemy.orm import Session

from worker.services.errors import InvalidInput
from worker.services.records.accounts import FRONTDESK_REASONS
from worker.store.models import FollowUp
from worker.store.record_status import FollowupStatus

SEVERITY_ORDER = case((FollowUp.severity == "urgent", 0), (FollowUp.severity == "high", 1), else_=2)

STATUSES = (FollowupStatus.OPEN, FollowupStatus.ACKNOWLEDGED, FollowupStatus.RESOLVED)
# `active` is what still needs someone: open or acknowledged.
ACTIVE = "active"

# Roles that see clinical items; every other role (the front desk) sees appointment requests only.
CLINICAL_ROLES = ("clinician", "admin")

Ts = TypeVarTuple("Ts")


def sees_clinical(role: str) -> bool:
    return role in CLINICAL_ROLES


def visible_to(stmt: Select[*Ts], role: str) -> Select[*Ts]:
    """`stmt` (over FollowUp) narrowed to what `role` may see."""
    if sees_clinical(role):
        return stmt
    return stmt.where(FollowUp.reason.in_(sorted(FRONTDESK_REASONS)))


def followup_queue_stmt(
    *, role: str, status: str | None = None, patient_id: int | None = None
) -> Select[FollowUp]:
    """The queue's query, for callers that page it. `status` is None (every item), `active`
    (open and acknowledged) or one of STATUSES; anything else raises InvalidInput."""
    stmt = select(FollowUp).order_by(SEVERITY_ORDER, FollowUp.created_at, FollowUp.id)
    if status == ACTIVE:
        stmt = stmt.where(FollowUp.status != FollowupStatus.RESOLVED)
    elif status is not None:
        if status not in STATUSES:
            raise InvalidInput("the status must be open, acknowledged or resolved", field="status")
        stmt = stmt.where(FollowUp.status == status)
    if patient_id is not None:
        stmt = stmt.where(FollowUp.patient_id == patient_id)
    return visible_to(stmt, role)


def followup_queue(
    session: Session,
    *,
    role: str,
    status: str | None = None,
    patient_id: int | None = None,
    limit: int | None = None,
) -> list[FollowUp]:
    """The queue's items in queue order (see followup_queue_stmt for `status`)."""
    stmt = followup_queue_stmt(role=role, status=status, patient_id=patient_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))
