"""Recovery of rows whose outcome a crash or a timeout left open.

`sending` for longer than the stale interval means the worker died mid-send, and so does
`sending` under a lease that has lapsed (services/outbound/lease.py: the fast way to know, seconds after
the worker died instead of minutes); `unknown` means the request may have reached the provider. Twilio takes no idempotency key, so these are looked up in
the provider's message list (matched by recipient, body and time) and never blindly resent: found
means sent; not found means the request never arrived, and the row goes back to be sent.
Channels that cannot be asked (SMTP, console) leave such rows `unknown` for an operator.

What the list returns is checked, not trusted: a message counts as ours only when its
recipient, its sender and its body are the row's. A list that ignored its `To` filter (a proxy,
an API change) once made one patient's message be recorded as another's, who then never got
theirs. Messages to someone else or from another sender are logged (counts only) and ignored.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, or_, select, update

from worker import telemetry
from worker.channels import ProviderMessage
from worker.config import Settings
from worker.services.outbound.record import open_checkins
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Message

log = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=2)
#: Provider look-ups at once (one per recipient).
LOOKUPS = 8


@dataclass
class ReconcileResult:
    resolved: list[int] = field(default_factory=list)  # found at the provider: now sent
    to_send: list[tuple[int, bool]] = field(default_factory=list)  # (id, urgent) back to queued
    left_unknown: list[int] = field(default_factory=list)


def reconcile(rt: Runtime, now: datetime, limit: int = 200) -> ReconcileResult:
    result = ReconcileResult()
    settle = timedelta(
        seconds=rt.settings.twilio_timeout_seconds + rt.settings.reconcile_settle_seconds
    )
    stale = now - timedelta(seconds=rt.settings.sending_stale_seconds)
    gone = _lapsed_owners(rt)
    with session_scope(rt.sessions) as session:
        rows = session.scalars(
            select(Message)
            .where(
                or_(
                    (Message.status == "sending") & (Message.sending_at < stale),
                    (Message.status == "sending") & Message.sending_by.in_(gone),
                    (Message.status == "unknown") & (Message.sending_at < now - settle),
                )
            )
            # Urgent rows first: a crash must not delay a crisis reply behind check-ins.
            .order_by(case((Message.priority == "urgent", 0), else_=1), Message.sending_at)
            .limit(limit)
        ).all()
        snapshot = [
            (
                m.id,
                m.status,
                m.channel,
                m.to_address,
                m.body,
                m.sending_at,
                m.priority,
                m.sending_by,
            )
            for m in rows
        ]
    # One recipient's rows in order (two alike to one number must not both claim one provider
    # message); recipients side by side, so that a crash's rows are settled in about one
    # provider round trip, not one per row.
    by_to: dict[str | None, list[_Row]] = {}
    for row in snapshot:
        by_to.setdefault(row[3], []).append(row)
    groups = list(by_to.values())
    if len(groups) <= 1:
        for group in groups:
            _settle_group(rt, group, now, result)
    else:
        with ThreadPoolExecutor(min(LOOKUPS, len(groups)), thread_name_prefix="reconcile") as ex:
            list(ex.map(lambda g: _settle_group(rt, g, now, result), groups))
    return result


_Row = tuple[int, str, str, str | None, str | None, datetime | None, str, str | None]


def _settle_group(rt: Runtime, rows: list[_Row], now: datetime, result: ReconcileResult) -> None:
    sms = rt.channels.sms
    for mid, status, channel, to, body, sending_at, priority, owner in rows:
        if channel != "sms" or not sms.can_reconcile or not to or sending_at is None:
            if status == "sending":
                _move(
                    rt,
                    mid,
                    "sending",
                    "unknown",
                    now,
                    attempt=sending_at,
                    owner=owner,
                    reason="worker_lost_mid_send",
                )
                result.left_unknown.append(mid)
                telemetry.reconciled("left_unknown")
            continue
        try:
            found = sms.find_sent(to, sending_at - LOOKBACK)
        except Exception:
            log.warning("reconcile: provider list failed for message %d; will retry", mid)
            telemetry.reconciled("list_failed")
            continue
        match = _match(rt, mid, _ours(rt.settings, found, to, body or ""))
        # Every move below is conditional on the row being exactly as the snapshot saw it, the
        # same status *and* the same send attempt (sending_at): while this pass was asking the
        # provider, another dispatcher may have reconciled the row and a worker re-sent it;
        # moving that fresh attempt back to `queued` would send it twice.
        if match is not None:
            if _resolve_sent(rt, mid, status, sending_at, owner, match, now):
                result.resolved.append(mid)
                telemetry.reconciled("found")
            else:
                telemetry.reconciled("superseded")
        elif _move(
            rt,
            mid,
            status,
            "queued",
            now,
            attempt=sending_at,
            owner=owner,
            reason="reconciled_not_found",
            queued_at=now,
        ):
            result.to_send.append((mid, priority == "urgent"))
            telemetry.reconciled("not_found")
        else:
            telemetry.reconciled("superseded")


def _lapsed_owners(rt: Runtime) -> list[str]:
    """Holders of `sending` rows whose lease has surely lapsed (services/outbound/lease.py)."""
    if rt.redis is None:
        return []
    from worker.services.outbound.lease import lapsed, lease_ttl

    with session_scope(rt.sessions) as session:
        owners = session.scalars(
            select(Message.sending_by)
            .where(Message.status == "sending", Message.sending_by.is_not(None))
            .distinct()
        ).all()
    if not owners:
        return []
    ttl = lease_ttl(rt.settings.twilio_timeout_seconds)
    return sorted(lapsed(rt.redis, [o for o in owners if o], ttl=ttl))


def _same_attempt(attempt: datetime | None, owner: str | None) -> ColumnElement[bool]:
    """The row is still in the very attempt a snapshot saw: same claim time, same holder (a
    holder that disowned its row since, to send it under the stale rule, keeps it)."""
    by = Message.sending_by.is_(None) if owner is None else Message.sending_by == owner
    return (Message.sending_at == attempt) & by


def _same_sender(settings: Settings, p: ProviderMessage) -> bool:
    """Sent from our sender: the From number when one is configured (Twilio sends from it even
    through a Messaging Service), else the Messaging Service."""
    if settings.twilio_from_number:
        return p.from_ == settings.twilio_from_number
    if settings.twilio_messaging_service_sid:
        return p.messaging_service_sid == settings.twilio_messaging_service_sid
    return False


def _ours(
    settings: Settings, found: list[ProviderMessage], to: str, body: str
) -> tuple[list[ProviderMessage], int, int]:
    """The listed messages that are to `to`, from our sender, with this body; and how many were
    to another recipient, and from another sender."""
    foreign_to = foreign_from = 0
    same: list[ProviderMessage] = []
    for p in found:
        if p.to != to:
            foreign_to += 1
        elif not _same_sender(settings, p):
            foreign_from += 1
        elif p.body == body:
            same.append(p)
    return same, foreign_to, foreign_from


def _match(
    rt: Runtime, mid: int, ours: tuple[list[ProviderMessage], int, int]
) -> ProviderMessage | None:
    candidates, foreign_to, foreign_from = ours
    if foreign_to or foreign_from:
        # Counts only: the numbers and bodies stay out of the log.
        log.warning(
            "reconcile: message %d: the provider's list returned %d message(s) to another "
            "recipient and %d from another sender; ignored",
            mid,
            foreign_to,
            foreign_from,
        )
        telemetry.reconcile_foreign("recipient", foreign_to)
        telemetry.reconcile_foreign("sender", foreign_from)
    if not candidates:
        return None
    with session_scope(rt.sessions) as session:
        used = set(
            session.scalars(
                select(Message.provider_id).where(
                    Message.provider_id.in_([p.provider_id for p in candidates])
                )
            )
        )
    for p in candidates:
        if p.provider_id not in used:
            return p
    return None


def _resolve_sent(
    rt: Runtime,
    mid: int,
    frm: str,
    attempt: datetime,
    owner: str | None,
    match: ProviderMessage,
    now: datetime,
) -> bool:
    """The provider has it: `sent`, with its sid, and for a check-in the CheckIn its reply will
    answer is opened, exactly as when the send itself records the sid."""
    sent_at = match.created_at or now
    with session_scope(rt.sessions) as session:
        res = session.execute(
            update(Message)
            .where(Message.id == mid, Message.status == frm, _same_attempt(attempt, owner))
            .values(
                status="sent",
                status_reason="reconciled",
                provider_id=match.provider_id,
                sent_at=sent_at,
                updated_at=now,
            )
        )
        if getattr(res, "rowcount", 0) != 1:
            return False
        open_checkins(rt, session, {mid: sent_at})
    return True


def _move(
    rt: Runtime,
    mid: int,
    frm: str,
    to: str,
    now: datetime,
    *,
    attempt: datetime | None,
    reason: str,
    owner: str | None = None,
    queued_at: datetime | None = None,
) -> bool:
    values: dict[str, object] = {"status": to, "status_reason": reason, "updated_at": now}
    if queued_at is not None:
        values["queued_at"] = queued_at
    with session_scope(rt.sessions) as session:
        res = session.execute(
            update(Message)
            .where(Message.id == mid, Message.status == frm, _same_attempt(attempt, owner))
            .values(**values)
        )
        return bool(getattr(res, "rowcount", 0) == 1)
