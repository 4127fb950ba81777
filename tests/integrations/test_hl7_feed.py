"""The HL7 v2 SIU feed end to end: real MLLP socket, python-hl7's client, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.cli import Checkin
from tests.conftest import make_settings
from tests.integrations.siu import Client, ack_code, err_text, listener, siu
from worker.domain.hl7_mapping import load_mapping
from worker.services.records.hl7_inbox import FeedContext
from worker.services.runtime import build_runtime
from worker.store.models import (
    Appointment,
    AuditEvent,
    Consent,
    ExternalId,
    FollowUp,
    Hl7Message,
    Patient,
)

NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def _ctx(rt, update_contacts: bool = False) -> FeedContext:
    return FeedContext(
        sessions=rt.sessions,
        mapping=load_mapping(None),
        clinic_tz="America/New_York",
        update_contacts=update_contacts,
        now=lambda: NOW,
    )


def test_siu_feed_over_mllp(db_url, console) -> None:
    rt = build_runtime(make_settings(db_url, clinic_tz="America/New_York"), channels=console)
    ctx = _ctx(rt)

    async def scenario() -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        async with listener(ctx) as port:
            client = await Client.open(port)
            for label, text in [
                ("s12", siu("S12", "C1")),
                ("resend", siu("S12", "C1")),
                ("s13", siu("S13", "C2", start="20261211093000-0500")),
                ("s12_b", siu("S12", "C3", placer="A-2", start="20261212100000-0500")),
                ("s15_b", siu("S15", "C4", placer="A-2", start="20261212100000-0500")),
                ("s13_after_s15", siu("S13", "C5", placer="A-2", start="20261213100000-0500")),
                ("s12_revive", siu("S12", "C5b", placer="A-2", start="20261213100000-0500")),
                ("no_pid", siu("S12", "C6", mrn=None, placer="A-3")),
                (
                    "no_offset",
                    siu(
                        "S12",
                        "C7",
                        mrn="MRN2002",
                        placer="A-4",
                        start="202612150830",
                        name="Lee^Sam",
                        phone="^PRN^CP^^1^646^5550123",
                        email="",
                        language="",
                    ),
                ),
                ("s26", siu("S26", "C8", placer="A-4", mrn="MRN2002")),
                # The same no-show again (another control id): nothing more, as by hand.
                ("s26_again", siu("S26", "C8b", placer="A-4", mrn="MRN2002")),
                ("bad_time", siu("S12", "C9", placer="A-5", start="2026-12-15 08:30")),
                ("unknown_event", siu("S99", "C10", placer="A-6")),
                ("unknown_kind", siu("S12", "C11", placer="A-7", kind="XYZ^Mystery")),
            ]:
                ack = await client.send(text)
                out[label] = (ack_code(ack), err_text(ack))
            garbage = await client.send_raw(b"hello, this is not HL7")
            out["garbage"] = (ack_code(garbage), err_text(garbage))
            # The listener is still there after all that: a new connection works.
            await client.close()
            again = await Client.open(port)
            ack = await again.send(
                siu("S14", "C12", start="20261211093000-0500", location="ROOM9^^^Riverside")
            )
            out["s14"] = (ack_code(ack), err_text(ack))
            await again.close()
        return out

    acks = asyncio.run(scenario())
    codes = {k: v[0] for k, v in acks.items()}
    assert codes == {
        "s12": "AA",
        "resend": "AA",
        "s13": "AA",
        "s12_b": "AA",
        "s15_b": "AA",
        "s13_after_s15": "AE",
        "s12_revive": "AE",
        "no_pid": "AE",
        "no_offset": "AA",
        "s26": "AA",
        "s26_again": "AA",
        "bad_time": "AE",
        "unknown_event": "AE",
        "unknown_kind": "AE",
        "garbage": "AR",
        "s14": "AA",
    }, acks
    assert "cancelled" in acks["s13_after_s15"][1]
    assert "PID-3" in acks["no_pid"][1]
    assert "unparseable time" in acks["bad_time"][1]

    with rt.sessions() as s:
        patients = s.scalars(select(Patient).order_by(Patient.id)).all()
        assert [(p.name, p.phone, p.email, p.language, p.tz) for p in patients] == [
            ("Alex Rivera", "+12125550101", "alex@example.org", "es", "America/New_York"),
            ("Sam Lee", "+16465550123", None, "en", "America/New_York"),
        ]
        assert str(patients[0].birth_date) == "1980-01-02"
        # No consent from a feed: nothing is sent until it is recorded.
        assert s.scalar(select(func.count()).select_from(Consent)) == 0
        appts = {a.id: a for a in s.scalars(select(Appointment).order_by(Appointment.id)).all()}
        assert len(appts) == 3  # A-1 (moved), A-2 (cancelled), A-4 (no-show); none twice
        a1, a2, a4 = appts.values()
        assert a1.starts_at == datetime(2026, 12, 11, 14, 30, tzinfo=UTC)  # 09:30 -05:00
        assert (a1.status, a1.kind, a1.version) == ("booked", "infusion", 3)  # moved, modified
        assert a1.location == "ROOM9 Riverside"
        assert a2.status == "cancelled"
        assert a4.status == "no_show"
        assert a2.starts_at == datetime(2026, 12, 12, 15, 0, tzinfo=UTC)  # not moved by C5
        # No offset: clinic time (New York, EST in December).
        assert a4.starts_at == datetime(2026, 12, 15, 13, 30, tzinfo=UTC)
        ids = {(e.entity, e.system, e.value) for e in s.scalars(select(ExternalId))}
        assert ("patient", "urn:hl7v2:authority:HOSP", "MRN1001") in ids
        assert ("appointment", "urn:hl7v2:placer:PMS", "A-1") in ids
        assert ("appointment", "urn:hl7v2:filler:EHR", "F-A-1") in ids
        noshow = s.scalars(select(FollowUp).where(FollowUp.reason == "no_show")).all()
        assert [(f.patient_id, f.severity) for f in noshow] == [(a4.patient_id, "routine")]
        assert [e["source"] for e in noshow[0].detail["evidence"]] == ["hl7 S26"]
        # Recorded as staff's marking is (services/records/visits.py): audited once.
        marked = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "appointment.no_show")
        ).all()
        assert [(e.entity_id, e.detail["source"]) for e in marked] == [(a4.id, "hl7 S26")]
        rows = s.scalars(select(Hl7Message).order_by(Hl7Message.id)).all()
        # The resend is not a second row; every row is stored verbatim with its outcome.
        assert sum(1 for r in rows if r.control_id == "C1") == 1
        assert {r.control_id: r.outcome for r in rows if r.ack_code == "AE"} == {
            "C5": "cancelled",
            "C5b": "cancelled",
            "C6": "no_patient_id",
            "C9": "bad_time",
            "C10": "unknown_event",
            "C11": "unknown_kind",
        }
        assert all(r.raw.startswith("MSH|") for r in rows if r.sender)
        p1, p2 = patients[0].id, patients[1].id
        a1_id, a2_id = a1.id, a2.id
    rt.close()

    # Reminders only where they belong once consent is recorded: A-1 at its new time, none for
    # the cancelled A-2, none for the no-show A-4 (its time has passed by then anyway).
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    cli.run("patients", "consent", str(p1), "--channel", "sms", "--source", "test")
    cli.run("patients", "consent", str(p2), "--channel", "sms", "--source", "test")
    rows = cli.json("preview", str(p1), "--days", "30", "--now", NOW.isoformat())
    reminders = [r for r in rows if r["kind"] == "reminder"]
    assert reminders and {r["appointment_id"] for r in reminders} == {a1_id}
    assert a2_id not in {r["appointment_id"] for r in rows}
    # 72 h and 24 h before 09:30, the infusion's evening-before message, and the 2 h one moved
    # out of quiet hours; nothing at the times planned for the old 14:00 slot.
    assert [r["local_time"][:16] for r in reminders] == [
        "2026-12-08T09:30",
        "2026-12-10T09:30",
        "2026-12-10T18:00",
        "2026-12-10T20:59",
    ]
    # The no-show's visit gets no reminders (its status is no_show), though it is still ahead.
    assert cli.json("preview", str(p2), "--days", "30", "--now", NOW.isoformat()) == []
    shown = cli.json("appointments", "list", str(p1))
    assert shown[0]["external_ids"]


def test_feed_state_in_ops_status_and_metrics(sqlite_url, console) -> None:
    from worker.web.metrics import render_metrics

    rt = build_runtime(
        make_settings(sqlite_url, clinic_tz="America/New_York", clock=f"{NOW.isoformat()}@1"),
        channels=console,
    )
    ctx = _ctx(rt)

    async def scenario() -> None:
        async with listener(ctx) as port:
            client = await Client.open(port)
            await client.send(siu("S12", "M1"))
            await client.send(siu("S12", "M2", mrn=None, placer="A-9"))
            await client.send_raw(b"garbage")
            await client.close()

    asyncio.run(scenario())
    body = render_metrics(rt)[0].decode()
    assert 'checkin_hl7_messages_total{outcome="applied"} 1.0' in body
    assert 'checkin_hl7_messages_total{outcome="no_patient_id"} 1.0' in body
    assert 'checkin_hl7_messages_total{outcome="not_hl7"} 1.0' in body
    assert "checkin_hl7_last_message_age_seconds" in body
    rt.close()
    cli = Checkin({"CHECKIN_DATABASE_URL": sqlite_url})
    later = "2026-12-01T17:05:00+00:00"
    feed = cli.json("ops", "status", "--now", later)["hl7_feed"]
    assert feed == {
        "received": 3,
        "applied": 1,
        "pending": 0,
        "refused": {"no_patient_id": 1, "not_hl7": 1},
        "last_message_seconds": 300.0,
    }
    text = cli.run("ops", "status", "--now", later).stdout
    assert "hl7 feed" in text and "received 3  applied 1  refused 2" in text


def test_one_new_patient_on_two_connections_at_once_is_one_patient(db_url, console) -> None:
    """Two bookings for the same new MRN arriving together on two connections, and the same
    message delivered on both: one patient, two appointments, the duplicate applied once."""
    rt = build_runtime(make_settings(db_url, clinic_tz="America/New_York"), channels=console)
    ctx = _ctx(rt)

    async def scenario() -> list[str]:
        async with listener(ctx) as port:
            clients = [await Client.open(port) for _ in range(4)]
            texts = [
                siu("S12", "R1", mrn="MRN9", placer="X-1"),
                siu("S12", "R2", mrn="MRN9", placer="X-2"),
                siu("S12", "R3", mrn="MRN9", placer="X-3"),
                siu("S12", "R3", mrn="MRN9", placer="X-3"),
            ]
            acks = await asyncio.gather(*(c.send(t) for c, t in zip(clients, texts, strict=True)))
            for c in clients:
                await c.close()
            return [ack_code(a) for a in acks]

    assert asyncio.run(scenario()) == ["AA"] * 4
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        assert s.scalar(select(func.count()).select_from(Appointment)) == 3
        assert s.scalar(select(func.count()).select_from(Hl7Message)) == 3
    rt.close()
