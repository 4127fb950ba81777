"""Prometheus metrics, collected from the database at scrape time (no state in the web process)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from worker.services.runtime import Runtime
from worker.store.models import FollowUp, Message


class OutboxCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        by_status = GaugeMetricFamily(
            "checkin_outbox_messages", "Outbound messages by status", labels=["status"]
        )
        oldest = GaugeMetricFamily(
            "checkin_oldest_due_unsent_seconds", "Age of the oldest due message not yet sent"
        )
        followups = GaugeMetricFamily(
            "checkin_open_followups", "Open follow-ups by severity", labels=["severity"]
        )
        with self.rt.sessions() as session:
            for status, count in session.execute(
                select(Message.status, func.count()).group_by(Message.status)
            ):
                by_status.add_metric([status], count)
            due = session.scalar(
                select(func.min(Message.due_at)).where(
                    Message.status.in_(("scheduled", "queued", "sending")), Message.due_at <= now
                )
            )
            oldest.add_metric([], (now - due).total_seconds() if due else 0.0)
            for severity, count in session.execute(
                select(FollowUp.severity, func.count())
                .where(FollowUp.status != "resolved")
                .group_by(FollowUp.severity)
            ):
                followups.add_metric([severity], count)
        yield by_status
        yield oldest
        yield followups


def render_metrics(rt: Runtime) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(OutboxCollector(rt))
    return generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8"
