"""One-click unsubscribe (RFC 8058) from a real email through a real SMTP server and web app."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.integration.clinic import Clinic, open_clinic
from tests.integration.test_email_answers import text_part
from worker.services.outbound.send_now import queue_now
from worker.services.records.patients import consent_state
from worker.store.db import session_scope
from worker.store.models import AuditEvent, Message, UnsubscribeToken
from worker.tick import tick

ADDRESS = "rosa@example.org"
NOW = datetime(2026, 4, 14, 15, 0, tzinfo=UTC)


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server)
    yield c
    c.close()


def queue_email(clinic: Clinic, pid: int, at: datetime, key: str) -> int:
    with session_scope(clinic.rt.sessions) as s:
        mid = queue_now(
            s, now=at, dedupe_key=key, template="checkin_mood", kind="checkin", channel="email",
            patient_id=pid, instrument="mood", urgent=False, exempt=False,
        )  # fmt: skip
        assert mid is not None
        return mid


def test_every_patient_email_unsubscribes_in_one_click(clinic: Clinic) -> None:
    pid = int(
        clinic.cli.json(
            "patients", "add", "--name", "Rosa Vega", "--email", ADDRESS, "--tz", "UTC",
            "--channel", "email", "--consent", "email", "--send-window", "00:00-24:00",
        )["id"]
    )  # fmt: skip
    queue_email(clinic, pid, NOW, "t:1")
    pending = queue_email(clinic, pid, NOW + timedelta(days=1), "t:2")
    tick(clinic.rt, NOW)
    [raw] = clinic.mail_to(ADDRESS)
    mail = email.message_from_bytes(raw)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [url] = re.findall(r"<(http[^>]+)>", mail["List-Unsubscribe"])
    assert "<mailto:checkins@clinic.example?subject=unsubscribe>" in mail["List-Unsubscribe"]
    assert url.startswith(f"{clinic.base_url}/u/")
    assert url in text_part(raw)
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 40 and str(pid) not in token.split("-")
    with session_scope(clinic.rt.sessions) as s:
        # Only the token's hash is stored.
        assert s.scalar(select(UnsubscribeToken.token_hash)) != token

    page = httpx.get(url)
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert "script" not in page.text and "style=" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    with session_scope(clinic.rt.sessions) as s:
        assert consent_state(s, pid)["email"]["granted"]  # a GET (a mail scanner) changes nothing

    # What a mail provider sends for a one-click unsubscribe (RFC 8058 section 3.1).
    done = httpx.post(url, content=b"List-Unsubscribe=One-Click",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert done.status_code == 200 and "will not receive our emails" in done.text
    assert httpx.post(url).status_code == 200  # again: nothing more happens
    with session_scope(clinic.rt.sessions) as s:
        state = consent_state(s, pid)["email"]
        assert not state["granted"] and "unsubscribe link" in str(state["withdrawn_source"])
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.patient_id == pid, AuditEvent.action == "consent.withdraw"
            )
        ).all()
        assert [(e.actor, e.detail["channel"]) for e in events] == [("patient", "email")]
        row = s.get(Message, pending)
        assert row is not None and row.status == "suppressed"

    queue_email(clinic, pid, NOW + timedelta(days=2), "t:3")
    tick(clinic.rt, NOW + timedelta(days=2))
    assert len(clinic.mail_to(ADDRESS)) == 1
    assert httpx.get(f"{clinic.base_url}/u/not-a-token").status_code == 404


def test_emails_not_to_a_patient_carry_no_unsubscribe_link(clinic: Clinic) -> None:
    with session_scope(clinic.rt.sessions) as s:
        queue_now(
            s, now=NOW, dedupe_key="page:1", template="oncall_page", kind="page",
            channel="email", patient_id=None, to_address="oncall@clinic.example",
            context={"link": f"{clinic.base_url}/followups/1"},
        )  # fmt: skip
    tick(clinic.rt, NOW)
    [raw] = clinic.mail_to("oncall@clinic.example")
    assert email.message_from_bytes(raw)["List-Unsubscribe"] is None
