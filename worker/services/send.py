"""The send step: one message row through queued -> sending -> sent | failed | suppressed | ...

Every transition is a conditional UPDATE from the expected state, so a redelivered task is a
no-op. Consent, the appointment, the schedule, lateness and quiet hours are re-checked here, at
send time, because any of them may have changed since the row was planned. The rendered body and
address are committed before the provider is called, so a crash leaves a row that says exactly
what may have gone out.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.orm import Session

from worker.channels import ChannelError, DeliveryUnknown, SendResult
from worker.config import parse_window
from worker.domain.instruments import answer_key, answer_options, get_instrument
from worker.domain.quiet_hours import is_allowed, next_allowed
from worker.domain.sms_text import segments
from worker.rendering import format_when
from worker.services import links
from worker.services.pacing import Grant
from worker.services.patients import has_consent, withdraw_consent
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Appointment, CheckIn, Message, Patient, Schedule

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
MAX_BACKOFF = timedelta(minutes=15)
ANSWER_LINK_VALIDITY = timedelta(days=3)


@dataclass(frozen=True)
class Prepared:
    id: int
    channel: str
    to: str
    body: str
    subject: str | None
    html: str | None
    message_id_header: str
    priority: str = "bulk"


def send_one(rt: Runtime, message_id: int, now: datetime) -> str:
    """Send one queued message. Returns the outcome: sent, failed, suppressed, cancelled,
    deferred, retry, unknown, or skipped (the row was not `queued`: a duplicate task)."""
    # Read (or create) the link key before our transaction: on SQLite a second transaction
    # opened from inside this one would wait on our own lock.
    key = rt.link_key
    with session_scope(rt.sessions) as session:
        claimed = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == "queued")
            .values(
                status="sending",
                sending_at=now,
                attempts=Message.attempts + 1,
                updated_at=now,
            )
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return "skipped"
        msg = session.get(Message, message_id)
        assert msg is not None
        verdict = _precheck(rt, session, msg, now)
        if verdict is not None:
            return verdict
        prepared = _prepare(rt, session, msg, now, key)
    return _deliver(rt, prepared, now)


def send_many(
    rt: Runtime, ids: list[int], now_fn: Any, executor: ThreadPoolExecutor | None
) -> dict[str, int]:
    """Send a chunk of messages, concurrently when an executor is given (sending is I/O-bound)."""
    counts: dict[str, int] = {}

    def one(mid: int) -> str:
        try:
            return send_one(rt, mid, now_fn())
        except Exception:
            # A bug or a database outage: the row stays queued/sending and recovery picks it up.
            log.exception("send of message %d failed unexpectedly", mid)
            return "error"

    # A single id (every urgent task) runs in the calling thread: it must not queue behind bulk
    # sends holding the executor's threads while they wait for their turn at the sender.
    inline = executor is None or len(ids) == 1
    outcomes = map(one, ids) if inline else executor.map(one, ids)  # type: ignore[union-attr]
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _set(
    session: Session, msg: Message, status: str, now: datetime, reason: str | None, **values: Any
) -> str:
    session.execute(
        update(Message)
        .where(Message.id == msg.id, Message.status == "sending")
        .values(status=status, status_reason=reason, updated_at=now, **values)
    )
    return status


def _precheck(rt: Runtime, session: Session, msg: Message, now: datetime) -> str | None:
    """Why this message must not go now, applied to the row; None when it may go."""
    patient = session.get(Patient, msg.patient_id) if msg.patient_id is not None else None
    if msg.patient_id is not None and (patient is None or patient.archived_at is not None):
        return _set(session, msg, "cancelled", now, "patient_archived")
    if msg.not_after is not None and now > msg.not_after:
        return _set(session, msg, "suppressed", now, "too_late")
    if msg.appointment_id is not None:
        appt = session.get(Appointment, msg.appointment_id)
        if appt is None or appt.status != "booked":
            return _set(session, msg, "cancelled", now, "appointment_cancelled")
        if appt.version != msg.appointment_version:
            return _set(session, msg, "cancelled", now, "appointment_rescheduled")
    if msg.schedule_id is not None:
        schedule = session.get(Schedule, msg.schedule_id)
        if schedule is None or schedule.status != "active":
            return _set(session, msg, "cancelled", now, "schedule_inactive")
    if patient is not None:
        # The crisis reply and other exempt replies go even to a patient who opted out in the
        # same message (CLINICAL.md); everything else needs consent in force now.
        if not msg.exempt_quiet_hours and not has_consent(session, patient.id, msg.channel):
            return _set(session, msg, "suppressed", now, f"no_consent_{msg.channel}")
        if not msg.exempt_quiet_hours:
            window = parse_window(patient.send_window or rt.settings.send_window)
            if not is_allowed(now, patient.tz, window):
                later = next_allowed(now, patient.tz, window)
                if msg.not_after is not None and later >= msg.not_after:
                    return _set(session, msg, "suppressed", now, "too_late_quiet_hours")
                _set(
                    session,
                    msg,
                    "scheduled",
                    now,
                    "deferred_quiet_hours",
                    due_at=later,
                    queued_at=None,
                )
                return "deferred"
    to = _address(msg, patient)
    if not to:
        return _set(session, msg, "failed", now, f"no_{msg.channel}_address")
    return None


def _address(msg: Message, patient: Patient | None) -> str | None:
    if msg.to_address:
        return msg.to_address
    if patient is None:
        return None
    return patient.phone if msg.channel == "sms" else patient.email


def _prepare(rt: Runtime, session: Session, msg: Message, now: datetime, key: bytes) -> Prepared:
    patient = session.get(Patient, msg.patient_id) if msg.patient_id is not None else None
    to = _address(msg, patient)
    assert to is not None
    context = _context(rt, session, msg, patient, now, key)
    subject = html = None
    if msg.channel == "sms":
        body = rt.renderer.sms(msg.template, msg.language, context)
    else:
        rendered = rt.renderer.email(msg.template, msg.language, context)
        subject, body, html = rendered.subject, rendered.text, rendered.html
    msg.to_address = to
    msg.body = body
    msg.subject = subject
    domain = (rt.settings.email_from or "checkin.invalid").rsplit("@", 1)[-1]
    return Prepared(
        id=msg.id,
        channel=msg.channel,
        to=to,
        body=body,
        subject=subject,
        html=html,
        message_id_header=f"<checkin-{msg.id}-{msg.attempts}@{domain}>",
        priority=msg.priority,
    )


def _context(
    rt: Runtime, session: Session, msg: Message, patient: Patient | None, now: datetime, key: bytes
) -> dict[str, Any]:
    s = rt.settings
    ctx: dict[str, Any] = {
        "clinic_name": s.clinic_name,
        "clinic_phone": s.clinic_phone,
        "language": msg.language,
    }
    ctx.update(msg.context or {})
    if msg.kind == "checkin" and msg.instrument:
        instrument = get_instrument(msg.instrument, msg.language)
        if msg.template == "checkin_item":
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
            # By SMS a questionnaire is a conversation, one item per message; an email carries
            # every item, each with its own one-click answers.
            items = [item] if msg.channel == "sms" else list(instrument.items)
        else:
            items = list(instrument.items)
        ctx["items"] = [
            {
                "key": it.key,
                "text": it.text,
                "minimum": it.minimum,
                "maximum": it.maximum,
                "links": [
                    {
                        "value": v,
                        "label": label,
                        "url": links.answer_url(
                            s, rt.link_key, msg.id, it.key, v, now, ANSWER_LINK_VALIDITY
                        ),
                    }
                    for v, label in answer_options(instrument, it)
                ]
                if msg.channel == "email"
                else [],
            }
            for it in items
        ]
    if msg.appointment_id is not None and patient is not None:
        appt = session.get(Appointment, msg.appointment_id)
        assert appt is not None
        local = appt.starts_at.astimezone(ZoneInfo(patient.tz)).replace(tzinfo=None)
        ctx.update(when=format_when(local, msg.language), location=appt.location, kind=appt.kind)
    return ctx


def _deliver(rt: Runtime, p: Prepared, now: datetime) -> str:
    grant: Grant | None = None
    if p.channel == "sms" and rt.pacer is not None:
        # The sender's shared limit (services/pacing.py), taken just before the provider call.
        turn = rt.pacer.turn(segments(p.body), urgent=p.priority == "urgent")
        now += timedelta(seconds=turn.waited)
        if turn.defer is not None:
            return _pace_later(rt, p, now, turn.defer)
        grant = turn.grant
    try:
        result = _call_provider(rt, p, grant)
    except DeliveryUnknown:
        log.warning("message %d: provider outcome unknown; will reconcile", p.id)
        return _finish(rt, p.id, now, "unknown", "provider_timeout")
    except ChannelError as exc:
        return _failed(rt, p, now, exc)
    except Exception:
        log.exception("message %d: unexpected error from the %s channel", p.id, p.channel)
        return _failed(rt, p, now, ChannelError("unexpected channel error", permanent=False))
    return _sent(rt, p, now, result)


def _call_provider(rt: Runtime, p: Prepared, grant: Grant | None) -> SendResult:
    answered = False
    try:
        if p.channel == "sms":
            callback = f"{rt.settings.public_url}/webhooks/twilio/status"
            result = rt.channels.sms.send_sms(p.to, p.body, status_callback=callback)
        else:
            result = rt.channels.email.send_email(
                p.to, p.subject or "", p.body, p.html, message_id=p.message_id_header
            )
        answered = True
        return result
    finally:
        if grant is not None and rt.pacer is not None:
            # The sender's slots are dated from the provider's answer (services/pacing.py).
            rt.pacer.answered(grant, learn=answered)


def _pace_later(rt: Runtime, p: Prepared, now: datetime, delay: float) -> str:
    """The sender is busy for longer than a send may wait: back to `scheduled`, not an attempt."""
    with session_scope(rt.sessions) as session:
        session.execute(
            update(Message)
            .where(Message.id == p.id, Message.status == "sending")
            .values(
                status="scheduled",
                status_reason="paced",
                due_at=now + timedelta(seconds=delay),
                queued_at=None,
                attempts=Message.attempts - 1,
                updated_at=now,
            )
        )
    log.info("message %d: the sender is busy; back in %.1fs", p.id, delay)
    return "deferred"


def _finish(
    rt: Runtime, mid: int, now: datetime, status: str, reason: str | None, **values: Any
) -> str:
    with session_scope(rt.sessions) as session:
        session.execute(
            update(Message)
            .where(Message.id == mid, Message.status == "sending")
            .values(status=status, status_reason=reason, updated_at=now, **values)
        )
    return status


def _sent(rt: Runtime, p: Prepared, now: datetime, result: SendResult) -> str:
    with session_scope(rt.sessions) as session:
        res = session.execute(
            update(Message)
            .where(Message.id == p.id, Message.status == "sending")
            .values(
                status="sent",
                status_reason=None,
                provider_id=result.provider_id,
                segments=result.segments,
                sent_at=now,
                updated_at=now,
            )
        )
        if getattr(res, "rowcount", 0) == 1:
            msg = session.get(Message, p.id)
            assert msg is not None
            if msg.kind == "checkin" and msg.checkin_id is None and msg.patient_id is not None:
                open_checkin(rt, session, msg, now)
    log.info("message %d sent via %s", p.id, p.channel)
    return "sent"


def open_checkin(rt: Runtime, session: Session, msg: Message, now: datetime) -> None:
    """A check-in message went out at `now`: open the CheckIn its reply will answer. Called
    by whoever records the send (here, or reconciliation finding it at the provider)."""
    assert msg.patient_id is not None and msg.instrument is not None
    checkin = CheckIn(
        patient_id=msg.patient_id,
        instrument=msg.instrument,
        schedule_id=msg.schedule_id,
        channel=msg.channel,
        item_index=0,
        status="open",
        sent_at=now,
        window_closes_at=now + timedelta(hours=rt.settings.checkin_reply_window_hours),
    )
    session.add(checkin)
    session.flush()
    msg.checkin_id = checkin.id


def _failed(rt: Runtime, p: Prepared, now: datetime, exc: ChannelError) -> str:
    code = exc.code
    if exc.opted_out:
        with session_scope(rt.sessions) as session:
            msg = session.get(Message, p.id)
            assert msg is not None
            if msg.patient_id is not None:
                withdraw_consent(
                    session,
                    msg.patient_id,
                    "sms",
                    now=now,
                    source=f"carrier opt-out (Twilio {code})",
                    actor="system",
                )
        log.info("message %d: recipient opted out at the carrier (%s)", p.id, code)
        return _finish(rt, p.id, now, "suppressed", "opted_out_at_carrier", error_code=code)
    if exc.permanent:
        log.warning("message %d failed permanently (code %s)", p.id, code)
        return _finish(rt, p.id, now, "failed", f"provider_rejected: {exc}"[:120], error_code=code)
    with session_scope(rt.sessions) as session:
        msg = session.get(Message, p.id)
        assert msg is not None
        base = timedelta(seconds=rt.settings.retry_backoff_seconds)
        backoff = min(base * (2 ** max(msg.attempts - 1, 0)), MAX_BACKOFF)
        if exc.retry_after:
            backoff = max(backoff, timedelta(seconds=exc.retry_after))
        retry_at = now + backoff
        if msg.priority == "urgent":
            # Urgent traffic does not sit out a long backoff: a crisis reply is retried promptly.
            retry_at = now + min(backoff, timedelta(seconds=5))
        too_late = msg.not_after is not None and retry_at >= msg.not_after
        if msg.attempts >= MAX_ATTEMPTS or too_late:
            status, reason = "failed", "retries_exhausted" if not too_late else "too_late_to_retry"
            session.execute(
                update(Message)
                .where(Message.id == p.id, Message.status == "sending")
                .values(status=status, status_reason=reason, error_code=code, updated_at=now)
            )
            log.warning("message %d failed after %d attempts (code %s)", p.id, msg.attempts, code)
            return status
        session.execute(
            update(Message)
            .where(Message.id == p.id, Message.status == "sending")
            .values(
                status="scheduled",
                status_reason=f"retry after transient error {code or ''}".strip(),
                error_code=code,
                due_at=retry_at,
                queued_at=None,
                updated_at=now,
            )
        )
    log.info("message %d: transient error (code %s); retry at %s", p.id, code, retry_at.isoformat())
    return "retry"
