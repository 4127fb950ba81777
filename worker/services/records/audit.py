"""The audit trail: who looked at or changed what, when, from where.

Every row names its principal by id (`user_id`, `token_id`), never by a name someone typed. The
entry point binds the principal for the duration of a request or command (`acting`): the web
app per request, the API once the bearer token is known, the command line with the OS user.
Service functions called inside record their changes with it; reads are recorded with
`access`. Rows are append-only: the database refuses UPDATE and DELETE (migration 0005).

Actions: view, search, export, create, change (and the services' own names for changes:
consent_granted, schedule_added, acknowledged, ...), sign_in, sign_in_failed, sign_out,
locked, unlock, token_used, 2fa_enrolled, 2fa_reset, password_changed, session_revoked.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.store.models import AuditEvent, User

# Actors the services name themselves (no person behind them): kept even inside a request.
SYSTEM_ACTORS = frozenset({"system", "patient", "demo"})


@dataclass
class Who:
    """The principal of the current request or command. Mutable: the web app binds it before
    routing and the API's token check fills it in."""

    actor: str  # user | token | installation_token | cli:<os user> | anonymous
    via: str  # web | api | cli
    user_id: int | None = None
    token_id: int | None = None
    address: str | None = None


_current: ContextVar[Who | None] = ContextVar("checkin_audit_who", default=None)


@contextmanager
def acting(who: Who) -> Iterator[Who]:
    """Bind `who` for audit rows written in this context (threads started with a copy of it,
    as Starlette's thread pool does, see it too)."""
    token = _current.set(who)
    try:
        yield who
    finally:
        _current.reset(token)


def current() -> Who | None:
    return _current.get()


def cli_who() -> Who:
    """The command line: the operating-system user who ran it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Who(actor=f"cli:{name}"[:60], via="cli")


def record(
    session: Session,
    *,
    now: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None,
    patient_id: int | None = None,
    detail: dict[str, Any] | None = None,
    who: Who | None = None,
) -> None:
    """Add an audit event to the session's transaction (it commits with the change it records).

    The bound principal (or `who`) decides `actor`, `user_id`, `token_id` and the address;
    `actor` as passed is used only outside any request or command (workers) or when it is one of
    SYSTEM_ACTORS."""
    w = who or _current.get()
    label = actor if w is None or actor in SYSTEM_ACTORS else w.actor
    session.add(
        AuditEvent(
            at=now,
            actor=label[:200],
            action=action,
            entity=entity,
            entity_id=entity_id,
            patient_id=patient_id,
            detail=detail or {},
            user_id=w.user_id if w is not None else None,
            token_id=w.token_id if w is not None else None,
            address=(w.address or None) if w is not None else None,
            via=w.via if w is not None else "worker",
        )
    )


def access(
    session: Session,
    *,
    now: datetime,
    action: str,
    patient_id: int | None = None,
    entity: str = "patient",
    detail: dict[str, Any] | None = None,
    who: Who | None = None,
) -> None:
    """Record a look at patient data (view, search, export) by the bound principal. An id
    that names no patient (the column is a foreign key) goes into `detail` instead."""
    if patient_id is not None:
        from worker.store.models import Patient

        if session.get(Patient, patient_id) is None:
            detail = {**(detail or {}), "patient_id": patient_id}
            patient_id = None
    record(
        session,
        now=now,
        actor="unknown",
        action=action,
        entity=entity,
        entity_id=patient_id,
        patient_id=patient_id,
        detail=detail,
        who=who,
    )


def list_events(
    session: Session,
    *,
    patient_id: int | None = None,
    user_id: int | None = None,
    since: datetime | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Events newest first, with the user's name joined in, and the total matching."""
    from sqlalchemy import func

    stmt = select(AuditEvent, User.name).outerjoin(User, User.id == AuditEvent.user_id)
    count = select(func.count()).select_from(AuditEvent)
    for column, value in (
        (AuditEvent.patient_id, patient_id),
        (AuditEvent.user_id, user_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
            count = count.where(column == value)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
        count = count.where(AuditEvent.at >= since)
    rows = session.execute(
        stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit).offset(offset)
    ).all()
    total = int(session.scalar(count) or 0)
    return [as_dict(event, name) for event, name in rows], total


def as_dict(event: AuditEvent, user_name: str | None) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "action": event.action,
        "actor": event.actor,
        "user_id": event.user_id,
        "user_name": user_name,
        "token_id": event.token_id,
        "address": event.address,
        "via": event.via,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "patient_id": event.patient_id,
        "detail": event.detail,
    }
