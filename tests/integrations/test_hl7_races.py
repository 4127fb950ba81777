"""Two connections creating the same new patient (or appointment) at once, made deterministic.

Connection B's transaction is stopped right after it looked the MRN up (none) and inserted its
own patient; connection A then applies its message and commits; B goes on. The MLLP test of
the same race (test_hl7_feed.py) hits this window only now and then, under load.

PostgreSQL only: on SQLite every transaction starts with BEGIN IMMEDIATE (worker/store/db.py),
so A cannot commit while B's transaction is open; there, B looks the MRN up after A's commit,
always, and the race does not exist.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, UOWTransaction

from tests.conftest import make_settings
from tests.integrations.siu import siu
from worker.domain.hl7_mapping import load_mapping
from worker.services.errors import ConcurrentCreate, InvalidInput
from worker.services.records.hl7_inbox import FeedContext, Result, handle
from worker.services.records.intake import PatientIn, upsert_patient
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import make_session_factory, session_scope
from worker.store.models import Appointment, AuditEvent, ExternalId, Hl7Message, Patient

NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
TZ = "America/New_York"


def _ctx(rt: Runtime) -> FeedContext:
    return FeedContext(
        sessions=rt.sessions,
        mapping=load_mapping(None),
        clinic_tz=TZ,
        update_contacts=False,
        now=lambda: NOW,
    )


def _interleaved(rt: Runtime, created: type, first: str, second: str) -> tuple[Result, Result]:
    """Apply `second` on connection B, and `first` on connection A in the middle of it: once B
    has inserted its own `created` row (after looking its ids up), before B links the ids.
    (A's ACK, B's ACK.)"""
    a = _ctx(rt)
    b = replace(a, sessions=make_session_factory(rt.engine))
    a_results: list[Result] = []

    @event.listens_for(b.sessions, "after_flush")
    def meanwhile(session: Session, _flush: UOWTransaction) -> None:
        # session.new still lists what this flush inserted. Only B's first attempt: its retry
        # must run undisturbed.
        if not a_results and any(isinstance(o, created) for o in session.new):
            a_results.append(handle(a, first))

    b_result = handle(b, second)
    assert len(a_results) == 1, "B never created its own row: nothing was interleaved"
    return a_results[0], b_result


def test_a_new_patient_committed_meanwhile_on_another_connection_is_one_patient(
    pg_url: str, console
) -> None:
    rt = build_runtime(make_settings(pg_url, clinic_tz=TZ), channels=console)
    a, b = _interleaved(
        rt,
        Patient,
        siu("S12", "R1", mrn="MRN9", placer="X-1"),
        siu("S12", "R2", mrn="MRN9", placer="X-2"),
    )
    # B lost the race for the patient, not an argument about it: applied again, it found A's.
    assert (a.code, a.outcome, b.code, b.outcome) == ("AA", "applied", "AA", "applied"), b.ack
    with rt.sessions() as s:
        patients = s.scalars(select(Patient)).all()
        assert len(patients) == 1
        pid = patients[0].id
        mrns = s.execute(
            select(ExternalId.entity_id).where(
                ExternalId.entity == "patient", ExternalId.value == "MRN9"
            )
        ).all()
        assert [m for (m,) in mrns] == [pid]
        # Both bookings kept, both on the one patient.
        booked = s.execute(select(Appointment.patient_id)).all()
        assert sorted(p for (p,) in booked) == [pid, pid]
        rows = s.execute(
            select(Hl7Message.control_id, Hl7Message.ack_code, Hl7Message.patient_id).order_by(
                Hl7Message.control_id
            )
        ).all()
        assert [tuple(r) for r in rows] == [("R1", "AA", pid), ("R2", "AA", pid)]
        # B's first attempt left nothing behind: one patient.add, for A's patient.
        added = s.scalars(select(AuditEvent.entity_id).where(AuditEvent.action == "patient.add"))
        assert list(added) == [pid]
    rt.close()


def test_a_new_appointment_committed_meanwhile_on_another_connection_is_one_appointment(
    pg_url: str, console
) -> None:
    """The same race for a booking: two S12 (two control ids) for one SCH-1 id at once."""
    rt = build_runtime(make_settings(pg_url, clinic_tz=TZ), channels=console)
    ctx = _ctx(rt)
    assert handle(ctx, siu("S12", "R0", mrn="MRN9", placer="X-0")).code == "AA"
    a, b = _interleaved(
        rt,
        Appointment,
        siu("S12", "R1", mrn="MRN9", placer="X-1", start="20261210140000-0500"),
        siu("S12", "R2", mrn="MRN9", placer="X-1", start="20261211093000-0500"),
    )
    assert (a.code, b.code) == ("AA", "AA"), b.ack
    with rt.sessions() as s:
        x1 = s.scalars(
            select(Appointment)
            .join(ExternalId, ExternalId.entity_id == Appointment.id)
            .where(ExternalId.entity == "appointment", ExternalId.value == "X-1")
        ).all()
        # One booking, as if the two messages had come one after the other: B's time, last.
        assert [(x.starts_at, x.status) for x in x1] == [
            (datetime(2026, 12, 11, 14, 30, tzinfo=UTC), "booked")
        ]
        assert s.scalar(select(func.count()).select_from(Appointment)) == 2
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
    rt.close()


def test_an_id_of_another_patient_on_a_known_patient_is_still_refused(db_url: str, console) -> None:
    """Only the creation path's lost race is retried: linking a known patient to an MRN that
    names another one is a conflict in the data, and stays a plain InvalidInput."""
    rt = build_runtime(make_settings(db_url, clinic_tz=TZ), channels=console)
    system = "urn:hl7v2:authority:HOSP"
    with session_scope(rt.sessions) as s:
        for name, mrn in (("Alex Rivera", "M1"), ("Sam Lee", "M2")):
            upsert_patient(
                s,
                PatientIn(name, TZ, ids=((system, mrn),)),
                now=NOW,
                actor="t",
                update_contacts=False,
            )
    with rt.sessions() as s, pytest.raises(InvalidInput, match="already belongs") as caught:
        upsert_patient(
            s,
            PatientIn("Alex Rivera", TZ, ids=((system, "M1"), (system, "M2"))),
            now=NOW,
            actor="t",
            update_contacts=False,
        )
    assert not isinstance(caught.value, ConcurrentCreate)
    rt.close()


def test_an_appointment_id_of_another_booking_is_still_an_ae(db_url: str, console) -> None:
    """The same through the feed: SCH-1 names one booking and SCH-2 another. AE `conflict` at
    once (not three attempts and an AR), and nothing changed."""
    rt = build_runtime(make_settings(db_url, clinic_tz=TZ), channels=console)
    ctx = _ctx(rt)
    assert handle(ctx, siu("S12", "R1", placer="X-1")).code == "AA"
    assert handle(ctx, siu("S12", "R2", placer="X-2")).code == "AA"
    crossed = siu("S12", "R3", placer="X-1", start="20261211093000-0500")
    crossed = crossed.replace("|F-X-1^EHR|", "|F-X-2^EHR|")
    result = handle(ctx, crossed)
    assert (result.code, result.outcome) == ("AE", "conflict"), result.ack
    with rt.sessions() as s:
        starts = s.scalars(select(Appointment.starts_at).order_by(Appointment.id)).all()
        assert starts == [datetime(2026, 12, 10, 19, 0, tzinfo=UTC)] * 2
    rt.close()
