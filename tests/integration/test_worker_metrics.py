"""Metrics from inside the workers, scraped over HTTP from real worker processes (beat, an
urgent and a bulk worker, Redis, the emulator through the real SDK): sends by outcome and
provider error code, provider latency, pacing waits, due-to-enqueued, reconciliation, inbound
latency by tier, the beat heartbeat, task durations and the process collectors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from checkin_emulator import TwilioEmulator
from sqlalchemy import update

from tests.integration.clinic import ONCALL_PHONE, open_clinic
from tests.integration.conftest import SmtpServer, free_port
from tests.integration.procs import (
    Procs,
    base_env,
    scrape,
    seed_due,
    statuses,
    value,
    wait_for,
)
from worker.services.outbound.claim import claim_and_prepare
from worker.services.outbound.dispatch import claim_due
from worker.store.db import session_scope
from worker.store.models import Message

pytestmark = pytest.mark.slow

N = 30
FIRST = 800
INVALID = f"+1212555{FIRST + 5:04d}"  # the emulator refuses it: 21211
CRISIS_FROM = "+12125559100"
STRANGER = "+12125559101"


def test_workers_export_what_they_do(
    db_url: str, redis_url: str, procs: Procs, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    now = datetime.now(UTC)
    seed_due(db_url, now, N, first_phone=FIRST)
    started = time.time()
    with TwilioEmulator() as emulator:
        emulator.configure(numbers={INVALID: {"code": 21211, "status": 400}})
        clinic = open_clinic(
            db_url, emulator, smtp_server, celery=True, CHECKIN_BROKER_URL=redis_url
        )
        try:
            # One row a worker died with mid-send, ten minutes ago, that never reached the
            # provider: reconciliation finds nothing and sends it again.
            [(stale, _q)] = claim_due(clinic.rt, now, 1)
            with session_scope(clinic.rt.sessions) as session:
                claim_and_prepare(clinic.rt, session, [stale], now)
                session.execute(
                    update(Message)
                    .where(Message.id == stale)
                    .values(sending_at=now - timedelta(minutes=10))
                )
            clinic.patient(CRISIS_FROM)
            bulk_port, urgent_port = free_port(), free_port()
            procs.env = {
                **base_env(tmp_path, db_url, redis_url, emulator),
                "CHECKIN_ONCALL_PHONE": ONCALL_PHONE,
                "CHECKIN_PUBLIC_URL": clinic.base_url,
            }
            procs.start("beat", "--schedule-file", str(tmp_path / "beat"), log="beat.log")
            procs.start(
                "worker", "-Q", "bulk", "-c", "2", "--name", "bulk",
                "--metrics-port", str(bulk_port), log="bulk.log",
            )  # fmt: skip
            procs.start(
                "worker", "-Q", "urgent", "-c", "4", "--name", "urgent",
                "--metrics-port", str(urgent_port), log="urgent.log",
            )  # fmt: skip
            wait_for(
                lambda: statuses(db_url)["sent"] >= N - 1 and statuses(db_url)["failed"] == 1,
                90,
                "the check-ins to be sent",
            )
            clinic.text(CRISIS_FROM, "I want to end my life", wait=False)
            clinic.text(STRANGER, "hello?", wait=False)
            wait_for(
                lambda: bool(clinic.sms_to(ONCALL_PHONE)) and bool(clinic.sms_to(STRANGER)),
                60,
                "the crisis reply, the page and the answer to a stranger",
            )
            # The inbound task records its latency after its sends: give it a moment.
            wait_for(
                lambda: (
                    value(
                        scrape(urgent_port),
                        "checkin_inbound_processing_seconds_count",
                        tier="routine",
                    )
                    == 1
                ),
                10,
                "the inbound latency",
            )
            bulk, urgent = scrape(bulk_port), scrape(urgent_port)
        finally:
            clinic.close()

    # Sends: every check-in (the reconciled one included) by the bulk worker; one refused.
    assert value(bulk, "checkin_sends_total", channel="sms", outcome="sent", code="") == N - 1
    assert value(bulk, "checkin_sends_total", channel="sms", outcome="failed", code="21211") == 1
    answered = value(
        bulk, "checkin_provider_request_seconds_count", channel="sms", result="answered"
    )
    assert answered == N - 1
    assert value(bulk, "checkin_provider_request_seconds_count", channel="sms", result="error") == 1
    assert value(bulk, "checkin_provider_request_seconds_sum", channel="sms", result="answered") > 0
    assert value(bulk, "checkin_pacing_wait_seconds_count", priority="bulk") == N
    assert value(bulk, "checkin_task_seconds_count", task="send") >= 1
    # Dispatch runs on the urgent queue: the claimed rows (not the reconciled one) were timed
    # from their due time (two minutes before the test began) to the broker.
    assert value(urgent, "checkin_due_to_enqueued_seconds_count", queue="bulk") == N - 1
    lag_sum = value(urgent, "checkin_due_to_enqueued_seconds_sum", queue="bulk")
    assert (N - 1) * 100 < lag_sum < (N - 1) * 600
    assert value(urgent, "checkin_reconcile_outcomes_total", outcome="not_found") == 1
    assert value(urgent, "checkin_reconcile_outcomes_total", outcome="found") == 0
    # Replies: the crisis text and the stranger's, each in its tier; the crisis reply and the
    # page went from the urgent worker.
    assert value(urgent, "checkin_inbound_processing_seconds_count", tier="crisis") == 1
    assert value(urgent, "checkin_inbound_processing_seconds_count", tier="routine") == 1
    assert value(urgent, "checkin_sends_total", channel="sms", outcome="sent", code="") >= 3
    heartbeat = value(urgent, "checkin_beat_task_last_run_timestamp_seconds", task="dispatch")
    assert started <= heartbeat <= time.time()
    assert value(bulk, "checkin_beat_task_last_run_timestamp_seconds", task="plan") >= started
    for samples in (bulk, urgent):
        assert value(samples, "process_cpu_seconds_total") > 0
        assert value(samples, "process_resident_memory_bytes") > 0
        assert any(name == "python_info" for name, _ in samples)
