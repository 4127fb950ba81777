"""Prometheus metrics.

Everything about messages and follow-ups is computed from the database at scrape time, so the
figures are the same whichever web process is scraped and whatever number of workers on however
many machines did the work; queue depths are read from the broker at scrape time. Only webhook
latency is measured in the web process itself (a Histogram per process: scrape each one).

Figures over "the last hour" are gauges (a gauge histogram for the lag): query them as they
are, e.g. `histogram_quantile(0.95, checkin_due_to_sent_lag_seconds_bucket)`, not with rate().
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.services.read import ops
from worker.services.runtime import Runtime
from worker.store.models import FollowUp
from worker.store.models import Message as Row
from worker.store.outbox import ACCEPTED, MessageStatus
from worker.store.record_status import FollowupStatus
from worker.web.inbound_metrics import InboundCollector

#: Upper bounds (seconds) of the due-to-sent lag buckets.
LAG_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
HOUR = timedelta(hours=1)
#: The webhook routes timed, by path (a fixed set: no unbounded label values).
WEBHOOK_ROUTES = {"/webhooks/twilio/sms": "sms", "/webhooks/twilio/status": "status"}


def _seconds_between(rt: Runtime, start: Any, end: Any) -> ColumnElement[Any]:
    if rt.is_postgres:
        return func.extract("epoch", end - start)
    # SQLite stores the UTC instants as text; julianday() reads them as days.
    return (func.julianday(end) - func.julianday(start)) * literal(86400.0)


class DatabaseCollector(Collector):
    """Outbox, lag, sends, errors, follow-ups and escalations, from the database; queue depths
    from the broker."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        now = self.rt.now()
        with self.rt.sessions() as session:
            box = ops.outbox(session, now)
            recent = ops.recent(session, now, HOUR)
            lag = self._lag(session, now)
            followups = session.execute(
                select(FollowUp.severity, FollowUp.status, func.count())
                .where(FollowUp.status != FollowupStatus.RESOLVED)
                .group_by(FollowUp.severity, FollowUp.status)
            ).all()
            urgent = ops.open_urgent(session, now)
            escalated = session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(FollowUp.page_count - 1), 0),
                ).where(
                    FollowUp.severity == "urgent",
                    FollowUp.status != FollowupStatus.RESOLVED,
                    FollowUp.page_count > 1,
                )
            ).one()
        yield from self._outbox(box)
        yield from self._recent(recent)
        yield lag
        yield from self._followups(followups, escalated)
        yield from self._ladder(urgent)
        yield from self._queues()

    def _outbox(self, box: ops.Outbox) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            "checkin_outbox_messages", "Outbound messages by status", labels=["status"]
        )
        for status, count in box.by_status.items():
            by_status.add_metric([status], count)
        yield by_status
        oldest = GaugeMetricFamily(
            "checkin_oldest_due_unsent_seconds",
            "Age of the oldest message that is due and not yet sent (scheduled, queued, sending)",
        )
        oldest.add_metric([], box.oldest_due_unsent_seconds)
        yield oldest

    def _recent(self, recent: dict[str, Any]) -> Iterator[Metric]:
        sent = GaugeMetricFamily(
            "checkin_sent_last_hour", "Messages sent in the last hour", labels=["channel"]
        )
        for channel, count in recent[MessageStatus.SENT].items():
            sent.add_metric([channel], count)
        yield sent
        failed = GaugeMetricFamily(
            "checkin_failed_last_hour",
            "Messages that failed (permanently, or out of retries) or were reported undelivered "
            "in the last hour",
            labels=["status"],
        )
        for status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED):
            failed.add_metric([status.value], recent[status])
        yield failed
        errors = GaugeMetricFamily(
            "checkin_provider_errors_last_hour",
            "Messages whose latest provider error code was recorded in the last hour, by code",
            labels=["code"],
        )
        for code, count in recent["errors_by_code"].items():
            errors.add_metric([code], count)
        yield errors

    def _lag(self, session: Any, now: datetime) -> Metric:
        since = now - HOUR
        lag = _seconds_between(self.rt, Row.due_at, Row.sent_at)
        columns = [func.count(), func.coalesce(func.sum(lag), 0.0)]
        columns += [func.coalesce(func.sum(case((lag <= le, 1), else_=0)), 0) for le in LAG_BUCKETS]
        row = session.execute(
            select(*columns).where(
                Row.status.in_(ACCEPTED),
                Row.due_at >= since - ops.LOOKBACK,
                Row.sent_at >= since,
            )
        ).one()
        total, lag_sum, *cumulative = row
        buckets = [(str(le), int(n)) for le, n in zip(LAG_BUCKETS, cumulative, strict=True)]
        buckets.append(("+Inf", int(total)))
        family = GaugeHistogramMetricFamily(
            "checkin_due_to_sent_lag_seconds",
            "Seconds from a message's due time to the provider accepting it, for messages sent "
            "in the last hour (due time after any retry backoff or quiet-hours move)",
            labels=[],
        )
        family.add_metric([], buckets, float(lag_sum))
        return family

    def _followups(self, rows: Any, escalated: Any) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "checkin_open_followups",
            "Follow-ups not resolved, by severity and status (open or acknowledged)",
            labels=["severity", "status"],
        )
        seen = {(sev, st): int(n) for sev, st, n in rows}
        for severity in ("urgent", "high", "routine"):
            for status in (FollowupStatus.OPEN, FollowupStatus.ACKNOWLEDGED):
                family.add_metric([severity, status], seen.pop((severity, status), 0))
        for (severity, status), count in seen.items():
            family.add_metric([severity, status], count)
        yield family
        count, repages = escalated
        items = GaugeMetricFamily(
            "checkin_escalated_followups",
            "Urgent follow-ups not resolved that were re-paged because nobody acknowledged them",
        )
        items.add_metric([], int(count))
        yield items
        pages = GaugeMetricFamily(
            "checkin_escalation_pages",
            "Re-pages sent for urgent follow-ups that are not resolved",
        )
        pages.add_metric([], int(repages))
        yield pages

    def _ladder(self, urgent: dict[str, Any]) -> Iterator[Metric]:
        oldest = GaugeMetricFamily(
            "checkin_oldest_unacknowledged_urgent_seconds",
            "Age of the oldest urgent follow-up nobody has acknowledged (0 when there is none)",
        )
        oldest.add_metric([], urgent["oldest_open_seconds"] or 0.0)
        yield oldest
        steps = GaugeMetricFamily(
            "checkin_escalation_step_followups",
            "Unacknowledged urgent follow-ups by the escalation ladder rung of their latest page "
            "(oncall, backup, admins; unpaged: none yet)",
            labels=["step"],
        )
        for step, count in urgent["ladder"].items():
            steps.add_metric([step], count)
        yield steps

    def _queues(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("checkin_broker_up", "1 when the broker answered this scrape")
        depth = GaugeMetricFamily(
            "checkin_queue_depth",
            "Tasks waiting in each Celery queue (crisis, urgent, bulk), not yet taken by a worker",
            labels=["queue"],
        )
        if not self.rt.settings.broker_url:
            up.add_metric([], 0)
            yield up
            return
        try:
            depths = ops.queue_depths(self.rt.settings)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for queue, n in depths.items():
            depth.add_metric([queue], n)
        yield up
        yield depth


def webhook_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "checkin_webhook_seconds",
        "Time to answer a Twilio webhook, in this web process",
        labelnames=["route", "code"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        registry=registry,
    )


class WebhookTimer:
    """ASGI middleware: observes how long each Twilio webhook takes to answer."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = WEBHOOK_ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = "500"

        async def timed_send(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.histogram.labels(route, code).observe(time.perf_counter() - started)


def render_metrics(rt: Runtime, process: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The exposition: the database and broker figures, plus `process` (this web process's own
    metrics, e.g. webhook latency) when given."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(rt))
    registry.register(InboundCollector(rt))
    from worker.web.access import SignInCollector  # sign-in failures (issue 12)

    registry.register(SignInCollector(rt))
    from worker.services.read.hl7_status import Hl7FeedCollector

    registry.register(Hl7FeedCollector(rt))
    body = generate_latest(registry)
    if process is not None:
        body += generate_latest(process)
    return body, "text/plain; version=0.0.4; charset=utf-8"
