"""What happens when answers are stored, whichever way they came (a text, or the questionnaire
form that SMS and email links open): the values are stored item by item, the clinical rules run
and raise follow-ups; a positive screen offers the full questionnaire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.instruments import score
from worker.domain.rules import Flag, Observation, evaluate_answer, evaluate_worsening
from worker.services.clinical.followups import raise_followup
from worker.services.outbound.send_now import queue_now
from worker.store.models import CheckIn, Patient, Response
from worker.store.record_status import CheckinStatus


def store_answers(
    session: Session,
    checkin: CheckIn,
    values: dict[str, int],
    *,
    now: datetime,
    source: str,
    partial: bool,
    late: bool,
    inbound_id: int | None = None,
) -> dict[str, int]:
    """Store one Response row per answered item (missing items stay missing: never guessed)
    and return every answer of the check-in so far, this one included."""
    for key, value in values.items():
        session.add(
            Response(
                checkin_id=checkin.id,
                patient_id=checkin.patient_id,
                instrument=checkin.instrument,
                item=key,
                value=value,
                answered_at=now,
                partial=partial,
                late=late,
                source=source,
                inbound_id=inbound_id,
            )
        )
    session.flush()
    return answers_so_far(session, checkin.id)


def answers_so_far(session: Session, checkin_id: int) -> dict[str, int]:
    rows = session.scalars(
        select(Response).where(Response.checkin_id == checkin_id).order_by(Response.id)
    )
    return {r.item: r.value for r in rows}


def immediate_flags(checkin: CheckIn, answers: dict[str, int]) -> list[Flag]:
    return evaluate_answer(checkin.instrument, answers)


def raise_flags(
    session: Session,
    patient: Patient,
    checkin: CheckIn,
    flags: list[Flag],
    now: datetime,
    extra: dict[str, Any],
) -> None:
    """Follow-ups for every flag but PHQ-9 item 9 (the caller starts the crisis path for it)."""
    for flag in flags:
        if flag.reason == "phq9_item9":
            continue
        raise_followup(
            session,
            patient_id=patient.id,
            reason=flag.reason,
            severity=flag.severity,
            detail={**extra, "checkin_id": checkin.id, **flag.detail},
            now=now,
        )
        offer = flag.detail.get("offer")
        if offer in ("phq9", "gad7"):
            # A positive screen: offer the full questionnaire next. Not urgent: it keeps to
            # quiet hours and consent like any check-in.
            queue_now(
                session,
                now=now,
                dedupe_key=f"offer:{checkin.id}:{offer}",
                template="checkin_item",
                kind="checkin",
                channel=checkin.channel,
                patient_id=patient.id,
                language=patient.language,
                instrument=str(offer),
                context={"instrument": str(offer), "item_index": 0},
                urgent=False,
                exempt=False,
            )


def raise_worsening(
    session: Session,
    patient: Patient,
    checkin: CheckIn,
    answers: dict[str, int],
    now: datetime,
    extra: dict[str, Any],
) -> None:
    """Compare pain, mood and the PHQ-9 total with the patient's own history."""
    news = [Observation(i, float(answers[i]), now) for i in ("pain", "mood") if i in answers]
    if checkin.instrument == "phq9":
        total = score("phq9", answers).total
        if total is not None:
            news.append(Observation("phq9_total", float(total), now))
    for new in news:
        for flag in evaluate_worsening(history(session, patient.id, new.item, checkin.id), new):
            raise_followup(
                session,
                patient_id=patient.id,
                reason=flag.reason,
                severity=flag.severity,
                detail={**extra, "checkin_id": checkin.id, **flag.detail},
                now=now,
            )


def history(
    session: Session, patient_id: int, item: str, exclude_checkin: int
) -> list[Observation]:
    if item != "phq9_total":
        rows = session.execute(
            select(Response.value, Response.answered_at).where(
                Response.patient_id == patient_id,
                Response.item == item,
                Response.checkin_id != exclude_checkin,
            )
        ).all()
        return [Observation(item, float(v), at) for v, at in rows]
    observations = []
    for checkin in session.scalars(
        select(CheckIn).where(
            CheckIn.patient_id == patient_id,
            CheckIn.instrument == "phq9",
            CheckIn.status == CheckinStatus.ANSWERED,
            CheckIn.id != exclude_checkin,
        )
    ):
        total = score("phq9", answers_so_far(session, checkin.id)).total
        if total is not None and checkin.answered_at is not None:
            observations.append(Observation("phq9_total", float(total), checkin.answered_at))
    return observations
