"""`checkin ops status`: what an operator sees, from the real database and the real broker."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from tests.cli import Checkin
from tests.conftest import make_settings
from tests.ops.helpers import seed_followups, seed_outbox
from worker.celery_app import create_celery, send_task_options
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.runtime import build_runtime
from worker.store.db import session_scope

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    """A Redis database of its own (other tests flush database 0)."""
    url = redis_url.rsplit("/", 1)[0] + "/6"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def seed(db_url: str) -> None:
    rt = build_runtime(
        make_settings(db_url),
        channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO())),
    )
    with session_scope(rt.sessions) as session:
        seed_outbox(session, NOW)
        seed_followups(session, NOW)
    rt.close()


def enqueue(broker: str, queue: str, n: int) -> None:
    """Send tasks through real Celery with no worker running, so they wait in the queue."""
    settings = make_settings("sqlite://", broker_url=broker)
    app = create_celery(settings)
    try:
        for i in range(n):
            app.send_task("checkin.send", args=[[i]], **send_task_options(settings, queue))
    finally:
        app.close()


def test_it_shows_queues_outbox_lag_recent_failures_and_urgent_followups(
    db_url: str, broker: str
) -> None:
    seed(db_url)
    enqueue(broker, "bulk", 3)
    enqueue(broker, "urgent", 1)
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url, "CHECKIN_BROKER_URL": broker})
    data = cli.json("ops", "status", "--now", NOW.isoformat())
    assert data == {
        "at": NOW.isoformat(),
        "broker": "ok",
        "queues": {"crisis": 0, "urgent": 1, "bulk": 3},
        "outbox": {
            "scheduled": 3,
            "queued": 1,
            "sending": 0,
            "sent": 6,
            "delivered": 1,
            "undelivered": 1,
            "cancelled": 0,
            "suppressed": 0,
            "failed": 3,
            "unknown": 0,
        },
        "oldest_due_unsent_seconds": 90.0,
        "last_hour": {
            "sent": {"sms": 6, "email": 1},
            "failed": 2,
            "undelivered": 1,
            "errors_by_code": {"20429": 1, "21211": 2, "30005": 1},
        },
        "urgent_followups": {
            "open": 1,
            "acknowledged": 1,
            "oldest_open_seconds": 600.0,
            "ladder": {"oncall": 1, "backup": 0, "admins": 0, "unpaged": 0},
        },
        "hl7_feed": {
            "received": 0,
            "applied": 0,
            "pending": 0,
            "refused": {},
            "last_message_seconds": None,
        },
    }


def test_the_table_reads_at_a_glance(sqlite_url: str, broker: str) -> None:
    seed(sqlite_url)
    enqueue(broker, "bulk", 2)
    cli = Checkin({"CHECKIN_DATABASE_URL": sqlite_url, "CHECKIN_BROKER_URL": broker})
    out = cli.run("ops", "status", "--now", NOW.isoformat()).stdout
    lines = dict(line.split("  ", 1) for line in out.strip().splitlines())
    assert {k.strip(): v.strip() for k, v in lines.items()} == {
        "broker": "ok",
        "queues": "crisis 0  urgent 0  bulk 2",
        "outbox": "scheduled 3  queued 1  sent 6  delivered 1  undelivered 1  failed 3",
        "oldest due, unsent": "90s",
        "last hour": "sent sms 6  sent email 1  failed 2  undelivered 1",
        "provider errors": "20429 1  21211 2  30005 1",
        "urgent follow-ups": "open 1 (oldest unacknowledged 10m)  acknowledged 1",
        "escalation ladder": "oncall 1  backup 0  admins 0  unpaged 0",
    }


def test_without_a_broker_it_says_so_and_still_reports_the_database(sqlite_url: str) -> None:
    seed(sqlite_url)
    data = Checkin({"CHECKIN_DATABASE_URL": sqlite_url}).json(
        "ops", "status", "--now", NOW.isoformat()
    )
    assert data["broker"] == "not configured"
    assert data["queues"] is None
    assert data["outbox"]["scheduled"] == 3


def test_an_unreachable_broker_is_named_without_its_url(sqlite_url: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://:hunter2-broker@127.0.0.1:{s.getsockname()[1]}/0"
    cli = Checkin({"CHECKIN_DATABASE_URL": sqlite_url, "CHECKIN_BROKER_URL": dead})
    result = cli.run("ops", "status", "--json")
    assert '"broker": "error: OperationalError"' in result.stdout
    assert "hunter2" not in result.output


def test_an_empty_database_shows_zeros(sqlite_url: str) -> None:
    data = Checkin({"CHECKIN_DATABASE_URL": sqlite_url}).json("ops", "status")
    assert set(data["outbox"].values()) == {0}
    assert data["oldest_due_unsent_seconds"] == 0.0
    assert data["urgent_followups"] == {
        "open": 0,
        "acknowledged": 0,
        "oldest_open_seconds": None,
        "ladder": {"oncall": 0, "backup": 0, "admins": 0, "unpaged": 0},
    }


def test_a_bad_now_is_refused(sqlite_url: str) -> None:
    err = Checkin({"CHECKIN_DATABASE_URL": sqlite_url}).fails("ops", "status", "--now", "yesterday")
    assert "--now" in err
