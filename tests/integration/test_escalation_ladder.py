"""The escalation ladder, walked minute by minute on a fixed clock: real rows, the real twilio
SDK against the emulator, a real SMTP server. On-call first page and 4 re-pages every 15 minutes,
then the backup, then every active admin, then the admins again until someone acknowledges."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.integration.clinic import ONCALL_EMAIL, ONCALL_PHONE, Clinic, open_clinic
from worker.services.clinical.crisis import escalate
from worker.services.clinical.followups import acknowledge
from worker.services.clinical.ladder import next_step
from worker.services.inbound.receive import process_inbound, receive_sms
from worker.services.outbound.send_now import send_now
from worker.services.read.ops import open_urgent
from worker.services.records.accounts import create_user
from worker.store.db import session_scope
from worker.store.models import FollowUp, Message
from worker.tick import tick

PHONE = "+12125553001"
BACKUP_PHONE = "+12125559922"
BACKUP_EMAIL = "backup@clinic.example"
ADMINS = ("ana.admin@clinic.example", "raj.admin@clinic.example")
# 02:00 in New York: the ladder does not wait for the morning.
T0 = datetime(2027, 3, 10, 7, 0, tzinfo=UTC)


def start(clinic: Clinic, *, users: bool = True) -> int:
    """A patient, admins (and a disabled admin and a clinician, never paged), and a crisis text
    at T0. Returns the urgent follow-up's id."""
    clinic.patient(PHONE)
    if users:
        with session_scope(clinic.rt.sessions) as session:
            for email in ADMINS:
                create_user(
                    session, name=email, email=email, role="admin", password="x" * 12, now=T0
                )
            gone = create_user(
                session,
                name="Former",
                email="former.admin@clinic.example",
                role="admin",
                password="x" * 12,
                now=T0,
            )
            gone.disabled_at = T0
            create_user(
                session,
                name="Clin",
                email="clin@clinic.example",
                role="clinician",
                password="x" * 12,
                now=T0,
            )
    row, _ = receive_sms(
        clinic.rt, sid="SM" + "1" * 32, from_=PHONE, to=None, body="I want to end my life", now=T0
    )
    send_now(clinic.rt, process_inbound(clinic.rt, row, T0).send, T0)
    with session_scope(clinic.rt.sessions) as session:
        [item] = session.scalars(select(FollowUp).where(FollowUp.severity == "urgent")).all()
        return item.id


def who_got_pages(clinic: Clinic) -> dict[str, int]:
    """Pages received, by recipient (SMS at the emulator, email at the SMTP server)."""
    got: dict[str, int] = {}
    for m in clinic.emulator.messages:
        if m["body"].startswith("Urgent follow-up waiting"):
            got[m["to"]] = got.get(m["to"], 0) + 1
    for mail in clinic.smtp.handler.received:
        if b"Urgent follow-up waiting" in mail.content:
            for rcpt in mail.rcpt_tos:
                got[rcpt] = got.get(rcpt, 0) + 1
    return got


def walk(clinic: Clinic, minutes: range) -> dict[int, dict[str, int]]:
    """Run one tick a minute; returns, for each minute that paged, who got what new."""
    before = who_got_pages(clinic)
    changes: dict[int, dict[str, int]] = {}
    for minute in minutes:
        tick(clinic.rt, T0 + timedelta(minutes=minute))
        now = who_got_pages(clinic)
        new = {k: n - before.get(k, 0) for k, n in now.items() if n != before.get(k, 0)}
        if new:
            changes[minute] = new
        before = now
    return changes


def ladder(clinic: Clinic, followup_id: int) -> list[dict[str, Any]]:
    with session_scope(clinic.rt.sessions) as session:
        item = session.get(FollowUp, followup_id)
        assert item is not None
        return list(item.detail["escalation"])


ONCALL = {ONCALL_PHONE: 1, ONCALL_EMAIL: 1}
BACKUP = {BACKUP_PHONE: 1, BACKUP_EMAIL: 1}
EVERY_ADMIN = dict.fromkeys(ADMINS, 1)


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(
        db_url,
        twilio_emulator,
        smtp_server,
        CHECKIN_ONCALL_BACKUP_PHONE=BACKUP_PHONE,
        CHECKIN_ONCALL_BACKUP_EMAIL=BACKUP_EMAIL,
    )
    yield c
    c.close()


def test_the_ladder_climbs_to_the_backup_then_the_admins_until_acknowledged(
    clinic: Clinic,
) -> None:
    fid = start(clinic)
    assert who_got_pages(clinic) == ONCALL  # the first page, with the crisis reply
    changes = walk(clinic, range(1, 121))
    assert changes == {
        15: ONCALL,
        30: ONCALL,
        45: ONCALL,
        60: ONCALL,
        75: BACKUP,
        90: EVERY_ADMIN,
        105: EVERY_ADMIN,  # the last rung, again, until someone acknowledges
        120: EVERY_ADMIN,
    }
    steps = ladder(clinic, fid)
    assert [(e["step"], e["page"]) for e in steps] == [
        *[("oncall", n) for n in range(1, 6)],
        ("backup", 6),
        ("admins", 7),
        ("admins", 8),
        ("admins", 9),
    ]
    assert [e["at"] for e in steps] == [
        (T0 + timedelta(minutes=m)).isoformat() for m in (0, 15, 30, 45, 60, 75, 90, 105, 120)
    ]
    assert steps[5]["channels"] == ["email", "sms"] and steps[6]["channels"] == ["email"]
    with session_scope(clinic.rt.sessions) as session:
        backup_rows = session.scalars(
            select(Message).where(Message.id.in_(steps[5]["message_ids"]))
        ).all()
        admin_rows = session.scalars(
            select(Message).where(Message.id.in_(steps[6]["message_ids"]))
        ).all()
        assert sorted(m.to_address or "" for m in backup_rows) == [BACKUP_PHONE, BACKUP_EMAIL]
        assert sorted(m.to_address or "" for m in admin_rows) == list(ADMINS)
        for m in [*backup_rows, *admin_rows]:
            assert (m.kind, m.status, m.patient_id, m.followup_id) == ("page", "sent", None, fid)
            assert m.body is not None and m.body.endswith(f"/followups/{fid}")
            assert "Pat" not in m.body and PHONE not in m.body and "life" not in m.body
        urgent = open_urgent(session, T0 + timedelta(minutes=121))
    assert urgent["oldest_open_seconds"] == 121 * 60
    assert urgent["ladder"] == {"oncall": 0, "backup": 0, "admins": 1, "unpaged": 0}
    assert (
        clinic.cli.json("ops", "status", "--now", (T0 + timedelta(hours=2)).isoformat())[
            "urgent_followups"
        ]["ladder"]["admins"]
        == 1
    )

    # A human acknowledges: nothing more, on any rung.
    with session_scope(clinic.rt.sessions) as session:
        acknowledge(session, fid, by="Dr. Lee", now=T0 + timedelta(minutes=125))
    assert walk(clinic, range(126, 200, 4)) == {}
    assert len(ladder(clinic, fid)) == 9
    with session_scope(clinic.rt.sessions) as session:
        assert open_urgent(session, T0 + timedelta(minutes=200))["oldest_open_seconds"] is None


def test_a_missing_backup_is_skipped_at_once(
    db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> None:
    clinic = open_clinic(db_url, twilio_emulator, smtp_server)  # no backup configured
    try:
        fid = start(clinic)
        changes = walk(clinic, range(1, 106))
        assert changes == {
            **{m: ONCALL for m in (15, 30, 45, 60)},
            **{m: EVERY_ADMIN for m in (75, 90, 105)},
        }
        assert [e["step"] for e in ladder(clinic, fid)][4:] == ["oncall", *["admins"] * 3]
    finally:
        clinic.close()


def test_with_nobody_above_the_oncall_the_oncall_is_paged_until_someone_acknowledges(
    db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> None:
    clinic = open_clinic(db_url, twilio_emulator, smtp_server, CHECKIN_REPAGE_MINUTES=10)
    try:
        fid = start(clinic, users=False)
        changes = walk(clinic, range(5, 101, 5))
        assert changes == {m: ONCALL for m in range(10, 101, 10)}
        assert {e["step"] for e in ladder(clinic, fid)} == {"oncall"}
    finally:
        clinic.close()


def test_acknowledging_suppresses_a_page_not_yet_sent(clinic: Clinic) -> None:
    fid = start(clinic)
    # The escalation queued the re-page; the provider has not been called yet.
    [*ids] = escalate(clinic.rt, T0 + timedelta(minutes=15))
    assert len(ids) == 2
    with session_scope(clinic.rt.sessions) as session:
        acknowledge(session, fid, by="Dr. Lee", now=T0 + timedelta(minutes=15, seconds=5))
    assert send_now(clinic.rt, ids, T0 + timedelta(minutes=15, seconds=6)) == {}
    with session_scope(clinic.rt.sessions) as session:
        rows = session.scalars(select(Message).where(Message.id.in_(ids))).all()
        assert {(m.status, m.status_reason) for m in rows} == {("suppressed", "acknowledged")}
    assert who_got_pages(clinic) == ONCALL


@pytest.mark.parametrize(
    ("done", "reachable", "expected"),
    [
        ([], {"oncall": True, "backup": True, "admins": True}, "oncall"),
        (["oncall"] * 4, {"oncall": True, "backup": True, "admins": True}, "oncall"),
        (["oncall"] * 5, {"oncall": True, "backup": True, "admins": True}, "backup"),
        (["oncall"] * 5, {"oncall": True, "backup": False, "admins": True}, "admins"),
        (["oncall"] * 5 + ["backup"], {"oncall": True, "backup": True, "admins": True}, "admins"),
        (["oncall"] * 5 + ["backup"], {"oncall": True, "backup": True, "admins": False}, "backup"),
        ([], {"oncall": False, "backup": True, "admins": True}, "backup"),
        ([], {"oncall": False, "backup": False, "admins": False}, None),
        (["oncall"] * 5, {"oncall": True, "backup": False, "admins": False}, "oncall"),
    ],
)
def test_next_step(done: list[str], reachable: dict[str, bool], expected: str | None) -> None:
    assert next_step([{"step": s} for s in done], reachable, 4) == expected
