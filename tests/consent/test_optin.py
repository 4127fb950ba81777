"""The opt-in confirmation: one SMS per grant of SMS consent, however the grant is recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.cli import Checkin
from worker.channels.console import ConsoleSms
from worker.domain.sms_text import encoding, segments
from worker.services.inbound.receive import process_inbound, receive_sms
from worker.services.outbound.send_now import send_now
from worker.services.records.patients import add_patient, grant_consent, withdraw_consent
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Message
from worker.tick import tick

# 15:00 UTC: 10:00 in New York, inside the default send window.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
PHONE = "+12125550142"
PHRASES = (
    "Riverside Pain & Wellness",
    "check-ins and appointment reminders",
    "Msg frequency varies",
    "Msg & data rates may apply",
    "Reply HELP for help, STOP to opt out",
)


def new_patient(rt: Runtime, consent: list[str], **kw: object) -> int:
    with session_scope(rt.sessions) as s:
        p = add_patient(
            s,
            now=NOW,
            name="Ana Ruiz",
            tz="America/New_York",
            channel="sms",
            phone=PHONE,
            email="ana@example.org",
            consent=consent,
            confirm_optin=rt.settings.optin_confirmation,
            **kw,  # type: ignore[arg-type]
        )
        return p.id


def confirmations(rt: Runtime, pid: int) -> list[Message]:
    with session_scope(rt.sessions) as s:
        rows = s.scalars(
            select(Message)
            .where(Message.patient_id == pid, Message.template == "optin_confirmation")
            .order_by(Message.id)
        ).all()
        s.expunge_all()
        return list(rows)


def sms(rt: Runtime) -> list[str]:
    channel = rt.channels.sms
    assert isinstance(channel, ConsoleSms)
    return [r.body for r in channel.sent]


def test_it_confirms_sms_consent_once_with_everything_ctia_asks(crt: Runtime) -> None:
    pid = new_patient(crt, ["sms", "email"])
    tick(crt, NOW)
    tick(crt, NOW + timedelta(minutes=1))
    [body] = sms(crt)
    for phrase in PHRASES:
        assert phrase in body, body
    assert encoding(body) == "GSM-7" and segments(body) == 1
    [row] = confirmations(crt, pid)
    assert row.status == "sent" and row.kind == "consent" and row.stop_notice


def test_a_grant_already_in_force_sends_nothing_and_a_new_grant_sends_again(
    crt: Runtime,
) -> None:
    pid = new_patient(crt, ["sms"])
    tick(crt, NOW)
    later = NOW + timedelta(days=2)
    with session_scope(crt.sessions) as s:
        assert not grant_consent(s, pid, "sms", now=later, source="staff", actor="cli")
    assert len(confirmations(crt, pid)) == 1
    with session_scope(crt.sessions) as s:
        withdraw_consent(s, pid, "sms", now=later, source="staff", actor="cli")
        assert grant_consent(s, pid, "sms", now=later, source="staff", actor="cli")
    assert [m.dedupe_key.startswith("optin:") for m in confirmations(crt, pid)] == [True, True]
    tick(crt, later)
    assert len(sms(crt)) == 2


def test_email_consent_gets_no_sms_confirmation(crt: Runtime) -> None:
    pid = new_patient(crt, ["email"])
    assert confirmations(crt, pid) == []


def test_the_setting_turns_it_off(rt: Runtime) -> None:
    assert not rt.settings.optin_confirmation  # the shared test settings turn it off
    pid = new_patient(rt, ["sms"])
    tick(rt, NOW)
    assert confirmations(rt, pid) == []


def test_it_waits_for_the_send_window_and_is_dropped_if_consent_is_withdrawn(
    crt: Runtime,
) -> None:
    night = datetime(2026, 3, 11, 3, 0, tzinfo=UTC)  # 23:00 in New York
    with session_scope(crt.sessions) as s:
        p = add_patient(s, now=night, name="Bo", tz="America/New_York", channel="sms", phone=PHONE)
        grant_consent(s, p.id, "sms", now=night, source="staff", actor="cli")
        pid = p.id
    assert tick(crt, night)["deferred"] == 1 and sms(crt) == []
    with session_scope(crt.sessions) as s:
        withdraw_consent(s, pid, "sms", now=night, source="staff", actor="cli")
    tick(crt, night + timedelta(hours=10))
    assert sms(crt) == []
    assert confirmations(crt, pid)[0].status == "suppressed"


def test_start_after_stop_is_answered_by_the_confirmation_alone(crt: Runtime) -> None:
    pid = new_patient(crt, ["sms"])
    tick(crt, NOW)
    for i, word in enumerate(["STOP", "START", "START"]):
        at = NOW + timedelta(hours=1, minutes=i)
        inbound_id, _ = receive_sms(crt, sid=f"SM{i}", from_=PHONE, to=None, body=word, now=at)
        send_now(crt, process_inbound(crt, inbound_id, at).send, at)
    bodies = sms(crt)
    assert len(bodies) == 4, bodies  # confirmation, STOP reply, confirmation, START reply
    assert all(p in bodies[2] for p in PHRASES), bodies[2]
    assert "You will get our texts again" in bodies[3]  # the second START changed nothing
    rows = confirmations(crt, pid)
    assert [r.exempt_quiet_hours for r in rows] == [False, True]


def test_the_sender_name_setting_names_the_program(db_url: str, texts: object) -> None:
    from tests.conftest import make_settings
    from worker.services.runtime import build_runtime

    rt = build_runtime(
        make_settings(db_url, optin_confirmation=True, sms_sender_name="Riverside Clinic"),
        channels=texts,  # type: ignore[arg-type]
    )
    try:
        new_patient(rt, ["sms"])
        tick(rt, NOW)
        [body] = sms(rt)
        assert body.startswith("Riverside Clinic: check-ins")
    finally:
        rt.close()


def test_every_way_of_recording_consent_confirms_it(db_url: str) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url, "CHECKIN_OPTIN_CONFIRMATION": "1"})
    added = cli.json(
        "patients", "add", "--name", "A", "--phone", PHONE, "--tz", "UTC",
        "--channel", "sms", "--consent", "sms",
    )  # fmt: skip
    later = cli.json(
        "patients", "add", "--name", "B", "--phone", "+12125550143", "--tz", "UTC",
        "--channel", "sms",
    )  # fmt: skip
    cli.json("patients", "consent", str(later["id"]), "--channel", "sms")
    cli.json("patients", "consent", str(later["id"]), "--channel", "sms")  # already in force
    rows = cli.json("messages", "list", "--limit", "50")
    assert sorted(m["patient_id"] for m in rows if m["template"] == "optin_confirmation") == [
        added["id"],
        later["id"],
    ]
