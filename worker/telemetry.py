"""Metrics from inside the worker processes (Prometheus), served on a port of each worker.

Why a port per worker and not prometheus_client's multiprocess mode: a `checkin worker` is one
process (Celery's thread pool), so each one can serve its own registry, and that keeps what the
multiprocess mode cannot give: the default process and platform collectors (`process_*`,
`python_info`), live gauges, and no files to clean up when a worker dies. Prometheus scrapes
every worker's port (deploy/prometheus/prometheus.yml) and sums across them with `sum()`.

Nothing here exists until `enable()` is called (by `checkin worker`): the web app, beat, tests
and `checkin tick` run the same services with every hook a no-op, and the web app's
/metrics (computed from the database: worker/web/metrics.py) is left as it is.

The hooks sit on the send path, which is benchmarked: each is one global read when disabled,
and when enabled touches children bound in advance (or bound once per new label value and kept
in a dict), never a `labels()` call per message for the common outcomes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

if TYPE_CHECKING:
    from worker.services.outbound.record import Attempt

log = logging.getLogger(__name__)

CHANNELS = ("sms", "email")
PRIORITIES = ("urgent", "bulk")
QUEUES = ("urgent", "bulk")
TIERS = ("crisis", "routine")
#: Tasks beat starts on a schedule: their last run is the heartbeat the alerts watch.
BEAT_TASKS = ("plan", "dispatch", "escalate")
RECONCILE_OUTCOMES = ("found", "not_found", "left_unknown", "list_failed", "superseded")

PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0)
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
INBOUND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class _Metrics:
    """Every worker metric, in its own registry, with the common children bound once."""

    registry: CollectorRegistry
    sends: Counter
    not_attempted: Counter
    provider: Histogram
    pacing_wait: Histogram
    pacing_deferred: Counter
    due_to_enqueued: Histogram
    reconcile: Counter
    reconcile_foreign: Counter
    inbound: Histogram
    beat_task: Gauge
    task_seconds: Histogram
    lock: threading.Lock = field(default_factory=threading.Lock)
    children: dict[tuple[int, tuple[str, ...]], Any] = field(default_factory=dict)

    def child(self, metric: Counter | Histogram | Gauge, *labels: str) -> Any:
        """`metric.labels(*labels)`, bound once per label values and kept."""
        key = (id(metric), labels)
        found = self.children.get(key)
        if found is None:
            with self.lock:
                found = self.children.setdefault(key, metric.labels(*labels))
        return found


_M: _Metrics | None = None


def _build() -> _Metrics:
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    r = registry
    m = _Metrics(
        registry=registry,
        sends=Counter(
            "checkin_sends",
            "Provider calls by channel and how they ended (sent, failed, suppressed, retry, "
            "unknown, deferred), with the provider's error code when it gave one",
            ["channel", "outcome", "code"],
            registry=r,
        ),
        not_attempted=Counter(
            "checkin_sends_not_attempted",
            "Claimed messages settled without a provider call (consent withdrawn, appointment "
            "moved, too late, quiet hours, not ours any more), by outcome",
            ["outcome"],
            registry=r,
        ),
        provider=Histogram(
            "checkin_provider_request_seconds",
            "Duration of one provider call (Twilio, SMTP), by channel; result `answered` (it "
            "accepted the message) or `error` (it refused, timed out or could not be reached)",
            ["channel", "result"],
            buckets=PROVIDER_BUCKETS,
            registry=r,
        ),
        pacing_wait=Histogram(
            "checkin_pacing_wait_seconds",
            "Time an SMS waited for its turn at the sender's shared rate, by priority",
            ["priority"],
            buckets=WAIT_BUCKETS,
            registry=r,
        ),
        pacing_deferred=Counter(
            "checkin_pacing_deferred",
            "SMS put back to `scheduled` because their turn was further off than the longest "
            "wait (or pacing was unavailable), by priority",
            ["priority"],
            registry=r,
        ),
        due_to_enqueued=Histogram(
            "checkin_due_to_enqueued_seconds",
            "Time from a message's due time to the broker accepting its send task, by queue",
            ["queue"],
            buckets=LAG_BUCKETS,
            registry=r,
        ),
        reconcile=Counter(
            "checkin_reconcile_outcomes",
            "Sends with an open outcome looked up at the provider: found (now sent), not_found "
            "(sent again), left_unknown (the channel cannot be asked), list_failed, superseded "
            "(settled by someone else meanwhile)",
            ["outcome"],
            registry=r,
        ),
        reconcile_foreign=Counter(
            "checkin_reconcile_foreign_messages",
            "Messages the provider's list returned for a recipient that were not to that "
            "recipient or not from our sender (the list ignored its filter); never matched",
            ["field"],
            registry=r,
        ),
        inbound=Histogram(
            "checkin_inbound_processing_seconds",
            "Time from a reply's arrival at the webhook to its processing done and its answers "
            "(crisis reply, pages, acknowledgement) handed to the provider, by tier",
            ["tier"],
            buckets=INBOUND_BUCKETS,
            registry=r,
        ),
        beat_task=Gauge(
            "checkin_beat_task_last_run_timestamp_seconds",
            "When a task beat schedules (plan, dispatch, escalate) last started in this worker "
            "(Unix time): the heartbeat of beat, the broker and the worker together",
            ["task"],
            registry=r,
        ),
        task_seconds=Histogram(
            "checkin_task_seconds",
            "Duration of Celery tasks in this worker, by task name",
            ["task"],
            buckets=TASK_BUCKETS,
            registry=r,
        ),
    )
    # The common children, bound before the first message.
    for channel in CHANNELS:
        m.child(m.sends, channel, "sent", "")
        for result in ("answered", "error"):
            m.child(m.provider, channel, result)
    for priority in PRIORITIES:
        m.child(m.pacing_wait, priority)
        m.child(m.pacing_deferred, priority)
    for queue in QUEUES:
        m.child(m.due_to_enqueued, queue)
    for outcome in RECONCILE_OUTCOMES:
        m.child(m.reconcile, outcome)
    for what in ("recipient", "sender"):
        m.child(m.reconcile_foreign, what)
    for tier in TIERS:
        m.child(m.inbound, tier)
    return m


def enable() -> CollectorRegistry:
    """Create the worker metrics (once per process) and return their registry."""
    global _M
    if _M is None:
        _M = _build()
    return _M.registry


def disable() -> None:
    """Forget the metrics (tests): every hook is a no-op again."""
    global _M
    _M = None


def serve(host: str, port: int) -> int | None:
    """Serve the worker metrics on host:port in a daemon thread; returns the bound port (0
    picks a free one). A port that cannot be bound is logged, not fatal: a worker must not stop
    sending because its metrics cannot be scraped."""
    from prometheus_client import start_http_server

    registry = enable()
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error(
            "worker metrics: cannot listen on %s:%d (%s); this worker exports no metrics",
            host,
            port,
            exc.strerror or type(exc).__name__,
        )
        return None
    bound = int(server.server_address[1])
    log.info("worker metrics on http://%s:%d/metrics", host, bound)
    return bound


# -- hooks (each a no-op until enable()) -------------------------------------------------------


def sends_recorded(attempts: Iterable[Attempt], outcomes: Mapping[int, str]) -> None:
    """The provider calls of a chunk, as recorded: outcome per channel and error code."""
    m = _M
    if m is None:
        return
    counts: dict[tuple[str, str, str], int] = {}
    for a in attempts:
        outcome = outcomes.get(a.p.id)
        if outcome is None:
            continue
        key = (a.p.channel, outcome, (a.error.code or "") if a.error is not None else "")
        counts[key] = counts.get(key, 0) + 1
    for (channel, outcome, code), n in counts.items():
        m.child(m.sends, channel, outcome, code).inc(n)


def not_attempted(settled: Mapping[int, str]) -> None:
    m = _M
    if m is None or not settled:
        return
    for outcome in settled.values():
        m.child(m.not_attempted, outcome).inc()


def provider_call(channel: str, seconds: float, answered: bool) -> None:
    m = _M
    if m is not None:
        m.child(m.provider, channel, "answered" if answered else "error").observe(seconds)


def paced(priority: str, waited: float, deferred: bool) -> None:
    m = _M
    if m is None:
        return
    m.child(m.pacing_wait, priority).observe(waited)
    if deferred:
        m.child(m.pacing_deferred, priority).inc()


def enqueued(queue: str, lags: Iterable[float]) -> None:
    m = _M
    if m is None:
        return
    histogram = m.child(m.due_to_enqueued, queue)
    for lag in lags:
        histogram.observe(max(lag, 0.0))


def reconciled(outcome: str, n: int = 1) -> None:
    m = _M
    if m is not None and n:
        m.child(m.reconcile, outcome).inc(n)


def reconcile_foreign(what: str, n: int) -> None:
    m = _M
    if m is not None and n:
        m.child(m.reconcile_foreign, what).inc(n)


def inbound_processed(outcome: str, seconds: float) -> None:
    """A reply processed; `outcome` is process_inbound's (crisis ones start with "crisis")."""
    m = _M
    if m is not None:
        tier = "crisis" if outcome.startswith("crisis") else "routine"
        m.child(m.inbound, tier).observe(max(seconds, 0.0))


def beat_task_started(task: str) -> None:
    m = _M
    if m is not None:
        m.child(m.beat_task, task).set(time.time())


def install_task_timer() -> None:
    """Time every task of this worker (Celery's task_prerun/task_postrun signals). With the
    thread pool a task's two signals come in the same thread, so a thread-local holds the
    start."""
    from celery.signals import task_postrun, task_prerun

    local = threading.local()

    def _started(**_: Any) -> None:
        local.started = time.perf_counter()

    def _finished(task: Any = None, **_: Any) -> None:
        m = _M
        started = getattr(local, "started", None)
        if m is None or started is None or task is None:
            return
        local.started = None
        name = str(getattr(task, "name", "?")).removeprefix("checkin.")
        m.child(m.task_seconds, name).observe(time.perf_counter() - started)

    task_prerun.connect(_started, weak=False)
    task_postrun.connect(_finished, weak=False)
