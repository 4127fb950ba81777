"""/metrics: computed from the database and the broker at scrape time, plus this process's
webhook latency; scraped from the real app on a real server."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from checkin_emulator import TwilioEmulator
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_settings
from tests.ops.helpers import free_port, seed_followups, seed_outbox, serve
from worker.celery_app import create_celery, send_task_options
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.web.app import create_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    url = redis_url.rsplit("/", 1)[0] + "/6"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def runtime(db_url: str, **overrides: object) -> Runtime:
    settings = make_settings(db_url, **overrides)
    return build_runtime(
        settings, channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO()))
    )


def test_it_reports_outbox_lag_sends_errors_followups_and_queues(db_url: str, broker: str) -> None:
    rt = runtime(db_url, broker_url=broker)
    now = datetime.now(UTC)
    with session_scope(rt.sessions) as session:
        seed_outbox(session, now)
        seed_followups(session, now)
    celery = create_celery(rt.settings)
    for _ in range(2):
        celery.send_task("checkin.send", args=[[1]], **send_task_options(rt.settings, "bulk"))
    celery.close()
    try:
        with serve(create_app(rt.settings, rt)) as url:
            m = scrape(url)
    finally:
        rt.close()

    assert value(m, "checkin_outbox_messages", status="scheduled") == 3
    assert value(m, "checkin_outbox_messages", status="failed") == 3
    assert value(m, "checkin_outbox_messages", status="unknown") == 0
    assert 90 <= value(m, "checkin_oldest_due_unsent_seconds") < 120

    # Sent in the last hour, lags 0.5, 3, 20, 400 (SMS), 2 (email), 0 (undelivered), 45 s.
    lag = "checkin_due_to_sent_lag_seconds_bucket"
    expected = {"1.0": 2, "5.0": 4, "15.0": 4, "30.0": 5, "60.0": 6, "300.0": 6, "600.0": 7}
    assert {le: value(m, lag, le=le) for le in expected} == expected
    assert value(m, lag, le="+Inf") == 7
    assert value(m, "checkin_due_to_sent_lag_seconds_gcount") == 7
    assert value(m, "checkin_due_to_sent_lag_seconds_gsum") == pytest.approx(470.5, abs=0.01)

    assert value(m, "checkin_sent_last_hour", channel="sms") == 6
    assert value(m, "checkin_sent_last_hour", channel="email") == 1
    assert value(m, "checkin_failed_last_hour", status="failed") == 2
    assert value(m, "checkin_failed_last_hour", status="undelivered") == 1
    errors = {
        dict(labels)["code"]: v
        for (name, labels), v in m.items()
        if name == "checkin_provider_errors_last_hour"
    }
    assert errors == {"21211": 2, "30005": 1, "20429": 1}

    assert value(m, "checkin_open_followups", severity="urgent", status="open") == 1
    assert value(m, "checkin_open_followups", severity="urgent", status="acknowledged") == 1
    assert value(m, "checkin_open_followups", severity="high", status="open") == 1
    assert value(m, "checkin_open_followups", severity="routine", status="open") == 0
    assert value(m, "checkin_escalated_followups") == 1
    assert value(m, "checkin_escalation_pages") == 2
    assert 600 <= value(m, "checkin_oldest_unacknowledged_urgent_seconds") < 630
    ladder = {"oncall": 1, "backup": 0, "admins": 0, "unpaged": 0}
    assert {s: value(m, "checkin_escalation_step_followups", step=s) for s in ladder} == ladder

    assert value(m, "checkin_broker_up") == 1
    assert value(m, "checkin_queue_depth", queue="bulk") == 2
    assert value(m, "checkin_queue_depth", queue="urgent") == 0


def test_without_a_broker_the_rest_is_still_reported(sqlite_url: str) -> None:
    rt = runtime(sqlite_url)
    try:
        with serve(create_app(rt.settings, rt)) as url:
            m = scrape(url)
    finally:
        rt.close()
    assert value(m, "checkin_broker_up") == 0
    assert not [k for k in m if k[0] == "checkin_queue_depth"]
    assert value(m, "checkin_oldest_unacknowledged_urgent_seconds") == 0
    assert value(m, "checkin_outbox_messages", status="scheduled") == 0
    assert value(m, "checkin_oldest_due_unsent_seconds") == 0


def test_webhook_latency_is_measured_per_route_and_answer(
    sqlite_url: str, twilio_emulator: TwilioEmulator
) -> None:
    port = free_port()
    rt = runtime(
        sqlite_url,
        public_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=twilio_emulator.auth_token,
    )
    try:
        with serve(create_app(rt.settings, rt), port) as url:
            before = scrape(url)
            assert (
                twilio_emulator.send_status(
                    f"{url}/webhooks/twilio/status", "SM1", "delivered"
                ).status_code
                == 200
            )
            forged = httpx.post(
                f"{url}/webhooks/twilio/status",
                data={"MessageSid": "SM1", "MessageStatus": "delivered"},
                headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
            )
            assert forged.status_code == 403
            httpx.get(f"{url}/healthz")
            after = scrape(url)
    finally:
        rt.close()
    assert not [k for k in before if k[0] == "checkin_webhook_seconds_count"]
    assert value(after, "checkin_webhook_seconds_count", route="status", code="200") == 1
    assert value(after, "checkin_webhook_seconds_count", route="status", code="403") == 1
    assert value(after, "checkin_webhook_seconds_sum", route="status", code="200") > 0
    routes = {dict(k[1]).get("route") for k in after if k[0] == "checkin_webhook_seconds_count"}
    assert routes == {"status"}, "only webhooks are timed"


def test_old_sends_leave_the_last_hour(sqlite_url: str) -> None:
    rt = runtime(sqlite_url)
    now = datetime.now(UTC)
    with session_scope(rt.sessions) as session:
        seed_outbox(session, now - timedelta(hours=3))
    try:
        with serve(create_app(rt.settings, rt)) as url:
            m = scrape(url)
    finally:
        rt.close()
    assert value(m, "checkin_due_to_sent_lag_seconds_bucket", le="+Inf") == 0
    assert value(m, "checkin_sent_last_hour", channel="sms") == 0
    assert not [k for k in m if k[0] == "checkin_provider_errors_last_hour"]
    assert value(m, "checkin_outbox_messages", status="sent") == 6, "the outbox keeps them"
