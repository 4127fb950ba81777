"""The dashboard's operations page: messages by state, the send lag, the last hour's sends and
failures, recent errors (ids, codes and states only), urgent follow-ups, unprocessed replies
and the Celery queues' depths."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.services.read.wording import human_age
from worker.store.models import FollowUp, InboundMessage, Message
from worker.store.outbox import FAILURES, PENDING, PROBLEMS
from worker.store.record_status import FollowupStatus


def queue_depths(settings: Settings) -> dict[str, int | str]:
    """Tasks waiting in each Celery queue (as `checkin ops status` reads them), or why they are
    unknown."""
    from worker.broker import QUEUES
    from worker.services.read.ops import queue_depths as read

    unknown: dict[str, int | str] = dict.fromkeys(QUEUES, "—")
    if not settings.broker_url:
        return {**unknown, "note": "no broker configured in this process"}
    try:
        return dict(read(settings))
    except Exception as exc:
        return {**unknown, "note": f"broker unreachable: {type(exc).__name__}"}


def operations(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    by_status = {
        str(s): int(n)
        for s, n in session.execute(select(Message.status, func.count()).group_by(Message.status))
    }
    oldest_due = session.scalar(
        select(func.min(Message.due_at)).where(Message.status.in_(PENDING), Message.due_at <= now)
    )
    hour_ago = now - timedelta(hours=1)
    sent_hour = session.scalar(
        select(func.count()).where(Message.sent_at >= hour_ago, Message.sent_at.is_not(None))
    )
    failed_hour = session.scalar(
        select(func.count()).where(Message.updated_at >= hour_ago, Message.status.in_(FAILURES))
    )
    errors = list(
        session.scalars(
            select(Message)
            .where(
                or_(
                    Message.error_code.is_not(None),
                    Message.status.in_(PROBLEMS),
                )
            )
            .order_by(Message.updated_at.desc(), Message.id.desc())
            .limit(25)
        )
    )
    urgent_open = session.scalar(
        select(func.count()).where(
            FollowUp.severity == "urgent", FollowUp.status == FollowupStatus.OPEN
        )
    )
    inbound_waiting = session.scalar(
        select(func.count()).where(InboundMessage.processed_at.is_(None))
    )
    return {
        "depths": queue_depths(settings),
        "by_status": dict(sorted(by_status.items())),
        "lag": human_age(now - oldest_due) if oldest_due else "none",
        "lag_seconds": (now - oldest_due).total_seconds() if oldest_due else 0.0,
        "sent_hour": int(sent_hour or 0),
        "failed_hour": int(failed_hour or 0),
        "urgent_open": int(urgent_open or 0),
        "inbound_waiting": int(inbound_waiting or 0),
        # No recipient and no body here: ids, codes and states only.
        "errors": [
            {
                "id": m.id,
                "channel": m.channel,
                "kind": m.kind,
                "status": m.status,
                "error_code": m.error_code,
                "reason": m.status_reason,
                "attempts": m.attempts,
                "at": m.updated_at,
                "age": human_age(now - m.updated_at),
            }
            for m in errors
        ],
    }
