"""Questionnaire totals over time, for the patient chart and the follow-up page."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.instruments import score
from worker.store.models import Response


def questionnaire_totals(
    session: Session, patient_id: int, since: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    """Questionnaire totals by check-in: only complete answer sets are scored."""
    rows = session.execute(
        select(
            Response.checkin_id,
            Response.instrument,
            Response.item,
            Response.value,
            Response.answered_at,
        )
        .where(
            Response.patient_id == patient_id,
            Response.instrument.in_(("phq9", "gad7", "peg")),
            Response.answered_at >= since,
        )
        .order_by(Response.answered_at, Response.id)
    )
    groups: dict[tuple[Any, str], dict[str, Any]] = {}
    for checkin_id, instrument, item, value, answered_at in rows:
        key = (checkin_id if checkin_id is not None else answered_at, instrument)
        g = groups.setdefault(key, {"values": {}, "at": answered_at})
        g["values"][item] = value
        g["at"] = max(g["at"], answered_at)
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for (_key, instrument), g in groups.items():
        try:
            total = score(instrument, g["values"]).total
        except ValueError:
            continue
        if total is not None:
            out[instrument].append((g["at"], float(total)))
    return out
