"""The whole pipeline with real processes: beat and a Celery worker on real Redis, the real
Twilio SDK talking to the emulator over HTTP. A worker killed with SIGKILL mid-batch and started
again ends with every message sent exactly once, counted at the emulator."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from tests.conftest import make_settings
from tests.integration.procs import Procs, base_env, seed_due, statuses, wait_for
from worker.channels import Channels
from worker.emulator import TwilioEmulator
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.store.models import Message

pytestmark = pytest.mark.slow

N = 1000
FROM = "+12125550000"


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    db_url: str, redis_url: str, procs: Procs, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    now = datetime.now(UTC)
    seed_due(db_url, now, N)
    with TwilioEmulator() as emulator:
        # Slow enough that the kill lands in the middle of the batch.
        emulator.configure(latency_ms=60)
        procs.env = {
            **base_env(tmp_path, db_url, redis_url, emulator),
            "CHECKIN_SEND_CONCURRENCY": "8",
            "CHECKIN_REQUEUE_AFTER_SECONDS": "15",
            "CHECKIN_SENDING_STALE_SECONDS": "8",
            "CHECKIN_BROKER_VISIBILITY_TIMEOUT": "30",
        }
        beat = procs.start("beat", "--schedule-file", str(tmp_path / "beat"), log="beat.log")
        worker = procs.start("worker", "-Q", "urgent,bulk", "-c", "4", "--name", "w1", log="w1.log")
        wait_for(
            lambda: emulator.stats()["accepted"] >= N // 4,
            90,
            "a quarter of the batch to be accepted",
        )
        procs.kill(worker)  # SIGKILL: no chance to finish or to acknowledge anything
        at_kill = emulator.stats()["accepted"]
        assert at_kill < N, "the kill must land mid-batch"
        procs.start("worker", "-Q", "urgent,bulk", "-c", "4", "--name", "w2", log="w2.log")
        wait_for(lambda: statuses(db_url)["sent"] == N, 180, f"all {N} messages to be sent")
        time.sleep(2)  # anything still in flight would show up now
        counts = emulator.count_by_to()
        sids = [m["sid"] for m in emulator.messages]
        procs.kill(beat, signal.SIGTERM)
    assert len(counts) == N, "every patient got their check-in"
    assert set(counts.values()) == {1}, "no patient got it twice"
    assert len(sids) == len(set(sids)) == N
    final = statuses(db_url)
    assert final == Counter({"sent": N}), final
    rt = build_runtime(make_settings(db_url), channels=Channels(None, None))  # type: ignore[arg-type]
    with session_scope(rt.sessions) as session:
        recorded = set(session.scalars(select(Message.provider_id)))
        reconciled = session.scalar(
            select(func.count()).where(Message.status_reason == "reconciled")
        )
    rt.close()
    assert recorded == set(sids), "each row holds the sid the provider gave it"
    print(
        f"\nkilled after {at_kill} of {N} accepted; {reconciled} found at the provider by "
        f"reconciliation; all {N} sent exactly once"
    )
