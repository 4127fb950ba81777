"""The send step: messages through queued -> sending -> sent | failed | suppressed | ...

A chunk of ids (a bulk task carries up to CHECKIN_SEND_CHUNK_SIZE; an urgent one carries one)
goes through three steps:

1. one transaction claims the rows, re-checks consent, the appointment, the schedule, lateness and
   quiet hours (any may have changed since the row was planned), renders the bodies and commits
   them with the address (services/outbound/claim.py), so a crash leaves rows that say exactly what
   may have gone out;
2. the provider calls, concurrently when an executor is given, each after its turn at the
   sender's pace;
3. one transaction records what the provider said (services/outbound/record.py).

Every transition is a conditional UPDATE from the expected state, so a redelivered task is a
no-op. A provider call that hangs until its timeout does not hold the rest of its chunk in
`sending`: outcomes are recorded as they come, in rounds (STRAGGLER_SECONDS).

Rows are claimed only when a thread is free to send each of them at once (SendPool): a row
that sat `sending` in a queue behind other chunks' pacing waits could outlast the stale interval
after which reconciliation treats it as abandoned, and be sent twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import update

from worker import telemetry
from worker.channels import ChannelError, DeliveryUnknown, SendResult
from worker.domain.sms_text import segments
from worker.services.outbound import priority as send_priority
from worker.services.outbound.claim import MESSAGES, Prepared, claim_and_prepare
from worker.services.outbound.pacing import URGENT, Grant
from worker.services.outbound.record import Attempt, record
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.outbox import MessageStatus

log = logging.getLogger(__name__)

#: How long a bulk task waits for its chunk's provider calls. Those answered by then are
#: recorded together; a straggler (a provider that hangs until the timeout) is recorded by itself
#: when it answers, and the task moves on: one hung call must not hold the other 19 rows in
#: `sending`, nor the task's worker thread.
STRAGGLER_SECONDS = 1.0
#: Most straggler outcomes written in one transaction.
LATE_BATCH = 200


class SendPool:
    """The threads that make a worker process's provider calls, and a gate that lets a chunk
    claim its rows only when there is a free thread for each (`capacity` calls in flight).

    The gate is what keeps "how long a row stays `sending`" bounded by one pacing wait plus one
    provider call: a claimed row never queues behind other chunks' calls, so reconciliation's
    stale interval can never mistake a live attempt for an abandoned one."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.executor = ThreadPoolExecutor(capacity, thread_name_prefix="send")
        self._free = capacity
        self._cond = threading.Condition()
        self._late: queue.SimpleQueue[tuple[Runtime, Attempt]] = queue.SimpleQueue()
        self._recorder: threading.Thread | None = None

    def record_late(self, rt: Runtime, attempt: Attempt) -> None:
        """A straggler's outcome, written by one recorder thread per process, in batches: were
        each send thread to write its own, a paced backlog (where most calls wait past
        STRAGGLER_SECONDS) would open a database connection per send thread."""
        with self._cond:
            if self._recorder is None:
                self._recorder = threading.Thread(
                    target=self._record_loop, name="send-recorder", daemon=True
                )
                self._recorder.start()
        self._late.put((rt, attempt))

    def _record_loop(self) -> None:
        # A daemon: outcomes not yet written when the process exits leave their rows `sending`,
        # which reconciliation settles against the provider (never a blind resend).
        while True:
            batch = [self._late.get()]
            while len(batch) < LATE_BATCH:
                try:
                    batch.append(self._late.get_nowait())
                except queue.Empty:
                    break
            by_runtime: dict[int, tuple[Runtime, list[Attempt]]] = {}
            for rt, attempt in batch:
                by_runtime.setdefault(id(rt), (rt, []))[1].append(attempt)
            for rt, attempts in by_runtime.values():
                _record(rt, attempts)

    def acquire(self, n: int) -> None:
        """Wait until `n` threads are free and take them."""
        if not 0 < n <= self.capacity:
            raise ValueError(f"cannot reserve {n} of {self.capacity} send threads")
        with self._cond:
            self._cond.wait_for(lambda: self._free >= n)
            self._free -= n

    @property
    def free(self) -> int:
        with self._cond:
            return self._free

    def acquire_some(self, most: int) -> int:
        """Wait until at least one thread is free; take up to `most`. Returns how many."""
        if most <= 0:
            raise ValueError("must take at least one send thread")
        with self._cond:
            self._cond.wait_for(lambda: self._free > 0)
            taken = min(self._free, most)
            self._free -= taken
            return taken

    def release(self, n: int = 1) -> None:
        if n <= 0:
            return
        with self._cond:
            self._free += n
            self._cond.notify_all()

    @contextmanager
    def reserve(self, n: int) -> Iterator[None]:
        self.acquire(n)
        try:
            yield
        finally:
            self.release(n)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def send_one(rt: Runtime, message_id: int, now: datetime) -> str:
    """Send one queued message. Returns the outcome: sent, failed, suppressed, cancelled,
    deferred, retry, unknown, error, or skipped (the row was not `queued`: a duplicate task)."""
    return send_chunk(rt, [message_id], lambda: now, None)[message_id]


def send_many(
    rt: Runtime,
    ids: list[int],
    now_fn: Callable[[], datetime],
    pool: SendPool | None,
) -> dict[str, int]:
    """Send a chunk of messages; returns how many had each outcome (`in_flight`: a straggler
    still waiting for the provider, recorded when it answers)."""
    counts: dict[str, int] = {}
    if pool is None or len(ids) <= 1:
        outcomes = send_chunk(rt, ids, now_fn, None)
    else:
        # When the pool is busy the chunk goes in parts, each as large as the threads free at
        # that moment and claimed only then. Only the last part waits for its calls: waiting on
        # each would put every hung call of the chunk end to end in front of the rest (the
        # recorder writes what is not waited for).
        outcomes = {}
        remaining = list(dict.fromkeys(ids))
        while remaining:
            taken = pool.acquire_some(len(remaining))
            part, remaining = remaining[:taken], remaining[taken:]
            wait_seconds = 0.0 if remaining else STRAGGLER_SECONDS
            outcomes.update(send_chunk(rt, part, now_fn, pool, wait_seconds=wait_seconds))
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.info(
            "send chunk of %d: %s",
            len(ids),
            ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )
    return counts


def send_chunk(
    rt: Runtime,
    ids: list[int],
    now_fn: Callable[[], datetime],
    pool: SendPool | None,
    *,
    wait_seconds: float = STRAGGLER_SECONDS,
) -> dict[int, str]:
    """Send these messages; returns id -> outcome for every id. With a pool, the caller has
    acquired one thread per id (SendPool.acquire); each is released here as soon as it is free.
    Calls not answered within `wait_seconds` are `in_flight`, recorded by the pool's recorder."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    held = len(ids) if pool is not None else 0
    try:
        now = now_fn()
        with session_scope(rt.sessions) as session:
            claimed = claim_and_prepare(rt, session, ids, now)
    except Exception:
        # A database outage or a bug: the rows stay `queued` and the dispatcher re-sends them.
        log.exception("a send chunk of %d could not be claimed; recovery will retry", len(ids))
        if pool is not None:
            pool.release(held)
        return {mid: "error" for mid in ids}
    outcomes = dict(claimed.settled)
    telemetry.not_attempted(claimed.settled)
    todo = claimed.prepared
    if pool is not None:
        pool.release(held - len(todo))  # rows settled without a call need no thread
    if not todo:
        return outcomes
    # A single message (every urgent task) runs in the calling thread: it must not queue behind
    # bulk sends holding the executor's threads while they wait for their turn at the sender.
    if pool is None or len(todo) == 1:
        try:
            outcomes.update(_record(rt, [_attempt(rt, p, now_fn) for p in todo]))
        finally:
            if pool is not None:
                pool.release(len(todo))
        return outcomes
    futures: set[Future[Attempt]] = set()
    for p in todo:
        future = pool.executor.submit(_attempt, rt, p, now_fn)
        future.add_done_callback(lambda _f: pool.release(1))
        futures.add(future)
    done, pending = wait(futures, timeout=wait_seconds)
    if done:
        outcomes.update(_record(rt, [f.result() for f in done]))
    for future in pending:
        future.add_done_callback(lambda f: pool.record_late(rt, f.result()))
    for p in todo:
        outcomes.setdefault(p.id, "in_flight")
    return outcomes


def _record(rt: Runtime, attempts: list[Attempt]) -> dict[int, str]:
    try:
        return record(rt, attempts)
    except Exception:
        # The provider has answered but the database would not take it: the rows stay
        # `sending`, and reconciliation settles them against the provider's list, never resends.
        log.exception(
            "outcomes of %d sends could not be recorded; reconciliation will", len(attempts)
        )
        return {a.p.id: "error" for a in attempts}


def _attempt(rt: Runtime, p: Prepared, now_fn: Callable[[], datetime]) -> Attempt:
    """Wait for the sender's pace, call the provider; never raises."""
    at = now_fn()
    grant: Grant | None = None
    try:
        sender = send_priority.sender(rt.settings, p) if p.channel == "sms" else None
        if p.channel == "sms" and rt.pacer is not None and not rt.pacer.paces(sender):
            telemetry.paced(p.priority, 0.0, False)  # no limit: no segments to count, no wait
        elif p.channel == "sms" and rt.pacer is not None:
            # The sender's shared limit (services/outbound/pacing.py), taken just before the
            # provider call.
            # Crisis replies first, then pages, then other replies, then bulk; pages may have a
            # sender of their own (services/outbound/priority.py).
            lvl = send_priority.level(p)
            turn = rt.pacer.turn(
                segments(p.body),
                urgent=p.priority == "urgent",
                sender=sender,
                level=lvl,
                yield_for=send_priority.yield_for(p, at),
                # An acknowledgement does not hold a worker thread behind crisis replies: it
                # goes back to `scheduled`, and the next dispatch sends it.
                defer_when_behind=lvl == URGENT,
            )
            telemetry.paced(p.priority, turn.waited, turn.defer is not None)
            at += timedelta(seconds=turn.waited)
            if turn.defer is not None:
                return Attempt(p, at, defer=turn.defer)
            grant = turn.grant
        if not _lease_covers(rt, p):
            if grant is not None and rt.pacer is not None:
                rt.pacer.answered(grant)
            return Attempt(p, at, lost=True)
        return Attempt(p, at, result=_call_provider(rt, p, grant))
    except DeliveryUnknown:
        log.warning("message %d: provider outcome unknown; will reconcile", p.id)
        return Attempt(p, at, unknown=True)
    except ChannelError as exc:
        return Attempt(p, at, error=exc)
    except Exception:
        log.exception("message %d: unexpected error from the %s channel", p.id, p.channel)
        return Attempt(p, at, error=ChannelError("unexpected channel error", permanent=False))


def _lease_covers(rt: Runtime, p: Prepared) -> bool:
    """Whether this process's lease surely outlives the call about to start (services/outbound/lease.py).
    When it cannot vouch for that (Redis unreachable for a few seconds), the row is disowned
    first, so that only the stale rule can ever judge it abandoned. False: the row is no longer
    ours (reconciliation took it) or could not be disowned: it must not be sent from here."""
    lease = rt.lease
    if lease is None:
        return True
    # The lease is sized for an SMS call. An email row whose lease lapses mid-call is never
    # resent (SMTP cannot be reconciled: it becomes `unknown` for an operator), so it needs
    # the same cover only.
    if lease.covers(p.owner, rt.settings.twilio_timeout_seconds + 1.0):
        return True
    # Either the lease cannot vouch for the call, or the row was claimed under a lease this
    # process has since given up as lapsed (lease.py): reconciliation may have settled the row
    # and another worker sent it. The compare-and-set below is what decides.
    claimed_by = (
        MESSAGES.c.sending_by.is_(None) if p.owner is None else MESSAGES.c.sending_by == p.owner
    )
    try:
        with session_scope(rt.sessions) as session:
            res = session.execute(
                update(MESSAGES)
                .where(
                    MESSAGES.c.id == p.id,
                    MESSAGES.c.status == MessageStatus.SENDING,
                    claimed_by,
                )
                .values(sending_by=None)
            )
    except Exception:
        log.exception("message %d: could not disown the row; not sent from here", p.id)
        return False
    if getattr(res, "rowcount", 0) != 1:
        log.warning("message %d: no longer this worker's to send; not sent", p.id)
        return False
    log.warning("message %d: send lease not renewed lately; left to the stale rule", p.id)
    return True


def _call_provider(rt: Runtime, p: Prepared, grant: Grant | None) -> SendResult:
    answered = False
    started = time.monotonic()
    try:
        if p.channel == "sms":
            callback = f"{rt.settings.public_url}/webhooks/twilio/status"
            frm = send_priority.sender(rt.settings, p)
            if frm is not None:
                result = rt.channels.sms.send_sms(
                    p.to, p.body, status_callback=callback, sender=frm
                )
            else:
                result = rt.channels.sms.send_sms(p.to, p.body, status_callback=callback)
        else:
            if p.headers:
                result = rt.channels.email.send_email(
                    p.to,
                    p.subject or "",
                    p.body,
                    p.html,
                    message_id=p.message_id_header,
                    headers=dict(p.headers),
                )
            else:
                result = rt.channels.email.send_email(
                    p.to, p.subject or "", p.body, p.html, message_id=p.message_id_header
                )
        answered = True
        return result
    finally:
        telemetry.provider_call(p.channel, time.monotonic() - started, answered)
        if grant is not None and rt.pacer is not None:
            # The sender's slots are dated from the provider's answer (services/outbound/pacing.py).
            rt.pacer.answered(grant, learn=answered, took=time.monotonic() - started)
