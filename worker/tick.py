"""`checkin tick`: one synchronous cycle with no broker, for rehearsal, cron and tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.services.clinical.crisis import escalate
from worker.services.clinical.expiry import expire_checkins
from worker.services.inbound.receive import process_inbound, unprocessed
from worker.services.outbound.dispatch import dispatch
from worker.services.outbound.plan import plan
from worker.services.outbound.send import send_one
from worker.services.outbound.send_now import send_now
from worker.services.runtime import Runtime

SUMMARY_KEYS = (
    "planned",
    "sent",
    "failed",
    "suppressed",
    "deferred",
    "cancelled",
    "retry",
    "unknown",
    "replies_processed",
    "expired",
    "pages",
)


def tick(rt: Runtime, now: datetime) -> dict[str, int]:
    """Plan, process stored replies, dispatch and send what is due at `now`, close expired
    check-ins and re-page unacknowledged urgent follow-ups; summarise."""
    summary = dict.fromkeys(SUMMARY_KEYS, 0)
    summary["planned"] = plan(rt, now)

    def count(outcomes: dict[str, int]) -> None:
        for k, v in outcomes.items():
            if k in summary:
                summary[k] += v

    for inbound_id in unprocessed(rt, now, timedelta(0)):
        processed = process_inbound(rt, inbound_id, now)
        summary["replies_processed"] += 1
        count(send_now(rt, processed.send, now))
    summary["expired"] = expire_checkins(rt, now)
    pages = escalate(rt, now)
    summary["pages"] = len(pages)
    count(send_now(rt, pages, now))
    batch: list[int] = []

    def collect(ids: list[int], _queue: str) -> None:
        batch.extend(ids)

    while True:
        batch.clear()
        result = dispatch(rt, now, collect)
        for mid in batch:
            outcome = send_one(rt, mid, now)
            if outcome in summary:
                summary[outcome] += 1
        # Keep going while full batches were claimed: a tick empties what is due.
        if result.claimed < rt.settings.dispatch_batch_size:
            break
    return summary
