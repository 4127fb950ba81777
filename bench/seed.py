"""Seeding many patients fast: SQLAlchemy Core executemany into the project's tables.

The per-patient services (`add_patient`, `add_schedule`) validate and audit one patient at a
time, which is right for a clinic and far too slow for 100,000 rows. Here the same rows are
written in bulk (explicit ids, sequences moved on afterwards on PostgreSQL); every value is one
the services would have written (E.164 phones, normalised RRULEs, consent granted). What is
measured afterwards is always the real code: `worker.services.outbound.plan.plan`, the real workers.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, text, update

from worker.domain.schedule import parse_rrule
from worker.store.db import make_engine
from worker.store.models import Appointment, Consent, Message, Patient, Schedule

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Australia/Sydney",
)
CHUNK = 5000


def phone(i: int) -> str:
    """A distinct E.164 number per patient index (up to 10 million)."""
    return f"+1646{i:07d}"


def _chunks(rows: Iterable[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(conn: Connection, model: Any, rows: Iterable[dict[str, Any]]) -> int:
    table: Table = model.__table__
    n = 0
    for batch in _chunks(rows):
        conn.execute(table.insert(), batch)
        n += len(batch)
    return n


def _fix_sequences(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return
    for table in ("patients", "consents", "schedules", "appointments"):
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT max(id) FROM {table}), 1))"
            )
        )


@dataclass
class Seeded:
    patients: int = 0
    schedules: int = 0
    appointments: int = 0


def _patient(i: int, tz: str, now: datetime, window: str | None) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"Bench Patient {i}",
        "phone": phone(i),
        "email": None,
        "tz": tz,
        "channel": "sms",
        "language": "en",
        "send_window": window,
        "created_at": now - timedelta(days=30),
        "archived_at": None,
    }


def _consent(i: int, now: datetime) -> dict[str, Any]:
    return {
        "id": i,
        "patient_id": i,
        "channel": "sms",
        "granted_at": now - timedelta(days=30),
        "source": "signed form (bench)",
        "withdrawn_at": None,
        "withdrawn_source": None,
    }


def _schedule(
    sid: int,
    pid: int,
    instrument: str,
    rrule: str,
    created: datetime,
    start: date,
    until: date | None = None,
) -> dict[str, Any]:
    return {
        "id": sid,
        "patient_id": pid,
        "enrollment_id": None,
        "instrument": instrument,
        "rrule": parse_rrule(rrule),
        "start_date": start,
        "until_date": until,
        "status": "active",
        "created_at": created,
        "updated_at": created,
        "planned_until": None,
    }


def seed_clinic(url: str, n: int, now: datetime, seed: int = 1) -> Seeded:
    """A clinic of n patients for planning: everyone has a daily check-in (`mood_pain`, at a
    local hour between 09:00 and 20:45, clinic default send window); one in five also a weekly
    PHQ-9 (a random weekday, 10:00); one in ten an appointment one to three days ahead (their
    72 h / 24 h / 2 h reminders, and the evening-before message for infusions). Six zones from
    Sydney to Los Angeles. Schedules are created at `now`, so planning covers [now, horizon)."""
    rng = random.Random(seed)
    out = Seeded()
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            zones = [ZONES[i % len(ZONES)] for i in range(n + 1)]
            out.patients = _insert(
                conn, Patient, (_patient(i, zones[i], now, None) for i in range(1, n + 1))
            )
            _insert(conn, Consent, (_consent(i, now) for i in range(1, n + 1)))

            def schedules() -> Iterator[dict[str, Any]]:
                sid = 0
                start = (now - timedelta(days=10)).date()
                for i in range(1, n + 1):
                    sid += 1
                    hour, minute = rng.randint(9, 20), rng.choice((0, 15, 30, 45))
                    yield _schedule(
                        sid,
                        i,
                        "mood_pain",
                        f"FREQ=DAILY;BYHOUR={hour};BYMINUTE={minute}",
                        now,
                        start,
                    )
                    if i % 5 == 0:
                        sid += 1
                        day = rng.choice(("MO", "TU", "WE", "TH", "FR", "SA", "SU"))
                        yield _schedule(
                            sid, i, "phq9", f"FREQ=WEEKLY;BYDAY={day};BYHOUR=10", now, start
                        )

            out.schedules = _insert(conn, Schedule, schedules())

            def appointments() -> Iterator[dict[str, Any]]:
                kinds = ("infusion", "therapy", "physical_therapy", "consult")
                for aid, i in enumerate(range(10, n + 1, 10), start=1):
                    local_now = now.astimezone(ZoneInfo(zones[i]))
                    day = local_now.date() + timedelta(days=rng.randint(1, 3))
                    local = datetime(
                        day.year, day.month, day.day, rng.randint(9, 16), 0, tzinfo=local_now.tzinfo
                    )
                    yield {
                        "id": aid,
                        "patient_id": i,
                        "kind": kinds[aid % len(kinds)],
                        "starts_at": local.astimezone(UTC),
                        "location": "Suite 200",
                        "status": "booked",
                        "version": 1,
                        "confirmed_at": None,
                        "created_at": now - timedelta(days=7),
                        "updated_at": now - timedelta(days=7),
                        "planned_until": None,
                    }

            out.appointments = _insert(conn, Appointment, appointments())
            _fix_sequences(conn)
    finally:
        engine.dispose()
    return out


def seed_due_checkins(url: str, n: int, now: datetime, first: int = 1) -> None:
    """n patients (ids first..first+n-1), each with a daily `mood` check-in whose occurrence was
    two minutes ago, send window 00:00-24:00: after `plan(rt, now)` there are n due rows."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            ids = range(first, first + n)
            zones = {i: ZONES[i % 4] for i in ids}  # the four US zones: "today" is clear
            _insert(conn, Patient, (_patient(i, zones[i], now, "00:00-24:00") for i in ids))
            _insert(conn, Consent, (_consent(i, now) for i in ids))

            def schedules() -> Iterator[dict[str, Any]]:
                for i in ids:
                    local = (now - timedelta(minutes=2)).astimezone(ZoneInfo(zones[i]))
                    yield _schedule(
                        i,
                        i,
                        "mood",
                        f"FREQ=DAILY;BYHOUR={local.hour};BYMINUTE={local.minute}",
                        now - timedelta(hours=1),
                        date(2020, 1, 1),
                        local.date(),
                    )

            _insert(conn, Schedule, schedules())
            _fix_sequences(conn)
    finally:
        engine.dispose()


def seed_patients(url: str, ids: range, now: datetime) -> None:
    """Patients with SMS consent and nothing scheduled (they text in)."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            _insert(conn, Patient, (_patient(i, ZONES[0], now, None) for i in ids))
            _insert(conn, Consent, (_consent(i, now) for i in ids))
            _fix_sequences(conn)
    finally:
        engine.dispose()


PARKED = timedelta(days=1)


def park(url: str, now: datetime) -> int:
    """Make every scheduled row due a day ahead, so nothing is due while the processes start."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            res = conn.execute(
                update(Message).where(Message.status == "scheduled").values(due_at=now + PARKED)
            )
            return int(res.rowcount)
    finally:
        engine.dispose()


def release(url: str, now: datetime) -> int:
    """Make every scheduled row due now (the start of a measurement)."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            res = conn.execute(
                update(Message).where(Message.status == "scheduled").values(due_at=now)
            )
            return int(res.rowcount)
    finally:
        engine.dispose()
