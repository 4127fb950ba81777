"""`checkin tick`: one synchronous cycle with no broker, for rehearsal, cron and tests."""

from __future__ import annotations

from datetime import datetime

from worker.services.dispatch import dispatch
from worker.services.plan import plan
from worker.services.runtime import Runtime
from worker.services.send import send_one

SUMMARY_KEYS = (
    "planned",
    "sent",
    "failed",
    "suppressed",
    "deferred",
    "cancelled",
    "retry",
    "unknown",
)


def tick(rt: Runtime, now: datetime) -> dict[str, int]:
    """Plan, dispatch what is due at `now`, send it in this process, and summarise."""
    summary = dict.fromkeys(SUMMARY_KEYS, 0)
    summary["planned"] = plan(rt, now)
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
