"""Read models for the command line and the API: plain dicts, JSON-ready."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from worker.store.models import (
    Appointment,
    FollowUp,
    InboundMessage,
    Message,
    Patient,
    Response,
    Schedule,
)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def patient_dict(p: Patient) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "phone": p.phone,
        "email": p.email,
        "tz": p.tz,
        "channel": p.channel,
        "language": p.language,
        "send_window": p.send_window,
        "questionnaire_mode": p.questionnaire_mode,
        "created_at": _iso(p.created_at),
        "external_ids": _external_ids(p, "patient"),
    }


def _external_ids(row: Patient | Appointment, entity: Literal["patient", "appointment"]) -> Any:
    """The row's source-system ids, read through the session it was loaded in (none when
    detached: a row just built, not stored)."""
    from worker.services.records.external_ids import ids_of

    session = object_session(row)
    if session is None or row.id is None:
        return []
    return ids_of(session, entity, [row.id]).get(row.id, [])


def schedule_dict(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "patient_id": s.patient_id,
        "instrument": s.instrument,
        "rrule": s.rrule,
        "start": s.start_date.isoformat(),
        "until": s.until_date.isoformat() if s.until_date else None,
        "status": s.status,
        "enrollment_id": s.enrollment_id,
    }


def appointment_dict(a: Appointment, tz: str | None = None) -> dict[str, Any]:
    """`local_time` is the start in the patient's zone when `tz` is given."""
    return {
        "id": a.id,
        "patient_id": a.patient_id,
        "kind": a.kind,
        "starts_at": _iso(a.starts_at),
        "local_time": a.starts_at.astimezone(ZoneInfo(tz)).isoformat() if tz else None,
        "location": a.location,
        "status": a.status,
        "version": a.version,
        "confirmed_at": _iso(a.confirmed_at),
        "external_ids": _external_ids(a, "appointment"),
    }


def message_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": "out",
        "patient_id": m.patient_id,
        "channel": m.channel,
        "kind": m.kind,
        "template": m.template,
        "instrument": m.instrument,
        "appointment_id": m.appointment_id,
        "status": m.status,
        "status_reason": m.status_reason,
        "body": m.body,
        "at": _iso(m.sent_at or m.due_at),
        "due_at": _iso(m.due_at),
        "sent_at": _iso(m.sent_at),
        "local_time": m.local_time,
        "provider_id": m.provider_id,
        "error_code": m.error_code,
        "attempts": m.attempts,
    }


def inbound_dict(i: InboundMessage) -> dict[str, Any]:
    return {
        "id": f"in-{i.id}",
        "direction": "in",
        "patient_id": i.patient_id,
        "channel": i.channel,
        "kind": "reply",
        "template": None,
        "instrument": None,
        "appointment_id": None,
        "status": "received" if i.processed_at is None else "processed",
        "status_reason": i.outcome,
        "body": i.body,
        "at": _iso(i.received_at),
        "due_at": None,
        "sent_at": None,
        "local_time": None,
        "provider_id": i.provider_sid,
        "error_code": None,
        "attempts": 0,
        "outcome": i.outcome,
    }


def list_messages(session: Session, *, patient_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Outbound and inbound messages, newest first (by sent time, else due time)."""
    out = select(Message).order_by(Message.due_at.desc(), Message.id.desc()).limit(limit)
    inn = select(InboundMessage).order_by(InboundMessage.received_at.desc()).limit(limit)
    if patient_id is not None:
        out = out.where(Message.patient_id == patient_id)
        inn = inn.where(InboundMessage.patient_id == patient_id)
    rows = [message_dict(m) for m in session.scalars(out)] + [
        inbound_dict(i) for i in session.scalars(inn)
    ]
    rows.sort(key=lambda r: r["at"] or "", reverse=True)
    return rows[:limit]


def response_dict(r: Response) -> dict[str, Any]:
    return {
        "instrument": r.instrument,
        "item": r.item,
        "value": r.value,
        "answered_at": _iso(r.answered_at),
        "checkin_id": r.checkin_id,
        "partial": r.partial,
        "late": r.late,
    }


def recent_responses(session: Session, patient_id: int, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Response)
        .where(Response.patient_id == patient_id)
        .order_by(Response.answered_at.desc(), Response.id.desc())
        .limit(limit)
    )
    return [response_dict(r) for r in rows]


def all_responses(session: Session, patient_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Response)
        .where(Response.patient_id == patient_id)
        .order_by(Response.answered_at, Response.id)
    )
    return [response_dict(r) for r in rows]


def followup_dict(f: FollowUp) -> dict[str, Any]:
    return {
        "id": f.id,
        "patient_id": f.patient_id,
        "reason": f.reason,
        "severity": f.severity,
        "status": f.status,
        "created_at": _iso(f.created_at),
        "detail": f.detail,
        "acknowledged_by": f.acknowledged_by,
        "acknowledged_at": _iso(f.acknowledged_at),
        "resolved_by": f.resolved_by,
        "resolved_at": _iso(f.resolved_at),
        "resolution_note": f.resolution_note,
    }
