"""Urgent traffic never waits behind bulk: a crisis text is answered, and the on-call clinician
paged, while a backlog of check-ins is still being sent (real beat, workers, Redis, emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from checkin_emulator import TwilioEmulator

from tests.integration.clinic import ONCALL_PHONE, open_clinic
from tests.integration.conftest import SmtpServer
from tests.integration.procs import Procs, base_env, seed_due, statuses, wait_for

pytestmark = pytest.mark.slow

BACKLOG = 1500
PHONE = "+12125559000"


def test_a_crisis_reply_is_sent_while_a_bulk_backlog_waits(
    db_url: str, redis_url: str, procs: Procs, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    seed_due(db_url, datetime.now(UTC), BACKLOG)
    with TwilioEmulator() as emulator:
        emulator.configure(latency_ms=200)  # a real provider's pace: the backlog takes a while
        clinic = open_clinic(
            db_url, emulator, smtp_server, celery=True, CHECKIN_BROKER_URL=redis_url
        )
        try:
            procs.env = {
                **base_env(tmp_path, db_url, redis_url, emulator),
                "CHECKIN_SEND_CONCURRENCY": "4",
                "CHECKIN_ONCALL_PHONE": ONCALL_PHONE,
                "CHECKIN_PUBLIC_URL": clinic.base_url,
            }
            procs.start("beat", "--schedule-file", str(tmp_path / "beat"), log="beat.log")
            procs.start("worker", "-Q", "bulk", "-c", "2", "--name", "bulk", log="bulk.log")
            procs.start("worker", "-Q", "urgent", "-c", "4", "--name", "urgent", log="urgent.log")
            wait_for(lambda: emulator.stats()["accepted"] >= 20, 60, "bulk sending to start")
            clinic.patient(PHONE)
            clinic.text(PHONE, "I want to end my life", wait=False)
            wait_for(
                lambda: bool(clinic.sms_to(PHONE)) and bool(clinic.sms_to(ONCALL_PHONE)),
                60,
                "the crisis reply and the page",
            )
            left = statuses(db_url)
            waiting = left["scheduled"] + left["queued"] + left["sending"]
        finally:
            clinic.close()
    assert "988" in clinic.sms_to(PHONE)[0]
    assert waiting > BACKLOG // 2, f"the backlog was not waited for: {waiting} bulk still pending"
    print(f"\ncrisis reply and page sent with {waiting} of {BACKLOG} bulk messages still pending")
