"""The dispatcher: claim what is due now and hand ids to the broker; recover what a crash left.

The claim is a conditional UPDATE (scheduled -> queued) trusted by its row count; on PostgreSQL
the candidate rows are locked with FOR UPDATE SKIP LOCKED so two dispatchers never wait on each
other. Only ids travel through the broker; the row is the truth.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import case, or_, select, update

from worker import telemetry
from worker.services.outbound.reconcile import reconcile
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Message

if TYPE_CHECKING:
    from redis.lock import Lock

log = logging.getLogger(__name__)

#: Urgent rows left `queued` this long are handed to the broker again (see stale_queued).
URGENT_REQUEUE_AFTER = timedelta(seconds=10)
RECOVERY_LOCK = "checkin:recover:lock"
#: A pass that takes longer than this (a provider that hangs) lets the next one start.
RECOVERY_LOCK_SECONDS = 60
#: enqueue(ids, queue) hands a chunk of message ids to the workers; raises if the broker is down.
Enqueue = Callable[[list[int], str], None]


@dataclass
class DispatchResult:
    claimed: int = 0
    requeued: int = 0
    reconciled: int = 0
    enqueue_failed: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)


def claim_due(
    rt: Runtime, now: datetime, limit: int, due: dict[int, datetime] | None = None
) -> list[tuple[int, str]]:
    """Claim up to `limit` due rows, urgent first. Returns (id, queue) pairs now `queued`;
    `due`, when given, receives each claimed row's due time."""
    with session_scope(rt.sessions) as session:
        candidates = (
            select(Message.id)
            .where(Message.status == "scheduled", Message.due_at <= now)
            .order_by(case((Message.priority == "urgent", 0), else_=1), Message.due_at, Message.id)
            .limit(limit)
        )
        if rt.is_postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list(session.scalars(candidates))
        if not ids:
            return []
        claimed = session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == "scheduled")
            .values(status="queued", queued_at=now, updated_at=now)
            .returning(Message.id, Message.priority, Message.due_at)
        ).all()
    if due is not None:
        due.update((mid, at) for mid, _prio, at in claimed)
    return [(mid, "urgent" if prio == "urgent" else "bulk") for mid, prio, _at in claimed]


def stale_queued(rt: Runtime, now: datetime, limit: int) -> list[tuple[int, str]]:
    """Rows queued long ago whose task may be lost (broker restarted empty, worker killed).

    Re-sending the id is safe: the send step's queued -> sending claim makes a duplicate task a
    no-op. queued_at is refreshed so each row is re-sent at most once per interval. Urgent rows
    are re-sent after URGENT_REQUEUE_AFTER: a crisis reply claimed by a worker that died holds
    no broker task at all, and an urgent queue is short, so a spare task costs little.
    """
    cutoff = now - timedelta(seconds=rt.settings.requeue_after_seconds)
    urgent_cutoff = now - min(
        URGENT_REQUEUE_AFTER, timedelta(seconds=rt.settings.requeue_after_seconds)
    )
    with session_scope(rt.sessions) as session:
        rows = session.execute(
            select(Message.id, Message.priority)
            .where(
                Message.status == "queued",
                or_(
                    Message.queued_at < cutoff,
                    (Message.priority == "urgent") & (Message.queued_at < urgent_cutoff),
                ),
            )
            .order_by(case((Message.priority == "urgent", 0), else_=1), Message.queued_at)
            .limit(limit)
        ).all()
        if not rows:
            return []
        session.execute(
            update(Message)
            .where(Message.id.in_([r[0] for r in rows]), Message.status == "queued")
            .values(queued_at=now)
        )
    return [(mid, "urgent" if prio == "urgent" else "bulk") for mid, prio in rows]


def claim_budget(rt: Runtime) -> int:
    """How many rows one dispatch cycle may claim. With pacing on, no more than the senders can
    take in a few ticks: rows claimed beyond that only wait at the limiter and go back to
    `scheduled` (paced), churning the broker for nothing."""
    s = rt.settings
    budget = s.dispatch_max_per_cycle
    if s.sms_rate > 0 and rt.settings.broker_url:
        rates = [s.sms_rate, *s.sms_rate_per_sender.values()]
        paced = int(max(rates) * s.tick_seconds * 4)
        budget = min(budget, max(s.dispatch_batch_size, paced))
    return budget


def recover(rt: Runtime, now: datetime, enqueue: Enqueue) -> DispatchResult:
    """The recovery half of a dispatch cycle, run by itself every few seconds (beat's
    `recover`): settle what a crash left `sending` or `unknown`, re-send what it left `queued`.
    One pass at a time (a Redis lock when there is one): a pass that waits on the provider
    must not be joined by the next ones asking it the same questions."""
    result = DispatchResult()
    lock = _recovery_lock(rt)
    if lock is None:
        return result
    try:
        _enqueue(rt, _recovered(rt, now, result), now, enqueue, result)
    finally:
        if lock is not True:
            with contextlib.suppress(Exception):
                lock.release()
    return result


def _recovery_lock(rt: Runtime) -> Lock | Literal[True] | None:
    """The recovery lock taken (True: there is no Redis to take it in), or None: a pass runs."""
    if rt.redis is None:
        return True
    import redis

    lock = rt.redis.lock(RECOVERY_LOCK, timeout=RECOVERY_LOCK_SECONDS, blocking=False)
    try:
        return lock if lock.acquire(blocking=False) else None
    except redis.RedisError:
        return True  # every move is conditional: two passes at once are only wasteful


def _recovered(rt: Runtime, now: datetime, result: DispatchResult) -> list[tuple[int, str]]:
    requeue = reconcile(rt, now)
    result.reconciled = len(requeue.resolved)
    work = [(mid, "urgent" if urgent else "bulk") for mid, urgent in requeue.to_send]
    stale = stale_queued(rt, now, rt.settings.dispatch_batch_size)
    result.requeued = len(stale) + len(requeue.to_send)
    return work + stale


def dispatch(
    rt: Runtime, now: datetime, enqueue: Enqueue, *, with_recovery: bool = True
) -> DispatchResult:
    """One dispatch cycle: reconcile, re-send stale, claim due, enqueue in chunks per queue.
    `with_recovery=False` when `recover` runs on its own schedule (Celery beat)."""
    result = DispatchResult()
    limit = rt.settings.dispatch_batch_size
    work = _recovered(rt, now, result) if with_recovery else []
    claimed: list[tuple[int, str]] = []
    due: dict[int, datetime] = {}  # claimed rows' due times, for the due-to-enqueued metric
    budget = claim_budget(rt)
    # Keep claiming while batches come back full: one batch per tick would cap the whole system
    # at batch/tick (500 per 15 s = 33/s) however many workers wait.
    while len(claimed) < budget:
        batch = claim_due(rt, now, min(limit, budget - len(claimed)), due)
        claimed += batch
        if len(batch) < limit:
            break
    result.claimed = len(claimed)
    work += claimed
    _enqueue(rt, work, now, enqueue, result, due)
    return result


def _enqueue(
    rt: Runtime,
    work: list[tuple[int, str]],
    now: datetime,
    enqueue: Enqueue,
    result: DispatchResult,
    due: dict[int, datetime] | None = None,
) -> None:
    due = due or {}
    chunk = rt.settings.send_chunk_size
    for queue in ("urgent", "bulk"):
        ids = [mid for mid, q in work if q == queue]
        result.by_queue[queue] = len(ids)
        # Urgent messages go one per task so none waits behind another's provider call.
        size = 1 if queue == "urgent" else chunk
        for i in range(0, len(ids), size):
            part = ids[i : i + size]
            try:
                enqueue(part, queue)
                telemetry.enqueued(
                    queue, ((now - due[m]).total_seconds() for m in part if m in due)
                )
            except Exception:
                log.exception("enqueue failed; %d messages go back to scheduled", len(part))
                _unclaim(rt, part, now)
                result.enqueue_failed += len(part)


def _unclaim(rt: Runtime, ids: list[int], now: datetime) -> None:
    with session_scope(rt.sessions) as session:
        session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == "queued")
            .values(status="scheduled", queued_at=None, updated_at=now)
        )
