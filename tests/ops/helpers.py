"""Helpers for the operations tests: rows in known states, and the web app on a real server."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import uvicorn
from sqlalchemy.orm import Session

from worker.services.clinical.followups import acknowledge, raise_followup
from worker.store.models import Message


def add_message(
    session: Session,
    *,
    status: str,
    due_at: datetime,
    sent_at: datetime | None = None,
    updated_at: datetime | None = None,
    error_code: str | None = None,
    channel: str = "sms",
) -> Message:
    msg = Message(
        patient_id=None,
        channel=channel,
        kind="page",
        template="oncall_page",
        language="en",
        priority="bulk",
        exempt_quiet_hours=True,
        due_at=due_at,
        dedupe_key=f"ops-test:{uuid.uuid4().hex}",
        context={},
        status=status,
        attempts=1,
        error_code=error_code,
        created_at=due_at - timedelta(hours=1),
        sent_at=sent_at,
        updated_at=updated_at or sent_at or due_at,
    )
    session.add(msg)
    session.flush()
    return msg


def seed_outbox(session: Session, now: datetime) -> None:
    """A known outbox: 3 scheduled (one due 90 s ago, one due 30 s ago, one tomorrow), 1 queued
    due 10 s ago, 4 sent in the last hour by SMS (lags 0.5 s, 3 s, 20 s, 400 s) and 1 by email
    (lag 2 s), 1 delivered two hours ago, 2 failed in the last hour (21211, 21211), 1 failed
    yesterday (30003), 1 undelivered in the last hour (30005, lag 0), 1 sent after a transient 20429 (lag 45 s)."""
    m = timedelta(minutes=1)
    s = timedelta(seconds=1)
    add_message(session, status="scheduled", due_at=now - 90 * s)
    add_message(session, status="scheduled", due_at=now - 30 * s)
    add_message(session, status="scheduled", due_at=now + timedelta(days=1))
    add_message(session, status="queued", due_at=now - 10 * s)
    for lag in (0.5, 3.0, 20.0, 400.0):
        due = now - 20 * m
        add_message(session, status="sent", due_at=due, sent_at=due + lag * s)
    add_message(
        session, status="sent", due_at=now - 5 * m, sent_at=now - 5 * m + 2 * s, channel="email"
    )
    add_message(
        session,
        status="delivered",
        due_at=now - 121 * m,
        sent_at=now - 120 * m,
        updated_at=now - 119 * m,
    )
    for _ in range(2):
        add_message(
            session,
            status="failed",
            due_at=now - 10 * m,
            updated_at=now - 9 * m,
            error_code="21211",
        )
    add_message(
        session,
        status="failed",
        due_at=now - timedelta(days=1),
        updated_at=now - timedelta(days=1),
        error_code="30003",
    )
    add_message(
        session,
        status="undelivered",
        due_at=now - 30 * m,
        sent_at=now - 30 * m,
        updated_at=now - 28 * m,
        error_code="30005",
    )
    add_message(
        session,
        status="sent",
        due_at=now - 40 * m,
        sent_at=now - 40 * m + 45 * s,
        error_code="20429",
    )


def seed_followups(session: Session, now: datetime) -> None:
    """Urgent: one open since 10 minutes ago (re-paged twice), one acknowledged; high: one
    open; routine: one resolved."""
    open_urgent, _ = raise_followup(
        session,
        patient_id=None,
        reason="crisis_language",
        severity="urgent",
        detail={},
        now=now - timedelta(minutes=10),
    )
    open_urgent.page_count = 3
    acked, _ = raise_followup(
        session,
        patient_id=None,
        reason="phq9_item9",
        severity="urgent",
        detail={},
        now=now - timedelta(minutes=5),
    )
    acknowledge(session, acked.id, by="Dr. Lee", now=now - timedelta(minutes=4))
    raise_followup(
        session, patient_id=None, reason="high_pain", severity="high", detail={}, now=now
    )
    done, _ = raise_followup(
        session, patient_id=None, reason="low_mood", severity="routine", detail={}, now=now
    )
    done.status = "resolved"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn on a loopback port in a thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "web app did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
