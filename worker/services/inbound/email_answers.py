"""One-click answers from check-in emails.

A link only shows a page; the answer is recorded when the patient presses the button (a POST),
so mail scanners that fetch every link record nothing. A second use shows the answer already
recorded instead of recording again; an expired or altered link records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from worker.domain.instruments import answer_options, get_instrument
from worker.services.clinical.after_answers import (
    answers_so_far,
    immediate_flags,
    raise_flags,
    raise_worsening,
)
from worker.services.clinical.crisis import start_crisis_path
from worker.services.inbound import answer_links as links
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import CheckIn, Message, Patient, Response


@dataclass(frozen=True)
class LinkView:
    status: str  # "ask" | "recorded" | "already" | "invalid"
    item_text: str = ""
    label: str = ""
    value: int | None = None
    recorded_label: str = ""
    language: str = "en"
    crisis: bool = False
    send: tuple[int, ...] = ()


def _label(instrument_name: str, language: str, item_key: str, value: int) -> str:
    instrument = get_instrument(instrument_name, language)
    item = instrument.item(item_key)
    return dict(answer_options(instrument, item)).get(value, str(value))


def view_link(rt: Runtime, token: str, now: datetime, *, record: bool) -> LinkView:
    parsed = links.read_token(rt.link_key, token, now)  # before any transaction (SQLite)
    if parsed is None:
        return LinkView("invalid")
    message_id, item_key, value = parsed
    with session_scope(rt.sessions) as session:
        msg = session.get(Message, message_id)
        if msg is None or msg.checkin_id is None or msg.patient_id is None:
            return LinkView("invalid")
        checkin = session.get(CheckIn, msg.checkin_id)
        patient = session.get(Patient, msg.patient_id)
        if checkin is None or patient is None:
            return LinkView("invalid")
        instrument = get_instrument(checkin.instrument, patient.language)
        if item_key not in instrument.keys:
            return LinkView("invalid")
        item = instrument.item(item_key)
        if not item.minimum <= value <= item.maximum:
            return LinkView("invalid")
        base: dict[str, Any] = {
            "item_text": item.text,
            "label": _label(checkin.instrument, patient.language, item_key, value),
            "value": value,
            "language": patient.language,
        }
        existing = session.scalar(
            select(Response.value).where(
                Response.checkin_id == checkin.id, Response.item == item_key
            )
        )
        if existing is not None:
            recorded = _label(checkin.instrument, patient.language, item_key, existing)
            return LinkView("already", recorded_label=recorded, **base)
        if not record:
            return LinkView("ask", **base)
        late = checkin.window_closes_at <= now
        session.add(
            Response(
                checkin_id=checkin.id,
                patient_id=patient.id,
                instrument=checkin.instrument,
                item=item_key,
                value=value,
                answered_at=now,
                partial=False,
                late=late,
                source="email",
            )
        )
        session.flush()
        answers = answers_so_far(session, checkin.id)
        complete = all(k in answers for k in instrument.keys)
        flags = immediate_flags(checkin, answers)
        send: list[int] = []
        crisis = any(f.reason == "phq9_item9" for f in flags)
        if crisis:
            item9 = next(f for f in flags if f.reason == "phq9_item9")
            # The page shows the crisis numbers at once; the on-call clinician is paged.
            send += start_crisis_path(
                rt,
                session,
                patient=patient,
                reason="phq9_item9",
                reply_to=None,
                language=patient.language,
                detail={"checkin_id": checkin.id, "source": "email", **item9.detail},
                dedupe=f"email:{checkin.id}:{item_key}",
                now=now,
            )
        if complete or crisis:
            checkin.status = "answered" if complete else "partial"
            checkin.answered_at = now
        raise_flags(session, patient, checkin, flags, now, {"source": "email"})
        if complete:
            raise_worsening(session, patient, checkin, answers, now, {"source": "email"})
        return LinkView("recorded", crisis=crisis, send=tuple(send), **base)
