"""The second half of a send: what the provider said, written for many rows in one transaction.

Every write is conditional on the row still being `sending` (a reconciliation that settled the
row first wins, and nothing is written twice). The check-ins that sent check-in messages open
are inserted with one multi-row INSERT, then the sent rows, each with its check-in, with one
executemany; the rarer outcomes (errors, deferrals) are written row by row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Integer, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from worker import telemetry
from worker.channels import ChannelError, SendResult
from worker.services.outbound.claim import MESSAGES, Prepared
from worker.services.records.patients import withdraw_consent
from worker.services.runtime import Runtime
from worker.store import outbox
from worker.store.db import session_scope
from worker.store.models import CheckIn
from worker.store.outbox import MessageStatus
from worker.store.record_status import CheckinStatus

log = logging.getLogger(__name__)

CHECKINS = cast(Table, CheckIn.__table__)
MAX_ATTEMPTS = 6
MAX_BACKOFF = timedelta(minutes=15)


@dataclass(frozen=True)
class Attempt:
    """One provider call's outcome: exactly one of result, unknown, error or defer is set.
    `at`: when the attempt started (after any wait for the sender's pace)."""

    p: Prepared
    at: datetime
    result: SendResult | None = None
    unknown: bool = False
    error: ChannelError | None = None
    defer: float | None = None
    #: Not attempted: the row is no longer this process's to send (services/outbound/send.py
    #: `_lease_covers`). Nothing is written.
    lost: bool = False


def record(rt: Runtime, attempts: list[Attempt]) -> dict[int, str]:
    """Write the outcomes of these attempts in one transaction; returns id -> outcome."""
    outcomes: dict[int, str] = {}
    with session_scope(rt.sessions) as session:
        sent = [a for a in attempts if a.result is not None]
        if sent:
            _record_sent(rt, session, sent)
            outcomes.update((a.p.id, MessageStatus.SENT) for a in sent)
        unknown = [a for a in attempts if a.unknown]
        if unknown:
            outbox.move_each(
                session,
                [{"m_id": a.p.id, "m_at": a.at} for a in unknown],
                MessageStatus.SENDING,
                MessageStatus.UNKNOWN,
                status_reason="provider_timeout",
                updated_at=bindparam("m_at"),
            )
            outcomes.update((a.p.id, MessageStatus.UNKNOWN) for a in unknown)
        for a in attempts:
            if a.lost:
                outcomes[a.p.id] = "skipped"
            elif a.defer is not None:
                outcomes[a.p.id] = _pace_later(session, a.p, a.at, a.defer)
            elif a.error is not None:
                outcomes[a.p.id] = _failed(rt, session, a.p, a.at, a.error)
    telemetry.sends_recorded(attempts, outcomes)  # once committed
    return outcomes


def _record_sent(rt: Runtime, session: Session, sent: list[Attempt]) -> None:
    # A check-in message opens the CheckIn its reply will answer. Whether it needs one is known
    # from the claim (the row is ours, `sending`, and has none yet: a later item of a
    # questionnaire carries its own), so the check-ins are inserted first and each row is written
    # `sent` with its check-in in the same UPDATE: two statements for the chunk, not four, and
    # one row version per message fewer.
    opening = [
        a
        for a in sent
        if a.p.kind == "checkin"
        and a.p.patient_id is not None
        and a.p.instrument is not None
        and a.p.checkin_id is None
    ]
    new_ids = _insert_checkins(rt, session, opening)
    written = outbox.move_each(
        session,
        [
            {
                "m_id": a.p.id,
                "m_provider_id": a.result.provider_id if a.result else None,
                "m_segments": a.result.segments if a.result else None,
                "m_at": a.at,
                "m_checkin_id": new_ids.get(a.p.id),
            }
            for a in sent
        ],
        MessageStatus.SENDING,
        MessageStatus.SENT,
        status_reason=None,
        provider_id=bindparam("m_provider_id"),
        segments=bindparam("m_segments"),
        sent_at=bindparam("m_at"),
        updated_at=bindparam("m_at"),
        checkin_id=func.coalesce(bindparam("m_checkin_id", type_=Integer), MESSAGES.c.checkin_id),
    )
    if new_ids and not _all_written(session, written, len(sent)):
        # A row was no longer `sending` (reconciliation settled it first, and opened its own
        # check-in): the check-in made for it here is nobody's. Dropped in this transaction,
        # so no one ever sees it.
        _drop_unused(session, new_ids)
    if log.isEnabledFor(logging.DEBUG):
        for a in sent:
            log.debug("message %d sent via %s", a.p.id, a.p.channel)


def _insert_checkins(rt: Runtime, session: Session, opening: list[Attempt]) -> dict[int, int]:
    """Open a check-in for each of these sent check-in messages: message id -> check-in id."""
    if not opening:
        return {}
    window = timedelta(hours=rt.settings.checkin_reply_window_hours)
    ids = session.scalars(
        insert(CHECKINS).returning(CHECKINS.c.id, sort_by_parameter_order=True),
        [
            {
                "patient_id": a.p.patient_id,
                "instrument": a.p.instrument,
                "schedule_id": a.p.schedule_id,
                "channel": a.p.channel,
                "item_index": 0,
                "status": CheckinStatus.OPEN,
                "sent_at": a.at,
                "window_closes_at": a.at + window,
                "clarified": False,
            }
            for a in opening
        ],
    ).all()
    return {a.p.id: cid for a, cid in zip(opening, ids, strict=True)}


def _all_written(session: Session, written: int, expected: int) -> bool:
    """Whether an executemany UPDATE wrote every row (when the driver can say so)."""
    bind = session.get_bind()
    if not bind.dialect.supports_sane_multi_rowcount:
        return False
    return written == expected


def _drop_unused(session: Session, new_ids: dict[int, int]) -> None:
    used = set(
        session.scalars(
            select(MESSAGES.c.checkin_id).where(
                MESSAGES.c.id.in_(list(new_ids)),
                MESSAGES.c.checkin_id.in_(list(new_ids.values())),
            )
        )
    )
    unused = [cid for cid in new_ids.values() if cid not in used]
    if unused:
        session.execute(delete(CHECKINS).where(CHECKINS.c.id.in_(unused)))
        log.info("dropped %d check-ins of rows settled elsewhere first", len(unused))


def open_checkins(rt: Runtime, session: Session, sent_at: dict[int, datetime]) -> None:
    """Check-in messages went out (sent here, or found at the provider by reconciliation): open
    the CheckIn each one's reply will answer, once. Rows
    that are not `sent` by now, or already have their check-in (reconciliation got there first;
    a later item of a questionnaire carries its own), are left alone."""
    rows = session.execute(
        select(
            MESSAGES.c.id,
            MESSAGES.c.patient_id,
            MESSAGES.c.instrument,
            MESSAGES.c.schedule_id,
            MESSAGES.c.channel,
        ).where(
            MESSAGES.c.id.in_(list(sent_at)),
            MESSAGES.c.status == MessageStatus.SENT,
            MESSAGES.c.kind == "checkin",
            MESSAGES.c.checkin_id.is_(None),
            MESSAGES.c.patient_id.is_not(None),
            MESSAGES.c.instrument.is_not(None),
        )
    ).all()
    if not rows:
        return
    window = timedelta(hours=rt.settings.checkin_reply_window_hours)
    new_ids = session.scalars(
        insert(CHECKINS).returning(CHECKINS.c.id, sort_by_parameter_order=True),
        [
            {
                "patient_id": r.patient_id,
                "instrument": r.instrument,
                "schedule_id": r.schedule_id,
                "channel": r.channel,
                "item_index": 0,
                "status": CheckinStatus.OPEN,
                "sent_at": sent_at[r.id],
                "window_closes_at": sent_at[r.id] + window,
                "clarified": False,
            }
            for r in rows
        ],
    ).all()
    session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.id == bindparam("m_id"))
        .values(checkin_id=bindparam("m_checkin_id")),
        [{"m_id": r.id, "m_checkin_id": cid} for r, cid in zip(rows, new_ids, strict=True)],
    )


def _set(session: Session, mid: int, now: datetime, to: MessageStatus, **values: object) -> None:
    outbox.move_each(session, [{"m_id": mid}], MessageStatus.SENDING, to, updated_at=now, **values)


def _pace_later(session: Session, p: Prepared, now: datetime, delay: float) -> str:
    """The sender is busy for longer than a send may wait: back to `scheduled`, not an attempt."""
    _set(
        session,
        p.id,
        now,
        MessageStatus.SCHEDULED,
        status_reason="paced",
        due_at=now + timedelta(seconds=delay),
        queued_at=None,
        attempts=MESSAGES.c.attempts - 1,
    )
    log.info("message %d: the sender is busy; back in %.1fs", p.id, delay)
    return "deferred"


def _failed(rt: Runtime, session: Session, p: Prepared, now: datetime, exc: ChannelError) -> str:
    code = exc.code
    if exc.opted_out:
        if p.patient_id is not None:
            withdraw_consent(
                session,
                p.patient_id,
                "sms",
                now=now,
                source=f"carrier opt-out (Twilio {code})",
                actor="system",
            )
        log.info("message %d: recipient opted out at the carrier (%s)", p.id, code)
        _set(
            session,
            p.id,
            now,
            MessageStatus.SUPPRESSED,
            status_reason="opted_out_at_carrier",
            error_code=code,
        )
        return MessageStatus.SUPPRESSED
    if exc.permanent:
        log.warning("message %d failed permanently (code %s)", p.id, code)
        reason = f"provider_rejected: {exc}"[:120]
        _set(session, p.id, now, MessageStatus.FAILED, status_reason=reason, error_code=code)
        return MessageStatus.FAILED
    base = timedelta(seconds=rt.settings.retry_backoff_seconds)
    backoff = min(base * (2 ** max(p.attempts - 1, 0)), MAX_BACKOFF)
    if exc.retry_after:
        backoff = max(backoff, timedelta(seconds=exc.retry_after))
    retry_at = now + backoff
    if p.priority == "urgent":
        # Urgent traffic does not sit out a long backoff: a crisis reply is retried promptly.
        retry_at = now + min(backoff, timedelta(seconds=5))
    too_late = p.not_after is not None and retry_at >= p.not_after
    if p.attempts >= MAX_ATTEMPTS or too_late:
        reason = "retries_exhausted" if not too_late else "too_late_to_retry"
        _set(session, p.id, now, MessageStatus.FAILED, status_reason=reason, error_code=code)
        log.warning("message %d failed after %d attempts (code %s)", p.id, p.attempts, code)
        return MessageStatus.FAILED
    _set(
        session,
        p.id,
        now,
        MessageStatus.SCHEDULED,
        status_reason=f"retry after transient error {code or ''}".strip(),
        error_code=code,
        due_at=retry_at,
        queued_at=None,
    )
    log.info("message %d: transient error (code %s); retry at %s", p.id, code, retry_at.isoformat())
    return "retry"
