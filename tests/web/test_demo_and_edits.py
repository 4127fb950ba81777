"""The demo clinic's sign-in and history, and editing a patient, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from tests.cli import Checkin
from worker.services.errors import InvalidInput
from worker.services.outbound.plan import plan
from worker.services.records import accounts
from worker.services.records.patient_updates import update_patient
from worker.services.records.patients import add_patient, has_consent
from worker.services.records.schedules import add_schedule
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import AuditEvent, FollowUp, Message, Response, User

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 07:00 in New York


def test_the_demo_prints_a_working_sign_in_and_renews_it(db_url: str, rt: Runtime) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    first = cli.json("demo")
    sign_in = first["sign_in"]
    assert sign_in["email"] == "demo@clinic.example" and sign_in["url"].endswith("/login")
    with session_scope(rt.sessions) as session:
        user = accounts.authenticate(session, sign_in["email"], sign_in["password"])
        assert user is not None and user.role == "clinician"
        alex = first["patients"][0]["id"]
        moods = session.scalar(
            select(func.count()).where(Response.patient_id == alex, Response.item == "mood")
        )
        assert moods is not None and moods >= 25
        urgent = session.scalars(
            select(FollowUp).where(FollowUp.severity == "urgent", FollowUp.status == "open")
        ).all()
        assert len(urgent) == 1 and urgent[0].last_paged_at is None  # nobody is paged by a demo
        seeded = session.scalars(
            select(Message.provider_id).where(Message.status == "delivered")
        ).all()
        assert seeded and all(p and p.startswith("demo-") for p in seeded)
    second = cli.json("demo")["sign_in"]
    assert second["password"] != sign_in["password"]
    with session_scope(rt.sessions) as session:
        assert accounts.authenticate(session, sign_in["email"], sign_in["password"]) is None
        assert accounts.authenticate(session, second["email"], second["password"]) is not None
        assert session.scalar(select(func.count()).select_from(User)) == 1


def patient_with_checkins(rt: Runtime) -> int:
    with session_scope(rt.sessions) as session:
        p = add_patient(
            session,
            now=NOW,
            name="Pat Doe",
            tz="America/New_York",
            channel="sms",
            phone="+12125550160",
            consent=["sms"],
            confirm_optin=False,  # no opt-in text: not what this test counts
        )
        add_schedule(
            session,
            p.id,
            now=NOW,
            instrument="mood",
            rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
            start=date(2026, 11, 20),
        )
        return p.id


def due_times(rt: Runtime, pid: int) -> list[str]:
    with session_scope(rt.sessions) as session:
        rows = session.scalars(
            select(Message.due_at)
            .where(Message.patient_id == pid, Message.status == "scheduled")
            .order_by(Message.due_at)
        ).all()
        return [d.strftime("%d %H:%M") for d in rows]


def edit(rt: Runtime, pid: int, **changes: str | None) -> list[str]:
    values: dict[str, str | None] = {
        "name": "Pat Doe",
        "tz": "America/New_York",
        "channel": "sms",
        "phone": "+12125550160",
        "email": None,
        "send_window": None,
        "language": "en",
    } | changes
    with session_scope(rt.sessions) as session:
        _, changed = update_patient(session, pid, now=NOW, actor="Dr. Rivera", **values)  # type: ignore[arg-type]
        return changed


def test_a_new_time_zone_replans_the_messages_not_yet_sent(rt: Runtime) -> None:
    pid = patient_with_checkins(rt)
    plan(rt, NOW)
    assert due_times(rt, pid) == ["20 14:00", "21 14:00"]  # 09:00 in New York
    assert edit(rt, pid, tz="America/Los_Angeles") == ["tz"]
    assert due_times(rt, pid) == []  # the old rows are gone before the planner runs again
    plan(rt, NOW)
    assert due_times(rt, pid) == ["20 17:00", "21 17:00"]  # 09:00 in Los Angeles
    with session_scope(rt.sessions) as session:
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient.update")
        ).all()
        assert event.actor == "Dr. Rivera" and event.detail == {"changed": ["tz"]}


def test_an_unchanged_form_writes_nothing_and_bad_input_changes_nothing(rt: Runtime) -> None:
    pid = patient_with_checkins(rt)
    assert edit(rt, pid) == []
    for bad, message in (
        ({"phone": "12"}, "invalid phone number"),
        ({"channel": "email"}, "an email address is required for the email channel"),
        ({"send_window": "25:00-26:00"}, "send window"),
        ({"language": "fr"}, "language must be one of"),
        ({"name": " "}, "name is empty"),
    ):
        with pytest.raises(InvalidInput, match=message):
            edit(rt, pid, **bad)
    with session_scope(rt.sessions) as session:
        assert has_consent(session, pid, "sms")
        assert session.scalars(select(AuditEvent.action)).all() == ["patient.add", "schedule.add"]
