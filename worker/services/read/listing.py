"""Paginated read queries for the API: one page of rows and the total that matches.

Pages are `limit` rows after skipping `offset`, in a stable order (ties broken by id), so that
walking the pages of an unchanging table visits every row once.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, literal, select, union_all
from sqlalchemy.orm import Session

from worker.services.read.views import inbound_dict, message_dict
from worker.services.records.patients import get_patient
from worker.store.models import CheckIn, Enrollment, InboundMessage, Message, Response

T = TypeVar("T")


def page(session: Session, stmt: Select[T], *, limit: int, offset: int) -> tuple[list[T], int]:
    """One page of `stmt` (which must already be ordered) and the number of rows it matches."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = list(session.scalars(stmt.limit(limit).offset(offset)))
    return rows, int(total or 0)


def messages_page(
    session: Session, *, patient_id: int | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Outbound and inbound messages, newest first: outbound by due time, inbound by the time
    received (the same order as `checkin messages list`), merged in the database."""
    out = select(
        literal(0).label("d"), Message.id.label("id"), Message.due_at.label("at")
    ).select_from(Message)
    inn = select(
        literal(1).label("d"), InboundMessage.id.label("id"), InboundMessage.received_at.label("at")
    ).select_from(InboundMessage)
    if patient_id is not None:
        out = out.where(Message.patient_id == patient_id)
        inn = inn.where(InboundMessage.patient_id == patient_id)
    both = union_all(out, inn).subquery()
    keys = session.execute(
        select(both.c.d, both.c.id)
        .order_by(both.c.at.desc(), both.c.d, both.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    total = session.scalar(select(func.count()).select_from(both)) or 0
    out_ids = [k.id for k in keys if k.d == 0]
    in_ids = [k.id for k in keys if k.d == 1]
    outs = (
        {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(out_ids)))}
        if out_ids
        else {}
    )
    ins = (
        {
            i.id: i
            for i in session.scalars(select(InboundMessage).where(InboundMessage.id.in_(in_ids)))
        }
        if in_ids
        else {}
    )
    rows = [message_dict(outs[k.id]) if k.d == 0 else inbound_dict(ins[k.id]) for k in keys]
    return rows, int(total)


def list_enrollments(session: Session, patient_id: int) -> list[Enrollment]:
    """A patient's protocol enrollments, oldest first; NotFound for an unknown patient."""
    get_patient(session, patient_id)
    return list(
        session.scalars(
            select(Enrollment).where(Enrollment.patient_id == patient_id).order_by(Enrollment.id)
        )
    )


def checkins_stmt(patient_id: int, status: str | None = None) -> Select[CheckIn]:
    """A patient's check-ins, newest first."""
    stmt = (
        select(CheckIn)
        .where(CheckIn.patient_id == patient_id)
        .order_by(CheckIn.sent_at.desc(), CheckIn.id.desc())
    )
    if status is not None:
        stmt = stmt.where(CheckIn.status == status)
    return stmt


def responses_stmt(patient_id: int, instrument: str | None = None) -> Select[Response]:
    """A patient's stored answers, oldest first (as `checkin responses list`)."""
    stmt = (
        select(Response)
        .where(Response.patient_id == patient_id)
        .order_by(Response.answered_at, Response.id)
    )
    if instrument is not None:
        stmt = stmt.where(Response.instrument == instrument)
    return stmt


def answers_by_checkin(session: Session, checkin_ids: list[int]) -> dict[int, list[Response]]:
    """The stored answers of each check-in, in the order they were stored."""
    if not checkin_ids:
        return {}
    result: dict[int, list[Response]] = {i: [] for i in checkin_ids}
    for r in session.scalars(
        select(Response).where(Response.checkin_id.in_(checkin_ids)).order_by(Response.id)
    ):
        if r.checkin_id is not None:
            result[r.checkin_id].append(r)
    return result
