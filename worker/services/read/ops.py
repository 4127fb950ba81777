"""What an operator looks at: queue depths, the outbox, lag, recent sends and failures, and the
urgent follow-ups nobody has closed. Read from the database and the broker at the moment asked,
so every process (CLI, web app) sees the same figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.services.clinical import ladder
from worker.store import outbox as states
from worker.store.models import FollowUp, Message
from worker.store.outbox import MessageStatus
from worker.store.record_status import FollowupStatus

if TYPE_CHECKING:
    from worker.config import Settings
    from worker.services.runtime import Runtime

#: Rows still on their way out: due-but-unsent counts these.
PENDING = states.PENDING
#: A message leaves the outbox within a few hours of its due time or not at all (lateness
#: cut-offs), so "sent in the last hour" only needs rows due in the week before: this bound
#: lets the (status, due_at) index serve the query instead of a scan of the whole table.
LOOKBACK = timedelta(days=7)


def queue_depths(settings: Settings) -> dict[str, int]:
    """Tasks waiting in each Celery queue, through the broker's own API (worker/broker.py).
    Raises when the broker does not answer."""
    from worker.broker import queue_depths as read

    return read(settings)


@dataclass(frozen=True)
class Outbox:
    by_status: dict[str, int]
    oldest_due_unsent_seconds: float


def outbox(session: Session, now: datetime) -> Outbox:
    counts: dict[str, int] = dict.fromkeys(MessageStatus, 0)
    for status, count in session.execute(
        select(Message.status, func.count()).group_by(Message.status)
    ):
        counts[status] = int(count)
    oldest = session.scalar(
        select(func.min(Message.due_at)).where(Message.status.in_(PENDING), Message.due_at <= now)
    )
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return Outbox(counts, age)


def recent(
    session: Session, now: datetime, period: timedelta = timedelta(hours=1)
) -> dict[str, Any]:
    """Sends and failures in the last `period`: sent by channel, failed (permanent or retries
    exhausted), undelivered (the carrier said so) and provider errors by code (each row counted
    once, with its latest code; a transient error later sent still counts)."""
    since = now - period
    window = (Message.status.in_(tuple(MessageStatus)), Message.due_at >= since - LOOKBACK)
    sent = {"sms": 0, "email": 0}
    for channel, count in session.execute(
        select(Message.channel, func.count())
        .where(*window, Message.sent_at >= since)
        .group_by(Message.channel)
    ):
        sent[channel] = int(count)
    failures: dict[str, int] = dict.fromkeys(states.FAILURES, 0)
    for status, count in session.execute(
        select(Message.status, func.count())
        .where(*window, Message.status.in_(tuple(failures)), Message.updated_at >= since)
        .group_by(Message.status)
    ):
        failures[status] = int(count)
    errors: dict[str, int] = {}
    for code, count in session.execute(
        select(Message.error_code, func.count())
        .where(*window, Message.error_code.is_not(None), Message.updated_at >= since)
        .group_by(Message.error_code)
    ):
        errors[str(code)] = int(count)
    return {MessageStatus.SENT: sent, **failures, "errors_by_code": dict(sorted(errors.items()))}


def open_urgent(session: Session, now: datetime) -> dict[str, Any]:
    """Urgent follow-ups not yet acknowledged (`open`) and acknowledged but not resolved; the age
    of the oldest unacknowledged one; and how many unacknowledged ones stand at each rung of the
    escalation ladder (by their latest page; `unpaged`: none yet)."""
    rows = session.execute(
        select(FollowUp.status, func.count(), func.min(FollowUp.created_at))
        .where(
            FollowUp.severity == "urgent",
            FollowUp.status.in_((FollowupStatus.OPEN, FollowupStatus.ACKNOWLEDGED)),
        )
        .group_by(FollowUp.status)
    ).all()
    by_status = {status: (int(count), first) for status, count, first in rows}
    count, first = by_status.get(FollowupStatus.OPEN, (0, None))
    return {
        "open": count,
        "acknowledged": by_status.get(FollowupStatus.ACKNOWLEDGED, (0, None))[0],
        "oldest_open_seconds": max((now - first).total_seconds(), 0.0) if first else None,
        "ladder": ladder_steps(session),
    }


def ladder_steps(session: Session) -> dict[str, int]:
    """Unacknowledged urgent follow-ups by the ladder rung of their latest page. Few rows (each
    one is a page nobody has answered), so the JSON detail is read here, not in SQL."""
    counts = dict.fromkeys((*ladder.STEPS, "unpaged"), 0)
    for detail, page_count in session.execute(
        select(FollowUp.detail, FollowUp.page_count).where(
            FollowUp.severity == "urgent", FollowUp.status == FollowupStatus.OPEN
        )
    ):
        pages = (detail or {}).get("escalation")
        last = pages[-1] if isinstance(pages, list) and pages else None
        step = last.get("step") if isinstance(last, dict) else None
        if step is None and page_count:
            step = "oncall"  # paged before the ladder kept its record: the on-call was paged
        counts[step if step in counts else "unpaged"] += 1
    return counts


def status(rt: Runtime, now: datetime) -> dict[str, Any]:
    """Everything `checkin ops status` shows, as one JSON-ready document.

    `queues` is None when no broker is configured; `broker` says "ok", "not configured" or the
    error's type (never its message: it may carry the broker URL)."""
    queues: dict[str, int] | None = None
    if not rt.settings.broker_url:
        broker = "not configured"
    else:
        try:
            queues = queue_depths(rt.settings)
            broker = "ok"
        except Exception as exc:
            broker = f"error: {type(exc).__name__}"
    with rt.sessions() as session:
        box = outbox(session, now)
        last_hour = recent(session, now)
        urgent = open_urgent(session, now)
        from worker.services.read.hl7_status import feed_state

        hl7_feed = feed_state(session, now)
    return {
        "at": now.isoformat(),
        "broker": broker,
        "queues": queues,
        "outbox": box.by_status,
        "oldest_due_unsent_seconds": round(box.oldest_due_unsent_seconds, 3),
        "last_hour": last_hour,
        "urgent_followups": urgent,
        "hl7_feed": hl7_feed,
    }
