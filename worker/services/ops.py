"""What an operator looks at: queue depths, the outbox, lag, recent sends and failures, and the
urgent follow-ups nobody has closed. Read from the database and the broker at the moment asked,
so every process (CLI, web app) sees the same figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.store.models import MESSAGE_STATUSES, FollowUp, Message

if TYPE_CHECKING:
    from redis import Redis

    from worker.services.runtime import Runtime

#: The Celery queues (worker/celery_app.py) and kombu's Redis layout for them: a list per queue
#: and priority step, named "<queue>\x06\x16<step>" for the non-zero steps.
QUEUES = ("urgent", "bulk")
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
#: Tasks handed to a worker and not yet acknowledged (kombu's ack emulation).
_UNACKED = "unacked"
#: Rows still on their way out: due-but-unsent counts these.
PENDING = ("scheduled", "queued", "sending")
#: A message leaves the outbox within a few hours of its due time or not at all (lateness
#: cut-offs), so "sent in the last hour" only needs rows due in the week before: this bound
#: lets the (status, due_at) index serve the query instead of a scan of the whole table.
LOOKBACK = timedelta(days=7)


def queue_depths(client: Redis) -> dict[str, int]:
    """Messages waiting in each Celery queue, plus `unacked` (taken by a worker, not finished).
    Raises redis.RedisError when the broker does not answer."""
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
        for step in _PRIORITY_STEPS:
            pipe.llen(f"{queue}{_PRIORITY_SEP}{step}")
    pipe.hlen(_UNACKED)
    counts = [int(n) for n in pipe.execute()]
    per = 1 + len(_PRIORITY_STEPS)
    depths = {queue: sum(counts[i * per : (i + 1) * per]) for i, queue in enumerate(QUEUES)}
    depths[_UNACKED] = counts[-1]
    return depths


@dataclass(frozen=True)
class Outbox:
    by_status: dict[str, int]
    oldest_due_unsent_seconds: float


def outbox(session: Session, now: datetime) -> Outbox:
    counts = dict.fromkeys(MESSAGE_STATUSES, 0)
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
    window = (Message.status.in_(MESSAGE_STATUSES), Message.due_at >= since - LOOKBACK)
    sent = {"sms": 0, "email": 0}
    for channel, count in session.execute(
        select(Message.channel, func.count())
        .where(*window, Message.sent_at >= since)
        .group_by(Message.channel)
    ):
        sent[channel] = int(count)
    failures = dict.fromkeys(("failed", "undelivered"), 0)
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
    return {"sent": sent, **failures, "errors_by_code": dict(sorted(errors.items()))}


def open_urgent(session: Session, now: datetime) -> dict[str, Any]:
    """Urgent follow-ups not yet acknowledged (`open`) and acknowledged but not resolved."""
    rows = session.execute(
        select(FollowUp.status, func.count(), func.min(FollowUp.created_at))
        .where(FollowUp.severity == "urgent", FollowUp.status.in_(("open", "acknowledged")))
        .group_by(FollowUp.status)
    ).all()
    by_status = {status: (int(count), first) for status, count, first in rows}
    count, first = by_status.get("open", (0, None))
    return {
        "open": count,
        "acknowledged": by_status.get("acknowledged", (0, None))[0],
        "oldest_open_seconds": max((now - first).total_seconds(), 0.0) if first else None,
    }


def status(rt: Runtime, now: datetime) -> dict[str, Any]:
    """Everything `checkin ops status` shows, as one JSON-ready document.

    `queues` is None when no broker is configured; `broker` says "ok", "not configured" or the
    error's type (never its message: it may carry the broker URL)."""
    queues: dict[str, int] | None = None
    if rt.redis is None:
        broker = "not configured"
    else:
        import redis

        try:
            queues = queue_depths(rt.redis)
            broker = "ok"
        except redis.RedisError as exc:
            broker = f"error: {type(exc).__name__}"
    with rt.sessions() as session:
        box = outbox(session, now)
        last_hour = recent(session, now)
        urgent = open_urgent(session, now)
        from worker.services.hl7_ops import feed_state

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
