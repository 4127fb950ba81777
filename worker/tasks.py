"""Celery tasks: thin. Ids in, one service call, nothing else. Registered on `worker.celery_app:app`
(their names are what the broker carries: never rename them).

Transient provider errors are not retried through Celery: the send step puts the row back to
`scheduled` with a backoff `due_at`, so the database, not a countdown in Redis, decides when it
is due again (DESIGN.md: nothing scheduled far ahead in the broker).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery.signals import worker_init, worker_ready
from sqlalchemy.exc import InterfaceError, OperationalError

from worker import telemetry
from worker.broker import inbound_options
from worker.celery_app import app, app_settings, send_task_options
from worker.config import Settings
from worker.domain.keywords import detect_crisis
from worker.services.clinical.crisis import escalate
from worker.services.clinical.expiry import expire_checkins
from worker.services.inbound.handle import handle_and_reply
from worker.services.inbound.receive import receive_sms, unprocessed
from worker.services.outbound.dispatch import dispatch, recover
from worker.services.outbound.plan import plan
from worker.services.outbound.send import SendPool, send_many
from worker.services.outbound.send_now import send_now
from worker.services.outbound.status_callbacks import apply_status
from worker.services.runtime import Runtime, build_runtime

if TYPE_CHECKING:
    from worker.services.outbound.lease import Lease

log = logging.getLogger(__name__)

INBOUND_SWEEP_AFTER = timedelta(seconds=30)
# A reply the web app handed over unstored is tried every few seconds until the database
# answers; after a day it is given up (logged at ERROR).
UNSTORED_RETRY_SECONDS = 5
UNSTORED_GIVE_UP = timedelta(days=1)
#: Database connections per worker process (and as many again in overflow).
DB_POOL_SIZE = 20


class _Process:
    """Per-process state, built on first use in the worker (after any fork), never at import."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Real time, or the rehearsal clock of CHECKIN_CLOCK: the one place tasks read the time.
        self.utcnow = settings.now
        self._lock = threading.Lock()
        self._rt: Runtime | None = None
        self._pool: SendPool | None = None

    @property
    def runtime(self) -> Runtime:
        with self._lock:
            if self._rt is None:
                # Database work happens in the task threads and one recorder thread, never in
                # the many send threads (services/outbound/send.py): a small pool serves any `-c`.
                rt = build_runtime(self.settings, pool_size=DB_POOL_SIZE)
                rt.lease = start_lease(rt)
                # Published only once complete: a runtime without its lease would send without
                # the lease's protection (services/outbound/send.py).
                self._rt = rt
            return self._rt

    @property
    def pool(self) -> SendPool:
        with self._lock:
            if self._pool is None:
                self._pool = SendPool(self.settings.send_concurrency)
            return self._pool


def start_lease(rt: Runtime) -> Lease | None:
    """This worker process's send lease (services/outbound/lease.py), renewed from now on."""
    if rt.redis is None:
        return None
    from worker.services.outbound.lease import Lease, lease_ttl

    lease = Lease(rt.redis, ttl=lease_ttl(rt.settings.twilio_timeout_seconds))
    lease.start()
    return lease


_process: _Process | None = None
_process_lock = threading.Lock()


def process() -> _Process:
    """This process's state, built from the app's settings on first use."""
    global _process
    with _process_lock:
        if _process is None:
            _process = _Process(app_settings())
        return _process


def _enqueue_send(ids: list[int], queue: str) -> None:
    send.apply_async(args=[ids], **send_task_options(process().settings, queue))


@app.task(name="checkin.send", ignore_result=True)  # type: ignore[untyped-decorator]
def send(ids: list[int]) -> dict[str, int]:
    p = process()
    return send_many(p.runtime, [int(i) for i in ids], p.utcnow, p.pool)


@app.task(name="checkin.recover", ignore_result=True)  # type: ignore[untyped-decorator]
def recover_task() -> dict[str, int]:
    p = process()
    result = recover(p.runtime, p.utcnow(), _enqueue_send)
    return {"reconciled": result.reconciled, "requeued": result.requeued}


@app.task(name="checkin.plan", ignore_result=True)  # type: ignore[untyped-decorator]
def plan_task() -> int:
    p = process()
    telemetry.beat_task_started("plan")
    return plan(p.runtime, p.utcnow())


@app.task(name="checkin.dispatch", ignore_result=True)  # type: ignore[untyped-decorator]
def dispatch_task() -> dict[str, Any]:
    p = process()
    telemetry.beat_task_started("dispatch")
    now = p.utcnow()
    # Recovery runs every few seconds by itself (checkin.recover), not here.
    result = dispatch(p.runtime, now, _enqueue_send, with_recovery=False)
    # Replies stored while the broker was unreachable, or whose worker died: process them.
    stale = unprocessed(p.runtime, now, INBOUND_SWEEP_AFTER)
    for inbound_id in stale:
        inbound.apply_async(args=[inbound_id], queue="urgent", routing_key="urgent")
    return {"claimed": result.claimed, "requeued": result.requeued, "inbound": len(stale)}


@app.task(name="checkin.inbound", ignore_result=True)  # type: ignore[untyped-decorator]
def inbound(inbound_id: int) -> str:
    """Process one stored reply; its crisis reply, page or acknowledgement go out from here,
    now, without waiting for a dispatch cycle."""
    p = process()
    result, _ = handle_and_reply(p.runtime, int(inbound_id), p.utcnow)
    if result.received_at is not None:
        telemetry.inbound_processed(
            result.outcome, (p.utcnow() - result.received_at).total_seconds()
        )
    return result.outcome


@app.task(  # type: ignore[untyped-decorator]
    name="checkin.inbound_unstored", bind=True, ignore_result=True, max_retries=None
)
def inbound_unstored(self: Any, sid: str, from_: str, to: str, body: str, received_at: str) -> str:
    """A reply the web app could not store (the database was unreachable): store it with
    the time it came in, once the database answers again, then process it as any other."""
    p = process()
    received = datetime.fromisoformat(received_at)
    try:
        inbound_id, new = receive_sms(
            p.runtime, sid=sid, from_=from_, to=to or None, body=body, now=received
        )
    except (OperationalError, InterfaceError) as exc:
        if p.utcnow() - received > UNSTORED_GIVE_UP:
            log.error("an inbound reply could not be stored for %s; dropped", UNSTORED_GIVE_UP)
            return "dropped"
        raise self.retry(countdown=UNSTORED_RETRY_SECONDS, exc=exc) from None
    if new:
        crisis = detect_crisis(body) is not None
        inbound.apply_async(args=[inbound_id], **inbound_options(p.settings, crisis=crisis))
    return "stored" if new else "duplicate"


@app.task(  # type: ignore[untyped-decorator]
    name="checkin.status_unapplied", bind=True, ignore_result=True, max_retries=None
)
def status_unapplied(self: Any, sid: str, status: str, code: str, received_at: str) -> str:
    """A status callback the web app could not apply (the database was unreachable): apply
    it, as of the time it came in, once the database answers again."""
    p = process()
    received = datetime.fromisoformat(received_at)
    try:
        apply_status(p.runtime, sid, status, code or None, received)
    except (OperationalError, InterfaceError) as exc:
        if p.utcnow() - received > UNSTORED_GIVE_UP:
            log.error("a status callback could not be applied for %s; dropped", UNSTORED_GIVE_UP)
            return "dropped"
        raise self.retry(countdown=UNSTORED_RETRY_SECONDS, exc=exc) from None
    return "applied"


@app.task(name="checkin.escalate", ignore_result=True)  # type: ignore[untyped-decorator]
def escalate_task() -> int:
    p = process()
    telemetry.beat_task_started("escalate")
    now = p.utcnow()
    expire_checkins(p.runtime, now)
    pages = escalate(p.runtime, now)
    send_now(p.runtime, pages, p.utcnow())
    return len(pages)


@worker_init.connect  # type: ignore[untyped-decorator]
def _anchor_clock(**_: Any) -> None:
    """Build the process state as the worker starts, so a rehearsal clock (CHECKIN_CLOCK without
    an anchor) starts with the worker, not with its first task."""
    process()


#: Pools whose tasks run in the worker's own process: the runtime built there is the one the
#: tasks use. Under prefork it would be built in the parent and inherited, dead threads and all,
#: by every child forked later; there each child builds its own on first use.
_IN_PROCESS_POOLS = ("celery.concurrency.thread", "celery.concurrency.solo")


@worker_ready.connect  # type: ignore[untyped-decorator]
def _warm_runtime(sender: Any = None, **_: Any) -> None:
    """Build the runtime (imports, database engine, channels, send lease) as the worker comes up,
    not in its first task: otherwise the first crisis reply after a restart waits a second or
    two for imports. In a thread, so the consumer starts at once; a task that arrives meanwhile
    waits on the same build (the runtime's lock). A failure here is only logged: the first task
    builds it again and reports what is wrong."""
    pool = getattr(sender, "pool", None)
    if type(pool).__module__ not in _IN_PROCESS_POOLS:
        return

    def warm() -> None:
        try:
            process().runtime  # noqa: B018 (built on first access)
        except Exception:
            log.warning(
                "could not prepare the runtime at start; the first task will", exc_info=True
            )

    threading.Thread(target=warm, name="warm-runtime", daemon=True).start()
