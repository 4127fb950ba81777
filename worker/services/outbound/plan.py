"""The planner: materialise the next hours of check-ins and reminders as message rows.

Idempotent by construction: every row has a UNIQUE dedupe key and is inserted with
ON CONFLICT DO NOTHING, so running it twice, or on two machines at once, adds nothing.
`planned_until` on schedules and appointments only keeps ticks cheap; correctness never rests
on it.

How a run goes (bench/ANALYSIS.md, "Planning"): the schedules, then the appointments, that need
topping up are read a batch at a time as plain columns; each batch's rows are computed from
memoised expansions (domain/planning) and written as plain tuples, many per statement
(store/plan_rows). Computing overlaps writing: on SQLite (one writer) a helper thread
computes a batch while the one connection writes the batch before, in the transaction that
reads the next; on PostgreSQL, WRITERS batches are computed and written at once, each in its own
transaction. A batch is computed outside the transaction that writes it, so that transaction
first reads its schedules or appointments again and leaves out any edited, paused, cancelled
or archived since (different `updated_at`, or no longer plannable): the next tick plans them
afresh.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Select,
    Table,
    func,
    or_,
    select,
    type_coerce,
)

from worker.config import parse_window
from worker.domain.planning import (
    AppointmentView,
    CheckinSlot,
    PatientView,
    checkin_context,
    checkin_key,
    checkin_template,
    reminder_specs,
    shared_after,
    shared_slots,
)
from worker.services.outbound.after_visit import plan_after_visits
from worker.services.runtime import Runtime
from worker.store.models import Appointment, Patient, Schedule
from worker.store.plan_rows import (
    APPOINTMENT_ID,
    SCHEDULE_ID,
    DbValues,
    Row,
    id_in,
    insert_rows,
    mark_planned,
)
from worker.store.record_status import AppointmentStatus

BATCH = 2000
# PostgreSQL batches in flight at once (see _walk_writers).
WRITERS = 2
# A schedule is topped up once its planned horizon is this much shorter than the full horizon.
REFILL_MARGIN = timedelta(hours=1)

SCHEDULES: Table = Schedule.__table__  # type: ignore[assignment]
APPOINTMENTS: Table = Appointment.__table__  # type: ignore[assignment]
PATIENTS: Table = Patient.__table__  # type: ignore[assignment]


def patient_view(patient: Patient, default_window: str) -> PatientView:
    return PatientView(
        id=patient.id,
        tz=patient.tz,
        channel=patient.channel,
        language=patient.language,
        window=parse_window(patient.send_window or default_window),
    )


def plan(rt: Runtime, now: datetime, *, batch: int = BATCH) -> int:
    """Plan every active schedule and booked appointment up to the horizon. Returns rows added.

    `batch` schedules or appointments are read, computed and written at a time."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    horizon = now + timedelta(hours=rt.settings.plan_horizon_hours)
    run = _Run(rt, now, horizon, batch)
    planned = run.walk(_schedules(run)) + run.walk(_appointments(run))
    return planned + plan_after_visits(rt, now, horizon)


@dataclass
class _Computed:
    """A batch ready to write: the `updated_at` of each row as read (`_version`), and its
    messages."""

    seen: dict[int, Any]
    rows: list[Row]


@dataclass(frozen=True)
class _Source:
    """Schedules or appointments: what to read, what must still hold when writing, and how a
    read row becomes message rows."""

    table: Table
    columns: Sequence[ColumnElement[Any]]
    plannable: Sequence[ColumnElement[bool]]
    owner_index: int  # where a message row holds its schedule or appointment id
    rows_for: Callable[[Any], list[Row]]


class _Run:
    def __init__(self, rt: Runtime, now: datetime, horizon: datetime, batch: int) -> None:
        self.rt = rt
        self.batch = batch
        self.now = now
        self.horizon = horizon
        self.max_late = timedelta(minutes=rt.settings.checkin_max_late_minutes)
        self.db = DbValues(rt.engine.dialect)
        self.constants = self.db.constants(now)
        self._windows: dict[str | None, tuple[time, time]] = {}

    def window(self, send_window: str | None) -> tuple[time, time]:
        found = self._windows.get(send_window)
        if found is None:
            found = parse_window(send_window or self.rt.settings.send_window)
            self._windows[send_window] = found
        return found

    def walk(self, source: _Source) -> int:
        """Plan every row of `source` that needs it, a batch at a time. Returns rows added."""
        if self.rt.engine.dialect.name == "sqlite":
            return self._walk_one_writer(source)
        return self._walk_writers(source)

    def _walk_one_writer(self, source: _Source) -> int:
        # SQLite has one writer at a time, and a transaction that waits for the lock sleeps in
        # steps of up to 100 ms: one connection does all the reading and writing, and the next
        # batch is computed while it writes the one before.
        added = 0
        last_id = 0
        ready: _Computed | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan") as helper:
            while True:
                future: Future[_Computed] | None = None
                with self.rt.engine.begin() as conn:
                    batch = conn.execute(self._due(source, last_id)).all()
                    if batch:
                        future = helper.submit(self._compute, source, batch)
                    if ready is not None:
                        added += self._write(conn, source, ready)
                if future is None:
                    return added
                last_id = batch[-1].id
                ready = future.result()

    def _walk_writers(self, source: _Source) -> int:
        # PostgreSQL: most of a batch's time is the server's (inserting, checking foreign keys,
        # updating indexes), in one backend process per connection. WRITERS batches are
        # computed and written at once, each in its own transaction on its own connection;
        # they touch disjoint schedules and dedupe keys, so they never wait for each other.
        added = 0
        last_id = 0
        pending: deque[Future[int]] = deque()
        with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="plan") as writers:
            # On an error, leaving this block first waits for the batches under way.
            while True:
                with self.rt.engine.begin() as conn:
                    batch = conn.execute(self._due(source, last_id)).all()
                if not batch:
                    break
                last_id = batch[-1].id
                pending.append(writers.submit(self._plan_batch, source, batch))
                if len(pending) >= WRITERS:
                    added += pending.popleft().result()
            return added + sum(f.result() for f in pending)

    def _plan_batch(self, source: _Source, batch: Sequence[Any]) -> int:
        computed = self._compute(source, batch)
        with self.rt.engine.begin() as conn:
            return self._write(conn, source, computed)

    def _due(self, source: _Source, last_id: int) -> Select[Any]:
        t = source.table
        return (
            select(*source.columns)
            .join(PATIENTS, PATIENTS.c.id == t.c.patient_id)
            .where(
                t.c.id > last_id,
                or_(t.c.planned_until.is_(None), t.c.planned_until < self.horizon - REFILL_MARGIN),
                *source.plannable,
            )
            .order_by(t.c.id)
            .limit(self.batch)
        )

    def _compute(self, source: _Source, batch: Sequence[Any]) -> _Computed:
        rows: list[Row] = []
        for r in batch:
            rows += source.rows_for(r)
        return _Computed({r.id: r.row_version for r in batch}, rows)

    def _write(self, conn: Connection, source: _Source, ready: _Computed) -> int:
        """Insert a computed batch's rows and move its `planned_until` to the horizon."""
        t = source.table
        # Rows edited, paused, cancelled or archived since they were read are left out; the
        # next tick plans them afresh. On SQLite nothing can change them from here to commit
        # (one writer); on PostgreSQL this closes all but a sliver of that window, and the
        # conditional update below still never overwrites a concurrent edit's planned_until.
        current = conn.execute(
            select(t.c.id, _version(t))
            .join(PATIENTS, PATIENTS.c.id == t.c.patient_id)
            .where(id_in(conn, t, ready.seen), *source.plannable)
        ).all()
        valid = sorted(i for i, updated in current if ready.seen.get(i) == updated)
        if not valid:
            return 0
        rows = ready.rows
        if len(valid) < len(ready.seen):
            keep = set(valid)
            rows = [row for row in rows if row[source.owner_index] in keep]
        added = insert_rows(conn, rows, self.constants)
        mark_planned(conn, t, [(i, ready.seen[i]) for i in valid], self.horizon)
        return added


def _version(table: Table) -> ColumnElement[Any]:
    # `updated_at` as the driver returns it: it is only compared with itself and written back,
    # so the UTC type's conversion (a Python call per row) is skipped.
    return type_coerce(table.c.updated_at, DateTime(timezone=True)).label("row_version")


def _not_archived() -> ColumnElement[bool]:
    return PATIENTS.c.archived_at.is_(None)


def _schedules(run: _Run) -> _Source:
    s, p = SCHEDULES, PATIENTS
    db = run.db
    # Check-ins come from memoised expansions (planning.shared_slots), one per rule, zone,
    # window, day of `after` and shared start. Per distinct expansion and patient settings,
    # each check-in's instant, its local time and the message columns it shares with every
    # such schedule are converted for the database once; `found` remembers which expansion a
    # schedule's own key gives, so that schedules whose start dates differ still share it.
    found: dict[tuple[Any, ...], list[tuple[datetime, str, tuple[Any, ...]]]] = {}
    converted: dict[tuple[Any, ...], list[tuple[datetime, str, tuple[Any, ...]]]] = {}

    def convert(slots: tuple[CheckinSlot, ...], r: Any) -> list[tuple[Any, str, tuple[Any, ...]]]:
        template = checkin_template(r.instrument)
        context = db.json(checkin_context(r.instrument))
        return [
            (
                slot.at,
                slot.local_key,
                (
                    r.channel,
                    "checkin",
                    template,
                    r.language,
                    r.instrument,
                    db.instant(slot.due_at),
                    db.instant(slot.due_at + run.max_late),
                    slot.local_time,
                    context,
                ),
            )
            for slot in slots
        ]

    def rows_for(r: Any) -> list[Row]:
        window = run.window(r.send_window)
        after = r.after
        since = shared_after(after)
        key: tuple[Any, ...] = (r.rrule, r.tz, window, r.start_date, r.until_date, since)
        key += (r.instrument, r.channel, r.language)
        slots = found.get(key)
        if slots is None:
            shared = shared_slots(
                r.rrule, r.tz, r.start_date, r.until_date, since, run.horizon, window
            )
            settings = (shared, r.instrument, r.channel, r.language)
            slots = converted.get(settings)
            if slots is None:
                slots = converted[settings] = convert(shared, r)
            found[key] = slots
        return [
            (r.patient_id, r.id, None, None, checkin_key(r.id, local_key), shared_columns)
            for at, local_key, shared_columns in slots
            if at >= after
        ]

    return _Source(
        table=s,
        columns=(
            s.c.id,
            s.c.patient_id,
            s.c.instrument,
            s.c.rrule,
            s.c.start_date,
            s.c.until_date,
            # Planned from the last horizon, or from when the schedule was created.
            func.coalesce(s.c.planned_until, s.c.created_at).label("after"),
            _version(s),
            p.c.tz,
            p.c.channel,
            p.c.language,
            p.c.send_window,
        ),
        plannable=(s.c.status == "active", _not_archived()),
        owner_index=SCHEDULE_ID,
        rows_for=rows_for,
    )


def _appointments(run: _Run) -> _Source:
    a, p = APPOINTMENTS, PATIENTS
    db = run.db

    def rows_for(r: Any) -> list[Row]:
        # A tenth as many rows as check-ins, and their times are memoised: the shared spec
        # path is fast enough here.
        patient = PatientView(r.patient_id, r.tz, r.channel, r.language, run.window(r.send_window))
        specs = reminder_specs(
            patient,
            AppointmentView(r.id, r.kind, r.starts_at, r.version, None),
            # Reminders that fell due before the booking (or the last reschedule) are not sent
            # late: the patient has just heard from the clinic.
            after=r.after,
            before=run.horizon,
            max_late=run.max_late,
        )
        return [
            (
                r.patient_id,
                None,
                r.id,
                r.version,
                s.dedupe_key,
                (
                    s.channel,
                    s.kind,
                    s.template,
                    s.language,
                    s.instrument,
                    db.instant(s.due_at),
                    db.instant(s.not_after),
                    s.local_time,
                    db.json(s.context),
                ),
            )
            for s in specs
        ]

    return _Source(
        table=a,
        columns=(
            a.c.id,
            a.c.patient_id,
            a.c.kind,
            a.c.starts_at,
            a.c.version,
            func.coalesce(a.c.planned_until, a.c.updated_at).label("after"),
            _version(a),
            p.c.tz,
            p.c.channel,
            p.c.language,
            p.c.send_window,
        ),
        plannable=(
            a.c.status == AppointmentStatus.BOOKED,
            a.c.starts_at > run.now,
            _not_archived(),
        ),
        owner_index=APPOINTMENT_ID,
        rows_for=rows_for,
    )
