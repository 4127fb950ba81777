"""The one follow-up queue query (CLI, API and dashboard), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.services.clinical.followups import raise_followup, resolve
from worker.services.errors import InvalidInput
from worker.services.read.followup_queue import followup_queue, visible_to
from worker.services.records.accounts import FRONTDESK_REASONS
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import FollowUp

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _seed(session: Session) -> dict[str, int]:
    """Raised in an order that is neither severity order nor age order within a severity."""
    ids = {}
    for minutes, reason, severity in [
        (0, "low_mood", "routine"),
        (1, "reschedule_request", "routine"),
        (2, "high_pain", "high"),
        (3, "crisis_language", "urgent"),
        (4, "confirm_request", "high"),
        (-5, "phq9_item9", "urgent"),
        (6, "late_arrival", "urgent"),
    ]:
        item, _ = raise_followup(
            session,
            patient_id=None,
            reason=reason,
            severity=severity,
            detail={},
            now=T0 + timedelta(minutes=minutes),
        )
        ids[reason] = item.id
    session.flush()
    return ids


def test_it_lists_urgent_first_then_high_then_routine_oldest_first_within_each(
    rt: Runtime,
) -> None:
    with session_scope(rt.sessions) as session:
        _seed(session)
        reasons = [f.reason for f in followup_queue(session, role="clinician")]
    assert reasons == [
        "phq9_item9",
        "crisis_language",
        "late_arrival",
        "high_pain",
        "confirm_request",
        "low_mood",
        "reschedule_request",
    ]


def test_the_front_desk_sees_only_front_desk_kinds_in_queue_order(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        _seed(session)
        desk = [f.reason for f in followup_queue(session, role="frontdesk")]
        admin = {f.reason for f in followup_queue(session, role="admin")}
    assert desk == ["late_arrival", "confirm_request", "reschedule_request"]
    assert set(desk) <= FRONTDESK_REASONS
    assert "crisis_language" in admin and "phq9_item9" in admin


def test_it_filters_by_status_and_active_means_not_resolved(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        ids = _seed(session)
        resolve(session, ids["low_mood"], by="Dr. Lee", note=None, now=T0 + timedelta(hours=1))
        session.flush()
        active = {f.reason for f in followup_queue(session, role="admin", status="active")}
        done = [f.reason for f in followup_queue(session, role="admin", status="resolved")]
        every = followup_queue(session, role="admin")
        first_two = followup_queue(session, role="admin", limit=2)
        with pytest.raises(InvalidInput):
            followup_queue(session, role="admin", status="closed")
    assert "low_mood" not in active and len(active) == 6
    assert done == ["low_mood"]
    assert len(every) == 7
    assert [f.reason for f in first_two] == ["phq9_item9", "crisis_language"]


def test_counts_use_the_same_role_filter(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        _seed(session)
        stmt = select(func.count()).select_from(FollowUp)
        desk = session.scalar(visible_to(stmt, "frontdesk"))
        clinician = session.scalar(visible_to(stmt, "clinician"))
    assert (desk, clinician) == (3, 7)
