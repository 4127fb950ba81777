"""The planner's batched, memoised path writes exactly the rows the per-schedule specs describe.

`preview` (and these tests) compute messages one schedule at a time with checkin_specs and
reminder_specs; `plan` shares expansions between schedules and writes plain rows many at a time,
several batches in flight. Both must agree on every column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from tests.conftest import make_settings
from worker.channels import Channels
from worker.config import parse_window
from worker.domain.planning import (
    AppointmentView,
    MessageSpec,
    PatientView,
    ScheduleView,
    checkin_specs,
    reminder_specs,
)
from worker.services.outbound.plan import plan
from worker.services.records.appointments import add_appointment
from worker.services.records.patients import add_patient
from worker.services.records.schedules import add_schedule, set_schedule_status
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import Appointment, Message, Patient, Schedule

ZONES = ("America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata")
RULES = (
    ("mood", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"),
    ("pain", "FREQ=DAILY;BYHOUR=7,22;BYMINUTE=30"),  # both outside the default window
    ("phq9", "FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0"),
    ("sleep", "FREQ=DAILY;INTERVAL=2;BYHOUR=20;BYMINUTE=15"),
)
KINDS = ("infusion", "therapy", "physical_therapy", "consult")
# Fixed, and far from any DST change in these zones, so the test never depends on the date.
NOW = datetime(2031, 6, 11, 14, 7, 30, tzinfo=UTC)


def seed(rt: Runtime) -> None:
    """Patients created at different moments of the previous day, with schedules that started
    on different days, in four zones, some with their own send window; a few appointments."""
    with session_scope(rt.sessions) as session:
        for i in range(40):
            created = NOW - timedelta(hours=20) + timedelta(minutes=37 * i)
            p = add_patient(
                session,
                now=created,
                name=f"P{i}",
                tz=ZONES[i % 4],
                channel="sms",
                phone=f"+1212555{i:04d}",
                consent=["sms"],
                confirm_optin=False,  # no opt-in text: not what this test counts
                send_window="10:00-18:00" if i % 3 == 0 else None,
                language="es" if i % 5 == 0 else "en",
            )
            instrument, rule = RULES[i % 4]
            add_schedule(
                session,
                p.id,
                now=created,
                instrument=instrument,
                rrule=rule,
                start=date(2031, 6, 10) - timedelta(days=11 * i),
            )
            if i % 4 == 1:
                local = (NOW + timedelta(days=1 + i % 2)).astimezone(UTC)
                add_appointment(
                    session,
                    p.id,
                    now=created,
                    kind=KINDS[i % 4],
                    at=f"{local:%Y-%m-%d}T13:00",
                )
        archived = session.scalars(select(Patient).where(Patient.name == "P7")).one()
        archived.archived_at = NOW - timedelta(hours=1)
    with session_scope(rt.sessions) as session:
        paused = session.scalars(
            select(Schedule)
            .join(Patient, Patient.id == Schedule.patient_id)
            .where(Patient.name == "P9")
        ).one()
        set_schedule_status(session, paused.id, "paused", now=NOW - timedelta(hours=1))


def expected(rt: Runtime, horizon: datetime) -> dict[str, MessageSpec]:
    """Every message the per-schedule specs say is due in the window, by dedupe key."""
    max_late = timedelta(minutes=rt.settings.checkin_max_late_minutes)
    specs: list[MessageSpec] = []
    with session_scope(rt.sessions) as session:
        patients = {p.id: p for p in session.scalars(select(Patient))}

        def view(pid: int) -> PatientView:
            p = patients[pid]
            window = parse_window(p.send_window or rt.settings.send_window)
            return PatientView(p.id, p.tz, p.channel, p.language, window)

        for s in session.scalars(select(Schedule).where(Schedule.status == "active")):
            if patients[s.patient_id].archived_at is None:
                specs += checkin_specs(
                    view(s.patient_id),
                    ScheduleView(s.id, s.instrument, s.rrule, s.start_date, s.until_date),
                    after=s.planned_until or s.created_at,
                    before=horizon,
                    max_late=max_late,
                )
        for a in session.scalars(select(Appointment)):
            if patients[a.patient_id].archived_at is None:
                specs += reminder_specs(
                    view(a.patient_id),
                    AppointmentView(a.id, a.kind, a.starts_at, a.version, a.location),
                    after=a.planned_until or a.updated_at,
                    before=horizon,
                    max_late=max_late,
                )
    return {s.dedupe_key: s for s in specs}


def stored(rt: Runtime) -> dict[str, dict[str, Any]]:
    with session_scope(rt.sessions) as session:
        return {
            m.dedupe_key: {
                "patient_id": m.patient_id,
                "channel": m.channel,
                "kind": m.kind,
                "template": m.template,
                "language": m.language,
                "instrument": m.instrument,
                "schedule_id": m.schedule_id,
                "appointment_id": m.appointment_id,
                "appointment_version": m.appointment_version,
                "due_at": m.due_at,
                "not_after": m.not_after,
                "local_time": m.local_time,
                "context": m.context,
                "priority": m.priority,
                "exempt_quiet_hours": m.exempt_quiet_hours,
                "status": m.status,
                "attempts": m.attempts,
                "created_at": m.created_at,
            }
            for m in session.scalars(select(Message).where(Message.status == "scheduled"))
        }


def as_row(spec: MessageSpec, patient_id: int) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "channel": spec.channel,
        "kind": spec.kind,
        "template": spec.template,
        "language": spec.language,
        "instrument": spec.instrument,
        "schedule_id": spec.schedule_id,
        "appointment_id": spec.appointment_id,
        "appointment_version": spec.appointment_version,
        "due_at": spec.due_at,
        "not_after": spec.not_after,
        "local_time": spec.local_time,
        "context": spec.context,
        "priority": "bulk",
        "exempt_quiet_hours": False,
        "status": "scheduled",
        "attempts": 0,
        "created_at": NOW,
    }


def test_batched_planning_writes_what_the_specs_say(db_url: str, console: Channels) -> None:
    rt = build_runtime(make_settings(db_url), channels=console)
    try:
        seed(rt)
        horizon = NOW + timedelta(hours=rt.settings.plan_horizon_hours)
        want = expected(rt, horizon)
        owner = owner_of(rt)
        # Batches of 3: many batches, and on PostgreSQL several written at once.
        added = plan(rt, NOW, batch=3)
        got = stored(rt)
        assert added == len(got) == len(want) > 40
        assert got == {key: as_row(spec, owner(spec)) for key, spec in want.items()}
        assert plan(rt, NOW, batch=3) == 0, "a second run adds nothing"
        with session_scope(rt.sessions) as session:
            planned = {
                name: until
                for name, until in session.execute(
                    select(Patient.name, Schedule.planned_until).join(
                        Patient, Patient.id == Schedule.patient_id
                    )
                )
            }
        # The archived patient's and the paused schedule are left alone.
        assert planned.pop("P7") is None
        assert planned.pop("P9") is None
        assert set(planned.values()) == {horizon}
    finally:
        rt.close()


def owner_of(rt: Runtime) -> Any:
    """The patient id of a spec, from its schedule or appointment."""
    with session_scope(rt.sessions) as session:
        schedules = {i: p for i, p in session.execute(select(Schedule.id, Schedule.patient_id))}
        appts = {i: p for i, p in session.execute(select(Appointment.id, Appointment.patient_id))}

    def owner(spec: MessageSpec) -> int:
        if spec.schedule_id is not None:
            return schedules[spec.schedule_id]
        assert spec.appointment_id is not None
        return appts[spec.appointment_id]

    return owner


def test_later_runs_top_up_from_where_the_last_one_stopped(db_url: str, console: Channels) -> None:
    rt = build_runtime(make_settings(db_url), channels=console)
    try:
        seed(rt)
        first = plan(rt, NOW, batch=4)
        later = NOW + timedelta(hours=rt.settings.plan_horizon_hours // 2)
        horizon = later + timedelta(hours=rt.settings.plan_horizon_hours)
        want = expected(rt, horizon)  # from each schedule's planned_until on
        added = plan(rt, later, batch=4)
        assert added == len(want) > 0
        assert len(stored(rt)) == first + added
        with session_scope(rt.sessions) as session:
            session.execute(update(Schedule).values(planned_until=None))
            session.execute(update(Appointment).values(planned_until=None))
        assert plan(rt, later, batch=4) == 0, "everything from the start is there, once"
    finally:
        rt.close()
