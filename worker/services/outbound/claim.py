"""The first half of a send, for a whole chunk at once: claim, re-check, render, commit.

One transaction per chunk: claim the rows (queued -> sending, trusted by RETURNING, which also
returns the columns the checks and templates read), read their patients (with consent in force),
appointments and schedules with one SELECT each, decide per row whether it may still go, render
the ones that may, and write their bodies and addresses with one executemany. The commit at the end is what makes "the body is a row
before it is sent" true for the whole chunk before any provider call.

Why a chunk and not a row: the per-row version cost 11 statements, 2 commits and the ORM's unit of
work per message, which made the bulk worker CPU-bound at ~120 messages/s (bench/ANALYSIS.md).
The state machine is unchanged: every write is still conditional on the status it expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, bindparam, exists, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from worker.config import parse_window
from worker.domain.instruments import answer_key, get_instrument
from worker.domain.quiet_hours import is_allowed, next_allowed
from worker.domain.stop_notice import names_stop, with_stop_notice
from worker.rendering import format_when
from worker.services.outbound import appointment_links, stop_notice
from worker.services.outbound.after_visit import LIVE_STATUSES as LIVE_AFTER_VISIT
from worker.services.outbound.after_visit import TEMPLATE as AFTER_VISIT
from worker.services.outbound.form_links import LINK_TEMPLATE, goes_by_link, new_link, store_links
from worker.services.records import unsubscribe
from worker.services.runtime import Runtime
from worker.store import outbox
from worker.store.models import Appointment, Consent, Message, Patient, Schedule
from worker.store.outbox import MessageStatus
from worker.store.record_status import AppointmentStatus

# Core statements on the tables: the ORM's unit of work is not needed on this hot path.
MESSAGES = cast(Table, Message.__table__)
S = MessageStatus
#: The columns of a claimed row that the checks, the templates and recording the outcome read.
CLAIMED_COLUMNS = tuple(
    MESSAGES.c[name]
    for name in (
        "id", "patient_id", "channel", "kind", "template", "language", "instrument",
        "schedule_id", "appointment_id", "appointment_version", "checkin_id", "priority",
        "exempt_quiet_hours", "not_after", "context", "to_address", "attempts", "created_at",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """A claimed, rendered row, committed as `sending`, ready for the provider. The fields after
    `priority` are what recording the outcome needs, so it does not read the row again."""

    id: int
    channel: str
    to: str
    body: str
    subject: str | None
    html: str | None
    message_id_header: str
    priority: str = "bulk"
    attempts: int = 1
    not_after: datetime | None = None
    patient_id: int | None = None
    kind: str = "checkin"
    created_at: datetime | None = None
    instrument: str | None = None
    schedule_id: int | None = None
    checkin_id: int | None = None
    # Extra email headers (List-Unsubscribe: services/records/unsubscribe.py).
    headers: tuple[tuple[str, str], ...] = ()
    # The template the body was rendered from: a questionnaire's opening SMS becomes the
    # one-segment form link (services/form_links.py).
    template: str = ""
    # The lease the row was claimed under (`messages.sending_by`): a send may go without asking
    # the database again only while that very lease still holds (send.py `_lease_covers`).
    owner: str | None = None


@dataclass
class Claimed:
    """The chunk after its first transaction: rows to send, and rows already settled (with the
    outcome: suppressed, cancelled, deferred, failed; or skipped when not ours to send)."""

    prepared: list[Prepared] = field(default_factory=list)
    settled: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Verdict:
    status: MessageStatus
    reason: str
    outcome: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Facts:
    """What the checks and the templates read, loaded once for the chunk."""

    patients: dict[int, Any]
    appointments: dict[int, Any]
    schedules: dict[int, Any]
    consents: set[tuple[int, str]]


def claim_and_prepare(rt: Runtime, session: Session, ids: list[int], now: datetime) -> Claimed:
    """Run inside the caller's transaction; the caller commits."""
    out = Claimed()
    # Read once: the row and the Prepared must name the same lease, even if it is renewed under
    # a new name while this chunk is claimed (lease.py: a lapsed lease is never renewed).
    owner = rt.lease.owner if rt.lease is not None else None
    # The claim returns what the checks, the templates and the outcome's record read: no second
    # trip to read the rows back (values as of the claim: attempts already counted).
    rows = {
        r.id: r
        for r in outbox.move_returning(
            session,
            ids,
            MessageStatus.QUEUED,
            MessageStatus.SENDING,
            [c.name for c in CLAIMED_COLUMNS],
            sending_at=now,
            sending_by=owner,
            attempts=MESSAGES.c.attempts + 1,
            updated_at=now,
        )
    }
    for mid in ids:
        if mid not in rows:
            # Not `queued`: a duplicate task, or someone else's row. Never touched.
            out.settled[mid] = "skipped"
    if not rows:
        return out
    facts = _load_facts(session, rows.values())
    notices = _StopNotices(rt, session, rows.values(), facts, now)
    bodies: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    appt_links: list[dict[str, Any]] = []
    unsubscribe_links: list[dict[str, Any]] = []
    for row in (rows[mid] for mid in ids if mid in rows):
        verdict = _check(rt, row, facts, now)
        if verdict is not None:
            _settle(session, row.id, verdict, now)
            out.settled[row.id] = verdict.outcome
            continue
        extra: dict[str, Any] = {}
        if row.channel == "email" and row.patient_id is not None:
            extra["unsubscribe_url"], unsubscribe_link = unsubscribe.new_link(
                rt.settings, row.patient_id, row.id, now
            )
            unsubscribe_links.append(unsubscribe_link)
            if appointment_links.carries_links(
                channel=row.channel, kind=row.kind, appointment_id=row.appointment_id
            ):
                # The appointment is live and at this version: _check let the row through.
                urls, link = appointment_links.new_links(
                    rt.settings,
                    message_id=row.id,
                    patient_id=row.patient_id,
                    appointment_id=row.appointment_id,
                    appointment_version=row.appointment_version,
                    starts_at=facts.appointments[row.appointment_id].starts_at,
                    now=now,
                )
                extra.update(urls)
                appt_links.append(link)
        prepared = _render(rt, row, facts, now, links, extra, owner)
        prepared, stop = notices.apply(row, prepared)
        out.prepared.append(prepared)
        bodies.append(
            {
                "m_id": prepared.id,
                "m_to": prepared.to,
                "m_body": prepared.body,
                "m_subject": prepared.subject,
                "m_stop": stop,
                "m_template": prepared.template,
            }
        )
    # Before the bodies that carry them: a link exists before its message can be sent.
    store_links(session, links)
    appointment_links.store_links(session, appt_links)
    unsubscribe.store_links(session, unsubscribe_links)
    if bodies:
        session.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == bindparam("m_id"), MESSAGES.c.status == MessageStatus.SENDING)
            .values(
                to_address=bindparam("m_to"),
                body=bindparam("m_body"),
                subject=bindparam("m_subject"),
                stop_notice=bindparam("m_stop"),
                template=bindparam("m_template"),
            ),
            bodies,
        )
    return out


def _load_facts(session: Session, rows: Iterable[Row[Any]]) -> _Facts:
    rows = list(rows)
    pids = {r.patient_id for r in rows if r.patient_id is not None}
    aids = {r.appointment_id for r in rows if r.appointment_id is not None}
    sids = {r.schedule_id for r in rows if r.schedule_id is not None}
    p, a, s, c = (
        cast(Table, model.__table__) for model in (Patient, Appointment, Schedule, Consent)
    )
    # Consent in force, one flag per channel of the chunk, read with the patients (one trip).
    channels = sorted({r.channel for r in rows})
    flags = [
        exists()
        .where(c.c.patient_id == p.c.id, c.c.channel == ch, c.c.withdrawn_at.is_(None))
        .label(f"consent_{i}")
        for i, ch in enumerate(channels)
    ]
    patients = _by_id(
        session,
        pids,
        select(
            p.c.id,
            p.c.archived_at,
            p.c.tz,
            p.c.send_window,
            p.c.phone,
            p.c.email,
            p.c.questionnaire_mode,
            *flags,
        ),
    )
    consents = {
        (pid, ch)
        for pid, row in patients.items()
        for i, ch in enumerate(channels)
        if row._mapping[f"consent_{i}"]
    }
    appointments = _by_id(
        session,
        aids,
        select(a.c.id, a.c.status, a.c.version, a.c.starts_at, a.c.location, a.c.kind),
    )
    schedules = _by_id(session, sids, select(s.c.id, s.c.status))
    return _Facts(patients, appointments, schedules, consents)


def _by_id(session: Session, ids: set[int], stmt: Select[Any]) -> dict[int, Any]:
    """The rows of `stmt` (whose first column is `id`) for these ids, by id; no query for none."""
    if not ids:
        return {}
    table_id = stmt.selected_columns[0]
    return {r.id: r for r in session.execute(stmt.where(table_id.in_(ids)))}


def _check(rt: Runtime, m: Row[Any], facts: _Facts, now: datetime) -> _Verdict | None:
    """Why this row must not go now; None when it may go. The order matters: a cancelled
    appointment is `cancelled`, not `suppressed`, even at night."""
    patient = facts.patients.get(m.patient_id) if m.patient_id is not None else None
    if m.patient_id is not None and (patient is None or patient.archived_at is not None):
        return _Verdict(S.CANCELLED, "patient_archived", S.CANCELLED)
    if m.not_after is not None and now > m.not_after:
        return _Verdict(S.SUPPRESSED, "too_late", S.SUPPRESSED)
    if m.appointment_id is not None:
        appt = facts.appointments.get(m.appointment_id)
        # A visit marked attended keeps its day-after check-in (services/outbound/after_visit.py).
        live = LIVE_AFTER_VISIT if m.template == AFTER_VISIT else (AppointmentStatus.BOOKED,)
        if appt is None or appt.status not in live:
            return _Verdict(S.CANCELLED, "appointment_cancelled", S.CANCELLED)
        if appt.version != m.appointment_version:
            return _Verdict(S.CANCELLED, "appointment_rescheduled", S.CANCELLED)
    if m.schedule_id is not None:
        schedule = facts.schedules.get(m.schedule_id)
        if schedule is None or schedule.status != "active":
            return _Verdict(S.CANCELLED, "schedule_inactive", S.CANCELLED)
    if patient is not None and not m.exempt_quiet_hours:
        # The crisis reply and other exempt replies go even to a patient who opted out in the
        # same message (CLINICAL.md); everything else needs consent in force now.
        if (patient.id, m.channel) not in facts.consents:
            return _Verdict(S.SUPPRESSED, f"no_consent_{m.channel}", S.SUPPRESSED)
        window = parse_window(patient.send_window or rt.settings.send_window)
        if not is_allowed(now, patient.tz, window):
            later = next_allowed(now, patient.tz, window)
            if m.not_after is not None and later >= m.not_after:
                return _Verdict(S.SUPPRESSED, "too_late_quiet_hours", S.SUPPRESSED)
            return _Verdict(
                S.SCHEDULED,
                "deferred_quiet_hours",
                "deferred",
                {"due_at": later, "queued_at": None},
            )
    if not _address(m, patient):
        return _Verdict(S.FAILED, f"no_{m.channel}_address", S.FAILED)
    return None


def _settle(session: Session, mid: int, verdict: _Verdict, now: datetime) -> None:
    outbox.move_each(
        session,
        [{"m_id": mid}],
        MessageStatus.SENDING,
        verdict.status,
        status_reason=verdict.reason,
        updated_at=now,
        **verdict.values,
    )


def _address(m: Row[Any], patient: Row[Any] | None) -> str | None:
    if m.to_address:
        return str(m.to_address)
    if patient is None:
        return None
    address = patient.phone if m.channel == "sms" else patient.email
    return str(address) if address else None


class _StopNotices:
    """The month's STOP notice for the chunk's SMS (services/outbound/stop_notice.py): at most one per
    patient per chunk, and none once the month has had one."""

    def __init__(
        self,
        rt: Runtime,
        session: Session,
        rows: Iterable[Row[Any]],
        facts: _Facts,
        now: datetime,
    ) -> None:
        self.on = rt.settings.stop_reminder == "monthly"
        rows = list(rows)
        candidates = {
            (r.patient_id, facts.patients[r.patient_id].tz)
            for r in rows
            if stop_notice.eligible(r) and r.patient_id in facts.patients
        }
        self.owed = (
            stop_notice.owed(session, candidates, now, [r.id for r in rows])
            if self.on and candidates
            else set()
        )

    def apply(self, m: Row[Any], p: Prepared) -> tuple[Prepared, bool]:
        """The prepared message, with the notice when it is owed and fits; and whether the
        body (now) names STOP."""
        if m.channel != "sms":
            return p, False
        if names_stop(p.body):
            self.owed.discard(m.patient_id)
            return p, True
        if not self.on or m.patient_id not in self.owed or not stop_notice.eligible(m):
            return p, False
        body = with_stop_notice(p.body, m.language)
        if body is None:
            return p, False  # no room: the next short SMS carries it
        self.owed.discard(m.patient_id)
        return replace(p, body=body), True


def _render(
    rt: Runtime,
    m: Row[Any],
    facts: _Facts,
    now: datetime,
    links: list[dict[str, Any]],
    extra: dict[str, Any],
    owner: str | None,
) -> Prepared:
    patient = facts.patients.get(m.patient_id) if m.patient_id is not None else None
    to = _address(m, patient)
    assert to is not None
    context = _context(rt, m, patient, facts, now)
    context.update(extra)
    template = str(m.template)
    if (
        m.kind == "checkin"
        and patient is not None
        and goes_by_link(
            channel=m.channel,
            template=template,
            instrument=m.instrument,
            item_index=int(context.get("item_index", 0)),
            mode=patient.questionnaire_mode,
        )
    ):
        context["form_url"], link = new_link(
            rt.settings, message_id=m.id, patient_id=patient.id, instrument=m.instrument, now=now
        )
        links.append(link)
        if m.channel == "sms":
            template = LINK_TEMPLATE
    subject = html = None
    if m.channel == "sms":
        body = rt.renderer.sms(template, m.language, context)
    else:
        rendered = rt.renderer.email(template, m.language, context)
        subject, body, html = rendered.subject, rendered.text, rendered.html
    domain = (rt.settings.email_from or "checkin.invalid").rsplit("@", 1)[-1]
    return Prepared(
        id=m.id,
        channel=m.channel,
        to=to,
        body=body,
        subject=subject,
        html=html,
        message_id_header=f"<checkin-{m.id}-{m.attempts}@{domain}>",
        priority=m.priority,
        attempts=m.attempts,
        not_after=m.not_after,
        patient_id=m.patient_id,
        kind=m.kind,
        created_at=m.created_at,
        instrument=m.instrument,
        schedule_id=m.schedule_id,
        checkin_id=m.checkin_id,
        headers=tuple(unsubscribe.headers(extra["unsubscribe_url"], rt.settings).items())
        if "unsubscribe_url" in extra
        else (),
        template=template,
        owner=owner,
    )


def _context(
    rt: Runtime, m: Row[Any], patient: Row[Any] | None, facts: _Facts, now: datetime
) -> dict[str, Any]:
    s = rt.settings
    ctx: dict[str, Any] = {
        "clinic_name": s.clinic_name,
        "clinic_phone": s.clinic_phone,
        "sms_sender": s.sms_sender_name or s.clinic_name,
        "language": m.language,
    }
    ctx.update(m.context or {})
    if m.kind == "checkin" and m.instrument:
        instrument = get_instrument(m.instrument, m.language)
        if m.template == "checkin_item":
            index = int(ctx.get("item_index", 0))
            item = instrument.items[index]
            ctx.update(
                item_text=item.text,
                item_number=index + 1,
                item_count=len(instrument.items),
                answer_key=answer_key(instrument, item),
                stem=instrument.stem,
                first=index == 0,
            )
            # By SMS (questionnaire_mode=sms) a questionnaire is a conversation, one item per
            # message; otherwise it goes as one link to the form (see _render).
            items = [item] if m.channel == "sms" else list(instrument.items)
        else:
            items = list(instrument.items)
        ctx["items"] = [
            {"key": it.key, "text": it.text, "minimum": it.minimum, "maximum": it.maximum}
            for it in items
        ]
    if m.appointment_id is not None and patient is not None:
        appt = facts.appointments[m.appointment_id]
        local = appt.starts_at.astimezone(ZoneInfo(patient.tz)).replace(tzinfo=None)
        ctx.update(when=format_when(local, m.language), location=appt.location, kind=appt.kind)
    return ctx
