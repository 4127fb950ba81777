"""The check-in the day after a visit (docs/after-visit.md).

Planned by the database like every check-in: each tick looks at the booked or attended visits
of the kinds a patient's protocol names (`after_visit:` in worker/protocols/*.yaml) whose next
day's `send_at` (patient-local) falls within the planning horizon, and writes one message row
per visit version (UNIQUE dedupe key `av:{appointment}:v{version}`, inserted ON CONFLICT DO
NOTHING): running it twice, or on two machines, adds nothing. The row carries the appointment,
so a cancellation, a no-show or a reschedule cancels it like a reminder; consent and quiet hours
are checked again when it is sent.

The answer (services/inbound/after_visit.py) is a `mood` value (0-10, 10 = very good), stored and flagged as every mood answer is;
an answer of the protocol's `low` or less, or any words sent with it, also opens an
`after_visit` follow-up for a clinician (the words stay in the inbound message, never in the
follow-up's detail).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.config import parse_window
from worker.domain.planning import MessageSpec
from worker.domain.protocols import AfterVisit, ProtocolError
from worker.domain.quiet_hours import is_allowed, next_allowed
from worker.domain.schedule import local_to_utc
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Appointment, Enrollment, Message, Patient
from worker.store.outbox import MessageStatus
from worker.store.record_status import AppointmentStatus

TEMPLATE = "after_visit"
INSTRUMENT = "mood"
# Visits that still get their next-day check-in (a visit is marked attended after it happened).
LIVE_STATUSES = (AppointmentStatus.BOOKED, AppointmentStatus.ATTENDED)
# A next-day check-in not sent by the end of that afternoon is no longer "the day after".
USEFUL_FOR = timedelta(hours=10)
LOOK_BACK = timedelta(days=2)


def key(appointment_id: int, version: int) -> str:
    return f"av:{appointment_id}:v{version}"


def plan_after_visits(rt: Runtime, now: datetime, horizon: datetime) -> int:
    """Write the after-visit check-ins due before `horizon`; returns the rows added."""
    with session_scope(rt.sessions) as session:
        found = after_visit_specs(rt, session, now, horizon)
        if not found:
            return 0
        known = set(
            session.scalars(
                select(Message.dedupe_key).where(
                    Message.dedupe_key.in_([spec.dedupe_key for _, spec in found])
                )
            )
        )
        fresh = [_row(pid, spec, now) for pid, spec in found if spec.dedupe_key not in known]
        if not fresh:
            return 0
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(Message).on_conflict_do_nothing(index_elements=["dedupe_key"])
        result = session.execute(stmt, fresh)
        return int(getattr(result, "rowcount", 0) or 0) if len(fresh) == 1 else len(fresh)


def after_visit_specs(
    rt: Runtime,
    session: Session,
    now: datetime,
    horizon: datetime,
    *,
    patient_id: int | None = None,
) -> list[tuple[int, MessageSpec]]:
    """(patient id, message) for each after-visit check-in due before `horizon` and still
    useful at `now`, one per visit version; only `patient_id`'s when given (`checkin preview`)."""
    try:
        configs = {n: p.after_visit for n, p in rt.protocols.items() if p.after_visit is not None}
    except ProtocolError:
        return []  # the protocol files are reported where they are loaded (checkin protocols list)
    if not configs:
        return []
    query = (
        select(
            Appointment.id,
            Appointment.kind,
            Appointment.starts_at,
            Appointment.version,
            Patient.id.label("patient_id"),
            Patient.tz,
            Patient.channel,
            Patient.language,
            Patient.send_window,
            Enrollment.protocol,
        )
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(Enrollment, Enrollment.patient_id == Patient.id)
        .where(
            Appointment.status.in_(LIVE_STATUSES),
            Appointment.starts_at >= now - LOOK_BACK,
            Appointment.starts_at < horizon,
            Patient.archived_at.is_(None),
            Enrollment.ended_at.is_(None),
            Enrollment.protocol.in_(list(configs)),
        )
        .order_by(Appointment.id, Enrollment.id)
    )
    if patient_id is not None:
        query = query.where(Patient.id == patient_id)
    out: dict[str, tuple[int, MessageSpec]] = {}
    for r in session.execute(query):
        config = configs[r.protocol]
        assert config is not None
        if r.kind not in config.kinds or key(r.id, r.version) in out:
            continue
        due, local = _due(r.starts_at, r.tz, config, r.send_window or rt.settings.send_window)
        if due >= horizon or now > due + USEFUL_FOR:
            continue
        out[key(r.id, r.version)] = (
            r.patient_id,
            MessageSpec(
                dedupe_key=key(r.id, r.version),
                kind="checkin",
                channel=r.channel,
                template=TEMPLATE,
                language=r.language,
                due_at=due,
                not_after=due + USEFUL_FOR,
                local_time=local,
                instrument=INSTRUMENT,
                appointment_id=r.id,
                appointment_version=r.version,
                context={"after_visit": True, "low": config.low},
            ),
        )
    return list(out.values())


def _row(patient_id: int, spec: MessageSpec, now: datetime) -> dict[str, object]:
    return {
        "patient_id": patient_id,
        "channel": spec.channel,
        "kind": spec.kind,
        "template": spec.template,
        "language": spec.language,
        "instrument": spec.instrument,
        "appointment_id": spec.appointment_id,
        "appointment_version": spec.appointment_version,
        "priority": "bulk",
        "exempt_quiet_hours": False,
        "due_at": spec.due_at,
        "not_after": spec.not_after,
        "local_time": spec.local_time,
        "dedupe_key": spec.dedupe_key,
        "context": spec.context,
        "status": MessageStatus.SCHEDULED,
        "attempts": 0,
        "stop_notice": False,
        "created_at": now,
        "updated_at": now,
    }


def _due(starts_at: datetime, tz: str, config: AfterVisit, window: str) -> tuple[datetime, str]:
    """The instant of the next-day check-in (moved into the send window) and its local time."""
    day_after = starts_at.astimezone(ZoneInfo(tz)).date() + timedelta(days=1)
    local = datetime.combine(day_after, config.send_at)
    due = local_to_utc(local, tz)
    allowed = parse_window(window)
    if not is_allowed(due, tz, allowed):
        due = next_allowed(due, tz, allowed)
    return due, local.isoformat(timespec="minutes")
