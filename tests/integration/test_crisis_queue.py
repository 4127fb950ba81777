"""A crisis text overtakes routine replies: 300 routine replies are posted to the webhook while
no worker runs, then one crisis text; a real urgent worker (one thread, so the order is plain)
then starts and processes the crisis text before most of the routine ones, because the webhook
published it on the `crisis` queue that the urgent worker reads first. Order, not speed."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.conftest import make_settings
from tests.integration.clinic import ONCALL_PHONE, open_clinic
from tests.integration.conftest import SmtpServer
from tests.integration.procs import Procs, base_env, wait_for
from worker.broker import queue_depths
from worker.store.db import session_scope
from worker.store.models import InboundMessage

pytestmark = pytest.mark.slow

ROUTINE = 300
PHONE = "+12125559000"
ROUTINE_PHONE = "+12125559001"


def test_a_crisis_text_is_processed_before_routine_replies_queued_ahead_of_it(
    db_url: str, redis_url: str, procs: Procs, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    settings = make_settings(db_url, broker_url=redis_url)
    with TwilioEmulator() as emulator:
        clinic = open_clinic(
            db_url, emulator, smtp_server, celery=True, CHECKIN_BROKER_URL=redis_url
        )
        try:
            clinic.patient(PHONE)
            clinic.patient(ROUTINE_PHONE)
            for i in range(ROUTINE):
                clinic.text(ROUTINE_PHONE, f"feeling ok today {i}", wait=False)
            clinic.text(PHONE, "I want to end my life", wait=False)
            assert queue_depths(settings) == {"crisis": 1, "urgent": ROUTINE, "bulk": 0}
            procs.env = {
                **base_env(tmp_path, db_url, redis_url, emulator),
                "CHECKIN_ONCALL_PHONE": ONCALL_PHONE,
                "CHECKIN_PUBLIC_URL": clinic.base_url,
            }
            procs.start("worker", "-Q", "urgent", "-c", "1", "--name", "urgent", log="urgent.log")
            wait_for(
                lambda: all(m.processed_at is not None for m in clinic.inbound()),
                180,
                "every reply processed",
            )
            with session_scope(clinic.rt.sessions) as session:
                rows = session.execute(
                    select(InboundMessage.from_address, InboundMessage.processed_at)
                ).all()
        finally:
            clinic.close()
    crisis_at = next(at for sender, at in rows if sender == PHONE)
    before = sum(1 for sender, at in rows if sender == ROUTINE_PHONE and at < crisis_at)
    assert before < ROUTINE // 10, f"{before} of {ROUTINE} routine replies went before the crisis"
    assert "988" in clinic.sms_to(PHONE)[0]
    print(f"\nthe crisis text was processed after {before} of {ROUTINE} routine replies")
