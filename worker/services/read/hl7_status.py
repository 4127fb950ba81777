"""The HL7 feed's state for `checkin ops status` and `/metrics`: messages received, applied,
refused by reason, and the age of the last one. From the inbox table, so every process agrees."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.store.models import Hl7Message

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from worker.services.runtime import Runtime


def feed_state(session: Session, now: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(Hl7Message.ack_code, Hl7Message.outcome, func.count()).group_by(
            Hl7Message.ack_code, Hl7Message.outcome
        )
    ).all()
    last = session.scalar(select(func.max(Hl7Message.received_at)))
    received = applied = pending = 0
    refused: dict[str, int] = {}
    for code, outcome, count in rows:
        received += int(count)
        if code is None:
            pending += int(
                count
            )  # stored, not yet applied (a database error; the resend applies it)
        elif code == "AA":
            applied += int(count)
        else:
            refused[str(outcome)] = refused.get(str(outcome), 0) + int(count)
    return {
        "received": received,
        "applied": applied,
        "pending": pending,
        "refused": dict(sorted(refused.items())),
        "last_message_seconds": max((now - last).total_seconds(), 0.0) if last else None,
    }


class Hl7FeedCollector:
    """Prometheus collector: `checkin_hl7_messages_total{outcome}` (outcome `applied`,
    `pending` or a refusal reason) and `checkin_hl7_last_message_age_seconds`."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        now = self.rt.settings.now()
        with self.rt.sessions() as session:
            state = feed_state(session, now)
        total = CounterMetricFamily(
            "checkin_hl7_messages",
            "HL7 messages received, by outcome: applied, pending, or the refusal reason",
            labels=["outcome"],
        )
        total.add_metric(["applied"], state["applied"])
        total.add_metric(["pending"], state["pending"])
        for reason, count in state["refused"].items():
            total.add_metric([reason], count)
        yield total
        age = GaugeMetricFamily(
            "checkin_hl7_last_message_age_seconds",
            "Seconds since the last HL7 message was received (absent before the first)",
        )
        if state["last_message_seconds"] is not None:
            age.add_metric([], state["last_message_seconds"])
        yield age
