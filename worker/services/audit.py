"""The audit trail: who changed what and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.store.models import AuditEvent


def record(
    session: Session,
    *,
    now: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None,
    patient_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the session's transaction (it commits with the change it records)."""
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            patient_id=patient_id,
            detail=detail or {},
        )
    )
