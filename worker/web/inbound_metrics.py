"""`checkin_oldest_unprocessed_inbound_seconds`, from the database at scrape time.

Replies are stored by the webhook and processed on the urgent queue within seconds; one still
unprocessed minutes later (no urgent worker, the broker down, a task lost) may be a crisis text
nobody has answered, and no worker can report what it never received: the database can.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from worker.services.runtime import Runtime
from worker.store.models import InboundMessage


class InboundCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        now = self.rt.now()
        with self.rt.sessions() as session:
            oldest = session.scalar(
                select(func.min(InboundMessage.received_at)).where(
                    InboundMessage.processed_at.is_(None)
                )
            )
        family = GaugeMetricFamily(
            "checkin_oldest_unprocessed_inbound_seconds",
            "Age of the oldest stored reply not yet processed (0 when there is none)",
        )
        family.add_metric([], _age(oldest, now))
        yield family


def _age(oldest: datetime | str | None, now: datetime) -> float:
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):  # SQLite's MIN() comes back as the stored text
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max((now - oldest).total_seconds(), 0.0)
