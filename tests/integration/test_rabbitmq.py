"""The real Celery path on a real RabbitMQ: planned messages dispatched by beat and sent once
by a bulk worker, and a crisis reply recognised at the webhook, published on the `crisis` queue
(seen waiting there through the broker's own API) and answered by the urgent worker. Pacing
runs on its own Redis (CHECKIN_REDIS_URL)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from checkin_emulator import TwilioEmulator

from tests.conftest import make_settings
from tests.integration.clinic import ONCALL_PHONE, open_clinic
from tests.integration.conftest import SmtpServer
from tests.integration.procs import Procs, base_env, seed_due, statuses, wait_for
from worker.broker import queue_depths

pytestmark = pytest.mark.slow

DUE = 30
PHONE = "+12125559000"
ROUTINE = "+12125559001"


def test_messages_and_a_crisis_reply_go_through_rabbitmq(
    db_url: str,
    amqp_url: str,
    redis_url: str,
    procs: Procs,
    tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    seed_due(db_url, datetime.now(UTC), DUE)
    broker = {"CHECKIN_BROKER_URL": amqp_url, "CHECKIN_REDIS_URL": redis_url}
    settings = make_settings(db_url, broker_url=amqp_url, redis_url=redis_url)
    with TwilioEmulator() as emulator:
        clinic = open_clinic(db_url, emulator, smtp_server, celery=True, **broker)
        try:
            clinic.patient(PHONE)
            clinic.patient(ROUTINE)
            # No worker yet: the texts wait in their queues, read through RabbitMQ's own API.
            clinic.text(PHONE, "I want to end my life", wait=False)
            clinic.text(ROUTINE, "hello there", wait=False)
            wait_for(
                lambda: queue_depths(settings) == {"crisis": 1, "urgent": 1, "bulk": 0},
                20,
                "one crisis and one routine reply waiting in RabbitMQ",
            )
            # The same figures on /metrics, and /healthz asks RabbitMQ too.
            metrics = httpx.get(f"{clinic.base_url}/metrics", timeout=10).text
            assert 'checkin_queue_depth{queue="crisis"} 1.0' in metrics
            assert "checkin_broker_up 1.0" in metrics
            health = httpx.get(f"{clinic.base_url}/healthz", timeout=10).json()
            assert health["broker"] == "ok"
            procs.env = {
                **base_env(tmp_path, db_url, redis_url, emulator),
                **broker,
                "CHECKIN_ONCALL_PHONE": ONCALL_PHONE,
                "CHECKIN_PUBLIC_URL": clinic.base_url,
            }
            procs.start("beat", "--schedule-file", str(tmp_path / "beat"), log="beat.log")
            procs.start("worker", "-Q", "bulk", "-c", "2", "--name", "bulk", log="bulk.log")
            procs.start("worker", "-Q", "urgent", "-c", "2", "--name", "urgent", log="urgent.log")
            wait_for(
                lambda: bool(clinic.sms_to(PHONE)) and bool(clinic.sms_to(ONCALL_PHONE)),
                90,
                "the crisis reply and the page",
            )
            wait_for(lambda: statuses(db_url)["sent"] >= DUE, 90, f"{DUE} check-ins sent")
            wait_for(
                lambda: queue_depths(settings) == {"crisis": 0, "urgent": 0, "bulk": 0},
                30,
                "the queues to drain",
            )
            sent = Counter(m["to"] for m in emulator.messages)
        finally:
            clinic.close()
    assert "988" in clinic.sms_to(PHONE)[0]
    checkins = {to: n for to, n in sent.items() if to.startswith("+1212555") and n}
    planned = {f"+1212555{i:04d}" for i in range(DUE)}
    assert {to: checkins.get(to, 0) for to in planned} == dict.fromkeys(planned, 1)
    left = statuses(db_url)
    assert left["scheduled"] + left["queued"] + left["sending"] == 0, left
