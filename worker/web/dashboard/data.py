"""Read models for the dashboard pages: what each page shows, already filtered by role.

Nothing here writes. Role filtering happens here (what a front-desk account may see) and again
in the routes (what it may do), both server-side.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.services.clinical.scores import questionnaire_totals
from worker.services.read.followup_detail import contact_href, item9_summary, senders
from worker.services.read.views import SEVERITY_ORDER
from worker.services.records.accounts import can_see_clinical, can_see_followup
from worker.store.models import (
    Appointment,
    AuditEvent,
    FollowUp,
    InboundMessage,
    Message,
    Patient,
    Response,
    User,
)
from worker.web.charts import Marker, Panel, Series, render_chart

# Time to acknowledge, by severity (shown in the queue; urgent matches the re-page interval).
SLA = {"urgent": timedelta(minutes=15), "high": timedelta(hours=4), "routine": timedelta(hours=24)}

REASON_LABELS = {
    "crisis_language": "Crisis language in a reply",
    "possible_risk": "Possible risk language in a reply",
    "phq9_item9": "PHQ-9 item 9 (thoughts of self-harm)",
    "phq9_item9_unanswered": "PHQ-9 item 9 unanswered",
    "high_pain": "High pain",
    "low_mood": "Low mood",
    "positive_screen": "Positive screen",
    "worsening": "Worsening against baseline",
    "missed_checkins": "Missed check-ins",
    "unparseable_reply": "Reply needs reading",
    "confirm_request": "Appointment confirmation",
    "reschedule_request": "Reschedule request",
    "cancel_request": "Cancellation request",
    "late_arrival": "Running late",
    "opt_out": "Opted out of SMS",
    "delivery_failed": "Delivery failed",
}

KIND_LABELS = {
    "infusion": "Infusion",
    "therapy": "Therapy",
    "physical_therapy": "Physical therapy",
    "consult": "Consult",
}

DELIVERY_DONE = ("sent", "delivered")
DELIVERY_BAD = ("failed", "undelivered", "unknown")


def human_age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in " + human_age(-delta)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60:02d} min" if hours < 10 else f"{hours} h"
    return f"{hours // 24} d"


def sla_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def local(dt: datetime | None, tz: str, fmt: str = "%a %b %d, %H:%M") -> str:
    if dt is None:
        return ""
    return dt.astimezone(ZoneInfo(tz)).strftime(fmt).replace(" 0", " ")


# ---------------------------------------------------------------- the follow-up queue


@dataclass(frozen=True)
class QueueRow:
    id: int
    patient_id: int | None
    patient_name: str
    reason: str
    reason_label: str
    severity: str
    status: str
    created_at: datetime
    age: str
    sla: str
    sla_state: str  # ok | due_soon | overdue | met
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    evidence: list[dict[str, Any]]
    summary: str
    reply: str | None  # the patient's latest words behind it (clinicians only)
    sender: str | None = None  # an unknown sender's number (clinicians only)
    sender_href: str | None = None  # tel: (or mailto:) for it
    item9: str | None = None  # PHQ-9 item 9: its text, the answer's label, the total so far


def _summary(item: FollowUp, clinical: bool) -> str:
    evidence = (item.detail or {}).get("evidence") or []
    last = evidence[-1] if evidence else {}
    parts: list[str] = []
    if clinical and last.get("matched"):
        parts.append(f"matched “{last['matched']}”")
    if clinical and item.reason in ("high_pain", "low_mood", "worsening", "positive_screen"):
        for key in ("instrument", "item", "value", "total", "baseline"):
            if key in last:
                parts.append(f"{key} {last[key]}")
    if last.get("starts_at"):
        parts.append(f"appointment {str(last['starts_at'])[:16].replace('T', ' ')} UTC")
    if last.get("note"):
        parts.append(str(last["note"]))
    if len(evidence) > 1:
        parts.append(f"{len(evidence)} signals")
    return "; ".join(parts)


def queue_row(
    item: FollowUp,
    patient_name: str,
    user: User,
    now: datetime,
    reply: str | None = None,
    *,
    sender: str | None = None,
    item9: str | None = None,
) -> QueueRow:
    sla = SLA.get(item.severity, SLA["routine"])
    if item.acknowledged_at is not None:
        state = "met" if item.acknowledged_at - item.created_at <= sla else "late"
    else:
        left = item.created_at + sla - now
        state = "overdue" if left < timedelta(0) else "due_soon" if left < sla / 3 else "ok"
    return QueueRow(
        id=item.id,
        patient_id=item.patient_id,
        patient_name=patient_name,
        reason=item.reason,
        reason_label=REASON_LABELS.get(item.reason, item.reason),
        severity=item.severity,
        status=item.status,
        created_at=item.created_at,
        age=human_age(now - item.created_at),
        sla=sla_text(sla),
        sla_state=state,
        acknowledged_by=item.acknowledged_by,
        acknowledged_at=item.acknowledged_at,
        resolved_by=item.resolved_by,
        resolution_note=item.resolution_note,
        evidence=list((item.detail or {}).get("evidence") or []),
        summary=_summary(item, can_see_clinical(user)),
        reply=reply if can_see_clinical(user) else None,
        sender=sender if can_see_clinical(user) else None,
        sender_href=contact_href(sender) if can_see_clinical(user) else None,
        item9=item9 if can_see_clinical(user) else None,
    )


def queue(
    session: Session,
    user: User,
    now: datetime,
    *,
    status: str = "active",
    patient_id: int | None = None,
    limit: int = 200,
) -> list[QueueRow]:
    """Urgent first, then high, then routine; oldest first within each. `status` is `active`
    (open and acknowledged), or one of open / acknowledged / resolved."""
    stmt = select(FollowUp).order_by(SEVERITY_ORDER, FollowUp.created_at, FollowUp.id)
    if status == "active":
        stmt = stmt.where(FollowUp.status != "resolved")
    elif status == "resolved":
        stmt = (
            stmt.where(FollowUp.status == "resolved")
            .order_by(None)
            .order_by(FollowUp.resolved_at.desc(), FollowUp.id.desc())
        )
    else:
        stmt = stmt.where(FollowUp.status == status)
    if patient_id is not None:
        stmt = stmt.where(FollowUp.patient_id == patient_id)
    if not can_see_clinical(user):
        from worker.services.records.accounts import FRONTDESK_REASONS

        stmt = stmt.where(FollowUp.reason.in_(sorted(FRONTDESK_REASONS)))
    items = list(session.scalars(stmt.limit(limit)))
    names = _names(session, {i.patient_id for i in items if i.patient_id is not None})
    clinical = can_see_clinical(user)
    replies = _replies(session, items) if clinical else {}
    numbers = senders(session, items) if clinical else {}
    return [
        queue_row(
            i,
            names.get(i.patient_id or 0, "unknown sender"),
            user,
            now,
            replies.get(i.id),
            sender=numbers.get(i.id),
            item9=_item9_text(session, i) if clinical else None,
        )
        for i in items
    ]


def _item9_text(session: Session, item: FollowUp) -> str | None:
    summary = item9_summary(session, item)
    return summary.text if summary is not None else None


def _last_inbound(item: FollowUp) -> int | None:
    for evidence in reversed((item.detail or {}).get("evidence") or []):
        value = evidence.get("inbound_id")
        if isinstance(value, int):
            return value
    return None


def _replies(session: Session, items: list[FollowUp]) -> dict[int, str]:
    """Follow-up id → the text of the latest reply behind it, cut to a readable length."""
    wanted = {i.id: n for i in items if (n := _last_inbound(i)) is not None}
    if not wanted:
        return {}
    bodies = {
        row_id: body
        for row_id, body in session.execute(
            select(InboundMessage.id, InboundMessage.body).where(
                InboundMessage.id.in_(sorted(set(wanted.values())))
            )
        )
    }
    out = {}
    for fid, inbound_id in wanted.items():
        body = bodies.get(inbound_id)
        if body is not None:
            out[fid] = body if len(body) <= 300 else body[:299] + "…"
    return out


def queue_counts(session: Session, user: User) -> dict[str, int]:
    stmt = (
        select(FollowUp.severity, func.count())
        .where(FollowUp.status == "open")
        .group_by(FollowUp.severity)
    )
    if not can_see_clinical(user):
        from worker.services.records.accounts import FRONTDESK_REASONS

        stmt = stmt.where(FollowUp.reason.in_(sorted(FRONTDESK_REASONS)))
    return {str(sev): int(n) for sev, n in session.execute(stmt)}


def one_queue_row(session: Session, user: User, followup_id: int, now: datetime) -> QueueRow:
    from worker.services.clinical.followups import get_followup

    item = get_followup(session, followup_id)
    names = _names(session, {item.patient_id} if item.patient_id else set())
    clinical = can_see_clinical(user)
    reply = _replies(session, [item]).get(item.id) if clinical else None
    return queue_row(
        item,
        names.get(item.patient_id or 0, "unknown sender"),
        user,
        now,
        reply,
        sender=senders(session, [item]).get(item.id) if clinical else None,
        item9=_item9_text(session, item) if clinical else None,
    )


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        pid: name
        for pid, name in session.execute(
            select(Patient.id, Patient.name).where(Patient.id.in_(sorted(ids)))
        )
    }


# ---------------------------------------------------------------- patients


def patient_rows(
    session: Session, user: User, q: str | None, now: datetime
) -> list[dict[str, Any]]:
    stmt = select(Patient).where(Patient.archived_at.is_(None)).order_by(Patient.name, Patient.id)
    if q:
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(Patient.name).like(like),
                Patient.phone.like(f"%{q.strip()}%"),
                func.lower(Patient.email).like(like),
            )
        )
    patients = list(session.scalars(stmt.limit(500)))
    ids = [p.id for p in patients]
    open_by: dict[int, list[str]] = defaultdict(list)
    next_appt: dict[int, Appointment] = {}
    if ids:
        fstmt = select(FollowUp.patient_id, FollowUp.severity, FollowUp.reason).where(
            FollowUp.patient_id.in_(ids), FollowUp.status != "resolved"
        )
        for pid, severity, reason in session.execute(fstmt):
            if pid is not None and can_see_followup(user, reason):
                open_by[pid].append(severity)
        for a in session.scalars(
            select(Appointment)
            .where(
                Appointment.patient_id.in_(ids),
                Appointment.status == "booked",
                Appointment.starts_at > now,
            )
            .order_by(Appointment.starts_at)
        ):
            next_appt.setdefault(a.patient_id, a)
    rank = {"urgent": 0, "high": 1, "routine": 2}
    rows = []
    for p in patients:
        sev = sorted(open_by.get(p.id, []), key=lambda s: rank.get(s, 3))
        appt = next_appt.get(p.id)
        rows.append(
            {
                "id": p.id,
                "name": p.name,
                "channel": p.channel,
                "tz": p.tz,
                "open": len(sev),
                "worst": sev[0] if sev else None,
                "next_appointment": (
                    f"{KIND_LABELS.get(appt.kind, appt.kind)}, {local(appt.starts_at, p.tz)}"
                    if appt
                    else ""
                ),
            }
        )
    return rows


def conversation(session: Session, patient_id: int, limit: int) -> list[dict[str, Any]]:
    """Messages out (with delivery state) and replies in, newest first."""
    out = session.scalars(
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.status.notin_(("scheduled", "queued", "cancelled")),
        )
        .order_by(Message.due_at.desc(), Message.id.desc())
        .limit(limit)
    )
    inn = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.patient_id == patient_id)
        .order_by(InboundMessage.received_at.desc())
        .limit(limit)
    )
    rows: list[dict[str, Any]] = []
    for m in out:
        rows.append(
            {
                "direction": "out",
                "at": m.sent_at or m.sending_at or m.due_at,
                "channel": m.channel,
                "kind": m.kind,
                "template": m.template,
                "body": m.body if m.body is not None else f"({m.template}, not rendered)",
                "subject": m.subject,
                "status": m.status,
                "status_reason": m.status_reason,
                "error_code": m.error_code,
                "bad": m.status in DELIVERY_BAD,
            }
        )
    for i in inn:
        rows.append(
            {
                "direction": "in",
                "at": i.received_at,
                "channel": i.channel,
                "kind": "reply",
                "template": None,
                "body": i.body,
                "subject": None,
                "status": "received",
                "status_reason": i.outcome,
                "error_code": None,
                "bad": False,
            }
        )
    rows.sort(key=lambda r: r["at"], reverse=True)
    return rows[:limit]


def _totals(
    session: Session, patient_id: int, since: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    return questionnaire_totals(session, patient_id, since)


def chart(
    session: Session, patient: Patient, now: datetime, days: int
) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    """The SVG, and the same data as text rows (for the table under the chart)."""
    start = now - timedelta(days=days)
    end = now + timedelta(days=max(3, days // 10))
    daily: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for item, value, answered_at in session.execute(
        select(Response.item, Response.value, Response.answered_at)
        .where(
            Response.patient_id == patient.id,
            Response.item.in_(("mood", "pain", "sleep")),
            Response.answered_at >= start,
        )
        .order_by(Response.answered_at)
    ):
        daily[item].append((answered_at, float(value)))
    totals = _totals(session, patient.id, start)
    markers = [
        Marker(
            at=a.starts_at,
            kind=a.kind,
            label=f"{KIND_LABELS.get(a.kind, a.kind)} {local(a.starts_at, patient.tz)}"
            + (" (cancelled)" if a.status == "cancelled" else ""),
            cancelled=a.status == "cancelled",
        )
        for a in session.scalars(
            select(Appointment).where(
                Appointment.patient_id == patient.id,
                Appointment.starts_at >= start,
                Appointment.starts_at <= end,
            )
        )
    ]
    panels = [
        Panel(
            title="Daily check-ins (0-10): mood and sleep 10 = best, pain 10 = worst",
            y_max=10,
            ticks=(0, 2, 4, 6, 8, 10),
            series=[
                Series("mood", "Mood", "#1f6feb", daily["mood"]),
                Series("pain", "Pain", "#cf222e", daily["pain"]),
                Series("sleep", "Sleep", "#8250df", daily["sleep"]),
                Series("peg", "PEG mean", "#b35c00", totals.get("peg", []), dashed=True),
            ],
        ),
        Panel(
            title="Questionnaire totals: PHQ-9 (0-27), GAD-7 (0-21)",
            y_max=27,
            ticks=(0, 5, 10, 15, 20, 27),
            bands=((10, "PHQ-9 moderate"), (20, "severe")),
            series=[
                Series("phq9", "PHQ-9", "#0a3069", totals.get("phq9", [])),
                Series("gad7", "GAD-7", "#0a7f62", totals.get("gad7", []), dashed=True),
            ],
        ),
    ]
    svg = render_chart(
        panels,
        markers,
        start=start,
        end=end,
        now=now,
        tz=patient.tz,
        title=f"Check-in answers over the last {days} days, appointments marked",
    )
    table: dict[str, list[tuple[str, str]]] = {}
    for key, label in (("mood", "Mood"), ("pain", "Pain"), ("sleep", "Sleep")):
        table[label] = [(local(t, patient.tz), f"{v:g}") for t, v in daily[key]]
    for key, label in (("phq9", "PHQ-9 total"), ("gad7", "GAD-7 total"), ("peg", "PEG mean")):
        table[label] = [
            (local(t, patient.tz), f"{v:.1f}".removesuffix(".0")) for t, v in totals.get(key, [])
        ]
    return svg, table


# Reads are audited too (worker/services/records/audit.py); the patient page lists only changes.
READ_ACTIONS = ("view", "search", "export")


def audit_trail(session: Session, patient_id: int, limit: int = 30) -> list[dict[str, Any]]:
    """Changes to this patient's record, newest first; `actor` is the user's name when a user
    made the change, else the system's label (cli:<OS user>, system, patient, ...)."""
    from worker.store.models import User

    rows = session.execute(
        select(AuditEvent, User.name)
        .outerjoin(User, User.id == AuditEvent.user_id)
        .where(AuditEvent.patient_id == patient_id, AuditEvent.action.not_in(READ_ACTIONS))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "at": e.at,
            "actor": name or e.actor,
            "action": e.action,
            "entity": e.entity,
            "entity_id": e.entity_id,
        }
        for e, name in rows
    ]


# ---------------------------------------------------------------- operations


def queue_depths(settings: Settings) -> dict[str, int | str]:
    """Tasks waiting in each Celery queue (as `checkin ops status` reads them), or why they are
    unknown."""
    from worker.broker import QUEUES
    from worker.services.read.ops import queue_depths as read

    unknown: dict[str, int | str] = dict.fromkeys(QUEUES, "—")
    if not settings.broker_url:
        return {**unknown, "note": "no broker configured in this process"}
    try:
        return dict(read(settings))
    except Exception as exc:
        return {**unknown, "note": f"broker unreachable: {type(exc).__name__}"}


def operations(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    by_status = {
        str(s): int(n)
        for s, n in session.execute(select(Message.status, func.count()).group_by(Message.status))
    }
    oldest_due = session.scalar(
        select(func.min(Message.due_at)).where(
            Message.status.in_(("scheduled", "queued", "sending")), Message.due_at <= now
        )
    )
    hour_ago = now - timedelta(hours=1)
    sent_hour = session.scalar(
        select(func.count()).where(Message.sent_at >= hour_ago, Message.sent_at.is_not(None))
    )
    failed_hour = session.scalar(
        select(func.count()).where(
            Message.updated_at >= hour_ago, Message.status.in_(("failed", "undelivered"))
        )
    )
    errors = list(
        session.scalars(
            select(Message)
            .where(
                or_(
                    Message.error_code.is_not(None),
                    Message.status.in_(("failed", "undelivered", "unknown")),
                )
            )
            .order_by(Message.updated_at.desc(), Message.id.desc())
            .limit(25)
        )
    )
    urgent_open = session.scalar(
        select(func.count()).where(FollowUp.severity == "urgent", FollowUp.status == "open")
    )
    inbound_waiting = session.scalar(
        select(func.count()).where(InboundMessage.processed_at.is_(None))
    )
    return {
        "depths": queue_depths(settings),
        "by_status": dict(sorted(by_status.items())),
        "lag": human_age(now - oldest_due) if oldest_due else "none",
        "lag_seconds": (now - oldest_due).total_seconds() if oldest_due else 0.0,
        "sent_hour": int(sent_hour or 0),
        "failed_hour": int(failed_hour or 0),
        "urgent_open": int(urgent_open or 0),
        "inbound_waiting": int(inbound_waiting or 0),
        # No recipient and no body here: ids, codes and states only.
        "errors": [
            {
                "id": m.id,
                "channel": m.channel,
                "kind": m.kind,
                "status": m.status,
                "error_code": m.error_code,
                "reason": m.status_reason,
                "attempts": m.attempts,
                "at": m.updated_at,
                "age": human_age(now - m.updated_at),
            }
            for m in errors
        ],
    }
